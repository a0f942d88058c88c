// The payload on a user's Redis channel: `m<offset>\x01<origin>\x01<frame>` (offset empty with history off) or
// `k<exceptConn>` (close the user's connections, but that one). `origin` names the sending broker, which has
// already delivered to its own connections and skips its echo. send.lua writes the `m` form itself.

const SEP = "\u0001";
const MESSAGE = 109; // "m"
const KICK = 107; // "k"

export type Envelope =
  | { kind: "message"; offset: string | undefined; origin: string; frame: string }
  | { kind: "kick"; exceptConn: string | undefined };

export const encodeMessage = (offset: string | undefined, origin: string, frame: string) =>
  `m${offset ?? ""}${SEP}${origin}${SEP}${frame}`;

export const encodeKick = (exceptConn: string | undefined) => `k${exceptConn ?? ""}`;

/** null for a payload that is neither form. */
export function decodeEnvelope(payload: string): Envelope | null {
  const tag = payload.charCodeAt(0);
  if (tag === MESSAGE) {
    const sep = payload.indexOf(SEP);
    const sep2 = payload.indexOf(SEP, sep + 1);
    if (sep < 0 || sep2 < 0) return null;
    return { kind: "message", offset: sep > 1 ? payload.slice(1, sep) : undefined, origin: payload.slice(sep + 1, sep2), frame: payload.slice(sep2 + 1) };
  }
  if (tag === KICK) return { kind: "kick", exceptConn: payload.length > 1 ? payload.slice(1) : undefined };
  return null;
}
