// One error body for every HTTP route (PROTOCOL §6), and the 503 that store-backed routes answer when Redis fails.
import type { Context } from "hono";
import { RETRY_AFTER } from "../protocol/codes.ts";

export const errorBody = (code: string, message: string) => ({ error: { code, message } });

/** Routes that need the cluster store answer 503 + Retry-After when it fails, never a 500. */
export const needsStore =
  (h: (c: Context) => Promise<Response>) =>
  async (c: Context): Promise<Response> => {
    try {
      return await h(c);
    } catch (err) {
      return c.json(errorBody("unavailable", `cluster store unreachable: ${(err as Error).message}`), 503, { "retry-after": RETRY_AFTER.store });
    }
  };
