// The payload on a user's Redis channel: `m\x01<origin>\x01<frame>` (history off), or
// `h<entry id>\x01<origin>\x01<frame head>\x01<frame tail>` (history on: append.lua writes it; the offset is the
// id with ':' for '-' and goes between head and tail, so Redis builds no offset string and one smaller payload),
// or `k<exceptConn>` (close the user's connections, but that one), or in single-session mode
// `k<exceptConn>\x01<session stamp>` (close those with an older stamp). `origin` names the sending broker, which has
// already delivered to its own connections and skips its echo. Frames are JSON: never a raw \x01.
import { offsetPart } from "./outbound.ts";

const SEP = "\u0001";
const MESSAGE = 109; // "m"
const STORED = 104; // "h"
const KICK = 107; // "k"

export type Envelope =
  | { kind: "message"; offset: string | undefined; origin: string; frame: string }
  | { kind: "kick"; exceptConn: string | undefined; session?: string };

export const encodeMessage = (offset: string | undefined, origin: string, frame: string) =>
  `m${offset ?? ""}${SEP}${origin}${SEP}${frame}`;

export const encodeKick = (exceptConn: string | undefined, session?: string) =>
  `k${exceptConn ?? ""}${session === undefined ? "" : SEP + session}`;

/** null for a payload that is neither form. */
export function decodeEnvelope(payload: string): Envelope | null {
  const tag = payload.charCodeAt(0);
  if (tag === MESSAGE) {
    const sep = payload.indexOf(SEP);
    const sep2 = payload.indexOf(SEP, sep + 1);
    if (sep < 0 || sep2 < 0) return null;
    return { kind: "message", offset: sep > 1 ? payload.slice(1, sep) : undefined, origin: payload.slice(sep + 1, sep2), frame: payload.slice(sep2 + 1) };
  }
  if (tag === STORED) {
    const sep = payload.indexOf(SEP);
    const sep2 = payload.indexOf(SEP, sep + 1);
    const sep3 = payload.indexOf(SEP, sep2 + 1);
    if (sep < 2 || sep2 < 0 || sep3 < 0) return null;
    const offset = offsetOfId(payload.slice(1, sep));
    return { kind: "message", offset, origin: payload.slice(sep + 1, sep2), frame: payload.slice(sep2 + 1, sep3) + offsetPart(offset) + payload.slice(sep3 + 1) };
  }
  if (tag === KICK) {
    const sep = payload.indexOf(SEP);
    const except = sep < 0 ? payload.slice(1) : payload.slice(1, sep);
    return { kind: "kick", exceptConn: except.length > 0 ? except : undefined, ...(sep < 0 ? {} : { session: payload.slice(sep + 1) }) };
  }
  return null;
}

/** A history entry id `<epoch>-<seq>` is the offset `<epoch>:<seq>` (lua/append.lua). */
export const offsetOfId = (id: string) => id.replace("-", ":");
