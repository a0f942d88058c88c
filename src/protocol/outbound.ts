// Every frame the gateway sends, built as a string once per message (never once per recipient).
// User ids and room names need no JSON escaping (grammar.ts), so they are quoted, not stringified.
import type { UserPresence } from "./frames.ts";
import type { ErrorCode } from "./codes.ts";

/** JSON of a sender: `"alice"`, or `null` for the admin API. */
export const senderJson = (from: string | null) => (from === null ? "null" : `"${from}"`);

// A direct message is head + offset + tail, so Redis (append.lua) can put the offset it assigns in between.
export const directHead = (fromJson: string, user: string, dataJson: string) =>
  `{"type":"message","from":${fromJson},"to":"${user}","data":${dataJson}`;
export const offsetPart = (offset: string) => `,"offset":"${offset}"`;
export const tsTail = (ts: number) => `,"ts":${ts}}`;

export const roomMessage = (fromJson: string, room: string, dataJson: string, ts: number) =>
  `{"type":"message","from":${fromJson},"room":"${room}","data":${dataJson},"ts":${ts}}`;

export const broadcastMessage = (dataJson: string, ts: number) =>
  `{"type":"message","from":null,"broadcast":true,"data":${dataJson},"ts":${ts}}`;

export const roomEvent = (room: string, event: "join" | "leave", user: string, ts: number) =>
  `{"type":"room","room":"${room}","event":"${event}","user":"${user}","ts":${ts}}`;

export interface WelcomeInfo {
  user: string;
  conn: string;
  gateway: string;
  region: string;
  heartbeat: number;
}

/** `replay` only on a resume: whether nothing was lost, and how many frames follow. */
export function welcomeFrame(w: WelcomeInfo, replay?: { recovered: boolean; replayed: number }): string {
  const f: Record<string, unknown> = { type: "welcome", ...w };
  if (replay) {
    f.recovered = replay.recovered;
    f.replayed = replay.replayed;
  }
  return JSON.stringify(f);
}

export const ackFrame = (id: string, offsets?: Record<string, string>) =>
  offsets ? JSON.stringify({ type: "ack", id, offsets }) : `{"type":"ack","id":${JSON.stringify(id)}}`;

export const pongFrame = (id: string | undefined) =>
  id === undefined ? `{"type":"pong"}` : `{"type":"pong","id":${JSON.stringify(id)}}`;

export const usersPresenceFrame = (id: string | undefined, users: Record<string, UserPresence>) =>
  JSON.stringify({ type: "presence", id, users });

export const roomPresenceFrame = (id: string | undefined, room: string, users: string[]) =>
  JSON.stringify({ type: "presence", id, room, users });

export function errorFrame(code: ErrorCode, message: string, id?: string): string {
  return JSON.stringify(id === undefined ? { type: "error", code, message } : { type: "error", id, code, message });
}
