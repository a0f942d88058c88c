// Client frames (PROTOCOL §3) as the gateway reads them: parsed once per frame, with errors that name the
// field. Server side only (zod); the SDK uses the plain types in frames.ts.
import { z } from "zod";
import type { ErrorCode } from "./codes.ts";
import { ID_RE, MAX_REQUEST_ID, MAX_TARGETS } from "./grammar.ts";
import { dataSchema as data, roomSchema as room, userIdSchema as userId } from "./schemas.ts";

const reqId = z.string().max(MAX_REQUEST_ID, `must be at most ${MAX_REQUEST_ID} chars`).optional();

const clientFrame = z.discriminatedUnion("type", [
  z.object({ type: z.literal("send"), id: reqId, to: z.union([userId, z.array(userId).min(1, "must name at least one user")]), data }),
  z.object({ type: z.literal("join"), id: reqId, room }),
  z.object({ type: z.literal("leave"), id: reqId, room }),
  z.object({ type: z.literal("publish"), id: reqId, room, data }),
  z.object({ type: z.literal("presence"), id: reqId, users: z.array(userId).optional(), room: room.optional() }),
  z.object({ type: z.literal("ping"), id: reqId }),
]);

/** A parsed client frame; `data` is any JSON value, not yet serialised. */
export type ParsedFrame = z.infer<typeof clientFrame>;

export class FrameError extends Error {
  constructor(readonly code: ErrorCode, message: string, readonly id?: string) {
    super(message);
  }
}

/** Throws FrameError; the id is recovered when possible so the error can be correlated. */
export function parseFrame(text: string): ParsedFrame {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new FrameError("bad_request", "frame is not valid JSON");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new FrameError("bad_request", "frame must be a JSON object");
  const rawId = (raw as { id?: unknown }).id;
  const id = requestId(rawId);
  // Fast path for the hot frame, a send to one user: the same checks the schema makes, without its overhead.
  // Anything else, or anything wrong, goes through zod for the precise error.
  const fast = raw as { type?: unknown; to?: unknown; data?: unknown };
  if (fast.type === "send" && typeof fast.to === "string" && fast.data !== undefined && (rawId === undefined || id !== undefined) && ID_RE.test(fast.to))
    return id === undefined ? { type: "send", to: fast.to, data: fast.data } : { type: "send", id, to: fast.to, data: fast.data };
  // Over-long target lists are their own error code, checked before the generic schema.
  const r = raw as { type?: unknown; to?: unknown; users?: unknown };
  if ((r.type === "send" && Array.isArray(r.to) && r.to.length > MAX_TARGETS) ||
      (r.type === "presence" && Array.isArray(r.users) && r.users.length > MAX_TARGETS))
    throw new FrameError("too_large", `at most ${MAX_TARGETS} users per frame`, id);
  const parsed = clientFrame.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join(".") || "frame";
    const message = issue.code === "invalid_union" && issue.path[0] === "type"
      ? `unknown frame type ${JSON.stringify(r.type)}`
      : `${field}: ${issue.message}`;
    throw new FrameError("bad_request", message, id);
  }
  const f = parsed.data;
  if (f.type === "presence" && (f.users === undefined) === (f.room === undefined))
    throw new FrameError("bad_request", "presence needs exactly one of users or room", id);
  return f;
}

/** The request id of a raw frame, when it is one that may be echoed back. */
export function requestId(raw: unknown): string | undefined {
  return typeof raw === "string" && raw.length <= MAX_REQUEST_ID ? raw : undefined;
}
