// One connection's life after the upgrade: registered, welcomed (with its replay on resume), and on close
// taken out of every index, its rooms left and its presence removed.
import type { ServerWebSocket } from "bun";
import type { Replay } from "../backends/types.ts";
import type { Conn } from "../connections.ts";
import { parseOffset, type Offset } from "../offsets.ts";
import type { GatewayContext } from "./context.ts";
import type { Delivery } from "./delivery.ts";
import type { Membership } from "./membership.ts";
import type { Timers } from "./timers.ts";

export interface Session {
  opened(ws: ServerWebSocket<Conn>): void;
  closed(ws: ServerWebSocket<Conn>, code: number): void;
  /** Close cleanups still running; a drain waits for them. */
  cleanups(): Promise<void>[];
}

export function createSession(ctx: GatewayContext, delivery: Delivery, membership: Membership, timers: Timers): Session {
  const { config, broker, log, stats, conns } = ctx;
  const { emit } = delivery;
  const cleanups = new Set<Promise<void>>();

  async function replay(c: Conn, from: string): Promise<Replay> {
    try {
      return await broker.replay(c.user, from);
    } catch (err) {
      log.warn("replay failed", { conn: c.id, user: c.user, err });
      return { frames: [], recovered: false };
    }
  }

  function welcome(c: Conn, replayed: Replay | null): string {
    const w: Record<string, unknown> = {
      type: "welcome",
      user: c.user,
      conn: c.id,
      gateway: config.gatewayId,
      region: config.region,
      heartbeat: config.heartbeatMs,
    };
    if (replayed) {
      w.recovered = replayed.recovered;
      w.replayed = replayed.frames.length;
    }
    return JSON.stringify(w);
  }

  async function setup(c: Conn) {
    try {
      await membership.connected(c);
    } catch (err) {
      // Local delivery still works; the failed step is retried on the heartbeat (and presence re-asserted).
      log.warn("connection setup incomplete", { conn: c.id, user: c.user, err });
    }
    let replayed: Replay | null = null;
    let last: Offset | null = null;
    if (c.resumeFrom !== undefined) {
      last = parseOffset(c.resumeFrom);
      replayed = await replay(c, c.resumeFrom);
      c.resumeFrom = undefined;
    }
    if (c.closed) return;
    const pending = c.pending!;
    c.pending = null;
    emit(c, welcome(c, replayed));
    if (replayed) {
      for (const f of replayed.frames) {
        emit(c, f.frame);
        last = parseOffset(f.offset);
      }
      stats.replayed += replayed.frames.length;
    }
    // Live messages that arrived during the replay, and any still on their way: emit drops the ones the replay carried.
    c.replayedTo = last;
    for (const p of pending) emit(c, p.frame, p.offset);
  }

  function opened(ws: ServerWebSocket<Conn>) {
    const c = ws.data;
    c.ws = ws;
    conns.add(c);
    timers.watchExpiry(c);
    stats.connectionsOpened++;
    if (config.sessions === "single") {
      delivery.deliveries.kick(c.user, c.id);
      broker.kick(c.user, c.id).catch((err) => log.warn("single-session kick failed", { user: c.user, err }));
    }
    void setup(c);
  }

  function closed(ws: ServerWebSocket<Conn>, code: number) {
    const c = ws.data;
    c.closed = true;
    c.pending = null;
    if (!conns.byId.has(c.id)) return;
    timers.unwatchExpiry(c);
    const { rooms } = conns.remove(c);
    stats.connectionsClosed++;
    log.debug("closed", { conn: c.id, user: c.user, code });
    // Queued behind any step still running for the same keys (a join in flight is undone after it lands).
    const cleanup = membership.disconnected(
      c,
      rooms.map(([room]) => room),
    );
    // A drain waits for these, so leave events and presence removals go out before the process exits.
    cleanups.add(cleanup);
    void cleanup.finally(() => cleanups.delete(cleanup));
  }

  return { opened, closed, cleanups: () => [...cleanups] };
}
