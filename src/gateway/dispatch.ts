// One inbound WebSocket frame: counted, rate-limited, parsed, authorised for its room, turned into one
// command, answered (ack, pong, presence) or refused with an error frame that carries its id.
import type { ServerWebSocket } from "bun";
import type { Config } from "../config.ts";
import type { Conn } from "../connections.ts";
import { CLOSE } from "../protocol/codes.ts";
import { ackFrame, pongFrame, roomPresenceFrame, usersPresenceFrame } from "../protocol/outbound.ts";
import { FrameError, parseFrame, requestId, type ParsedFrame } from "../protocol/parse.ts";
import type { Commands } from "./commands.ts";
import { rateBurst, type GatewayContext } from "./context.ts";
import type { Delivery } from "./delivery.ts";

/** A client over its rate for this long, by this many times its rate in refused frames, is closed 4008. */
const FLOOD_WINDOW_MS = 10_000;
const FLOOD_FACTOR = 10;

/** The id of a frame refused before parsing. */
function frameId(text: string | Buffer): string | undefined {
  if (typeof text !== "string") return undefined;
  try {
    return requestId((JSON.parse(text) as { id?: unknown })?.id);
  } catch {
    return undefined;
  }
}

function rateLimiter(config: Config, close: Delivery["close"]) {
  const burst = rateBurst(config);

  /**
   * Token bucket per connection; a client that stays over it is closed rather than answered forever. `cost`
   * is the frame's price: a send costs one token per recipient (§8.2), so fan-out has the same bound as frames.
   * A refused frame counts once toward 4008, whatever it would have cost.
   */
  function allow(c: Conn, t: number, cost = 1): boolean {
    c.tokens = Math.min(burst, c.tokens + ((t - c.refilledAt) * config.rate) / 1000);
    c.refilledAt = t;
    if (c.tokens >= cost) {
      c.tokens -= cost;
      return true;
    }
    if (t - c.floodStart > FLOOD_WINDOW_MS) {
      c.floodStart = t;
      c.floodCount = 0;
    }
    if (++c.floodCount > FLOOD_FACTOR * config.rate) close(c, CLOSE.flood, "rate limit exceeded persistently");
    return false;
  }
  return allow;
}

function allowedRoom(c: Conn, room: string, id: string | undefined) {
  if (!c.rooms(room)) throw new FrameError("forbidden", `room ${room} is not allowed by your token`, id);
}

export function createDispatch(ctx: GatewayContext, { emit, close, fail }: Delivery, commands: Commands) {
  const { config, stats, log, broker, now } = ctx;
  const allow = rateLimiter(config, close);

  function message(ws: ServerWebSocket<Conn>, msg: string | Buffer) {
    const c = ws.data;
    const t = now();
    c.lastSeen = t;
    stats.framesIn++;
    if (c.closed) return;
    // Over the rate: one error, carrying the frame's id so even this refusal can be correlated.
    if (!allow(c, t)) return fail(c, "rate_limited", `more than ${config.rate} frames/s`, frameId(msg));
    if (typeof msg !== "string") return fail(c, "bad_request", "binary frames are not accepted; send JSON text frames");
    let f: ParsedFrame;
    try {
      f = parseFrame(msg);
    } catch (err) {
      const e = err as FrameError;
      return fail(c, e.code, e.message, e.id);
    }
    handle(c, f, t).catch((err) => {
      if (err instanceof FrameError) return fail(c, err.code, err.message, f.id);
      log.warn("frame failed", { conn: c.id, type: f.type, err });
      // In memory nothing can be unavailable, so a failure there is ours; in cluster mode it is the store's.
      if (broker.state() === "none") fail(c, "internal", "internal error", f.id);
      else fail(c, "unavailable", "the cluster cannot store or route this now; retry", f.id);
    });
  }

  const ack = (c: Conn, id: string | undefined) => {
    if (id !== undefined) emit(c, ackFrame(id));
  };

  async function handle(c: Conn, f: ParsedFrame, t: number) {
    switch (f.type) {
      case "ping":
        emit(c, pongFrame(f.id));
        return;
      case "send": {
        const to = typeof f.to === "string" ? [f.to] : [...new Set(f.to)];
        // The frame's first token was taken on arrival; each further recipient costs one more.
        if (to.length > 1 && !allow(c, t, to.length - 1))
          throw new FrameError("rate_limited", `a send costs one token per recipient; more than ${config.rate} recipients/s`);
        const offsets = await commands.send(c.user, to, JSON.stringify(f.data), t);
        if (f.id !== undefined) emit(c, ackFrame(f.id, offsets));
        return;
      }
      case "join":
        allowedRoom(c, f.room, f.id);
        await commands.join(c, f.room);
        return ack(c, f.id);
      case "leave":
        await commands.leave(c, f.room);
        return ack(c, f.id);
      case "publish":
        allowedRoom(c, f.room, f.id);
        await commands.publish(c.user, f.room, JSON.stringify(f.data), t);
        return ack(c, f.id);
      case "presence":
        if (f.room !== undefined) {
          allowedRoom(c, f.room, f.id);
          const users = await commands.roomPresence(f.room);
          emit(c, roomPresenceFrame(f.id, f.room, users));
        } else {
          const users = await commands.usersPresence(f.users!);
          emit(c, usersPresenceFrame(f.id, users));
        }
        return;
    }
  }

  return { message };
}
