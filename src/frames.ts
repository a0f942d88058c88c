// Client frames (PROTOCOL §3): parsed once per frame, with errors that name the field.
import { z } from "zod";
import { ID_RE, ROOM_RE } from "./auth.ts";

export const MAX_TARGETS = 100;
export type ErrorCode =
  | "bad_request"
  | "forbidden"
  | "too_large"
  | "too_many_rooms"
  | "rate_limited"
  | "unavailable"
  | "internal"
  | "unauthorized";

const userId = z.string().regex(ID_RE, "must be a user id: 1-128 chars of [A-Za-z0-9_.:@-]");
const room = z.string().regex(ROOM_RE, "must be a room name: 1-128 chars of [A-Za-z0-9_.:@/-]");
const reqId = z.string().max(64, "must be at most 64 chars").optional();
// Any JSON value, but present: `undefined` would vanish from the message.
const data = z.unknown().refine((v) => v !== undefined, "is required");

const clientFrame = z.discriminatedUnion("type", [
  z.object({ type: z.literal("send"), id: reqId, to: z.union([userId, z.array(userId).min(1, "must name at least one user")]), data }),
  z.object({ type: z.literal("join"), id: reqId, room }),
  z.object({ type: z.literal("leave"), id: reqId, room }),
  z.object({ type: z.literal("publish"), id: reqId, room, data }),
  z.object({ type: z.literal("presence"), id: reqId, users: z.array(userId).optional(), room: room.optional() }),
  z.object({ type: z.literal("ping"), id: reqId }),
]);

export type ClientFrame = z.infer<typeof clientFrame>;

export class FrameError extends Error {
  constructor(readonly code: ErrorCode, message: string, readonly id?: string) {
    super(message);
  }
}

/** Throws FrameError; the id is recovered when possible so the error can be correlated. */
export function parseFrame(text: string): ClientFrame {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new FrameError("bad_request", "frame is not valid JSON");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new FrameError("bad_request", "frame must be a JSON object");
  const rawId = (raw as { id?: unknown }).id;
  const id = typeof rawId === "string" && rawId.length <= 64 ? rawId : undefined;
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

export function errorFrame(code: ErrorCode, message: string, id?: string): string {
  return JSON.stringify(id === undefined ? { type: "error", code, message } : { type: "error", id, code, message });
}
