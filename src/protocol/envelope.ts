// The payload on a user's Redis channel: `m<offset>\x01<origin>\x01<frame>` (offset empty with history off) or
// `k<exceptConn>` (close the user's connections, but that one), or in single-session mode
// `k<exceptConn>\x01<session stamp>` (close those with an older stamp). `origin` names the sending broker, which has
// already delivered to its own connections and skips its echo. append.lua writes the `m` form itself.

const SEP = "\u0001";
const MESSAGE = 109; // "m"
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
  if (tag === KICK) {
    const sep = payload.indexOf(SEP);
    const except = sep < 0 ? payload.slice(1) : payload.slice(1, sep);
    return { kind: "kick", exceptConn: except.length > 0 ? except : undefined, ...(sep < 0 ? {} : { session: payload.slice(sep + 1) }) };
  }
  return null;
}
