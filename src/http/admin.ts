// The admin API (/v1/*): bearer-token auth with rotation, validated bodies, an audit line per action that reaches
// users. Each route calls the same commands as a WebSocket client's frame.
import { createHash } from "node:crypto";
import type { Context, Hono, MiddlewareHandler } from "hono";
import { z } from "zod";
import { adminTokenMatches } from "../auth.ts";
import type { Commands } from "../gateway/commands.ts";
import type { Logger } from "../log.ts";
import { ID_RE, MAX_TARGETS, ROOM_RE } from "../protocol/grammar.ts";
import { dataSchema as data, userIdSchema as userId } from "../protocol/schemas.ts";
import { errorBody, needsStore } from "./reply.ts";

const sendBody = z.object({
  to: z.union([userId, z.array(userId).min(1, "must name at least one user").max(MAX_TARGETS, `at most ${MAX_TARGETS} users`)]),
  data,
});
const dataBody = z.object({ data });

/** Names an admin token in logs without revealing it: 8 hex chars of its SHA-256. */
export const tokenTag = (token: string) => createHash("sha256").update(token).digest("hex").slice(0, 8);

/** Any of the configured tokens (§8.1 rotation), each compared in constant time. */
export function adminAuth(tokens: readonly string[]): MiddlewareHandler {
  return async (c, next) => {
    // No token: the admin surface does not exist (never open by accident).
    if (tokens.length === 0) return c.json(errorBody("not_found", "not found"), 404);
    const m = /^Bearer\s+(.+)$/i.exec(c.req.header("authorization") ?? "");
    if (!m || !adminTokenMatches(m[1]!, tokens))
      return c.json(errorBody("unauthorized", "admin bearer token missing or wrong"), 401, { "www-authenticate": "Bearer" });
    c.set("adminTag" as never, tokenTag(m[1]!) as never);
    await next();
  };
}

async function body<T>(c: Context, schema: z.ZodType<T>): Promise<{ ok: true; value: T } | { ok: false; res: Response }> {
  let raw: unknown;
  try {
    raw = await c.req.json();
  } catch {
    return { ok: false, res: c.json(errorBody("bad_request", "body must be JSON"), 400) };
  }
  const r = schema.safeParse(raw);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0]!;
  const field = issue.path.join(".") || "body";
  return { ok: false, res: c.json(errorBody("bad_request", `${field}: ${issue.message}`), 400) };
}

export function adminRoutes(app: Hono, admin: MiddlewareHandler, commands: Commands, log?: Logger): void {
  /** One line per admin action that reaches users: which route, at whom, which admin token (by tag). */
  const audit = (c: Context, target: string | string[]) =>
    log?.info("admin", { route: `${c.req.method} ${c.req.routePath}`, target, admin: c.get("adminTag" as never) as string });

  app.get("/v1/gateways", admin, needsStore(async (c) => c.json({ gateways: await commands.gateways() })));

  app.get("/v1/presence/:user", admin, needsStore(async (c) => {
    const user = c.req.param("user")!;
    if (!ID_RE.test(user)) return c.json(errorBody("bad_request", "user: must be a user id"), 400);
    const connections = await commands.connections(user);
    return c.json({ user, online: connections.length > 0, connections });
  }));

  app.post("/v1/send", admin, needsStore(async (c) => {
    const b = await body(c, sendBody);
    if (!b.ok) return b.res;
    const to = typeof b.value.to === "string" ? [b.value.to] : [...new Set(b.value.to)];
    audit(c, to);
    const offsets = await commands.send(null, to, JSON.stringify(b.value.data));
    return c.json({ offsets: offsets ?? {} }, 202);
  }));

  app.post("/v1/rooms/:room/publish", admin, needsStore(async (c) => {
    const room = c.req.param("room")!;
    if (!ROOM_RE.test(room)) return c.json(errorBody("bad_request", "room: must be a room name"), 400);
    const b = await body(c, dataBody);
    if (!b.ok) return b.res;
    audit(c, room);
    await commands.publish(null, room, JSON.stringify(b.value.data));
    return c.json({}, 202);
  }));

  app.post("/v1/broadcast", admin, needsStore(async (c) => {
    const b = await body(c, dataBody);
    if (!b.ok) return b.res;
    audit(c, "*");
    await commands.broadcast(JSON.stringify(b.value.data));
    return c.json({}, 202);
  }));

  app.delete("/v1/users/:user/connections", admin, needsStore(async (c) => {
    const user = c.req.param("user")!;
    if (!ID_RE.test(user)) return c.json(errorBody("bad_request", "user: must be a user id"), 400);
    audit(c, user);
    return c.json({ closed: await commands.kick(user) });
  }));
}
