// One connection's life after the upgrade: registered, welcomed (with its replay on resume, streamed in pages),
// and on close taken out of every index, its rooms left and its presence removed.
import type { ServerWebSocket } from "bun";
import type { ReplayCursor } from "../backends/types.ts";
import type { Conn } from "../connections.ts";
import { parseOffset, type Offset } from "../offsets.ts";
import { CLOSE } from "../protocol/codes.ts";
import { welcomeFrame } from "../protocol/outbound.ts";
import { connRef, type GatewayContext } from "./context.ts";
import type { Delivery } from "./delivery.ts";
import type { Membership } from "./membership.ts";
import type { Timers } from "./timers.ts";

export interface Session {
  opened(ws: ServerWebSocket<Conn>): void;
  closed(ws: ServerWebSocket<Conn>, code: number): void;
  /** Close cleanups still running; a drain waits for them. */
  cleanups(): Promise<void>[];
}

/**
 * Unsent bytes a replay leaves on the socket before it waits for `drain`: with a page (≤ 128 KiB plus one
 * frame) on top, far under the slow-consumer bound, so a client that reads is never closed by its own replay.
 */
const REPLAY_BUFFERED = 256 * 1024;

const NOTHING: ReplayCursor = { recovered: false, count: 0, next: async () => [] };

/** A failed read of the history is a resume that recovered nothing, not a failed connection. */
async function openReplay({ history, log }: GatewayContext, c: Conn, from: string): Promise<ReplayCursor> {
  if (!history) return NOTHING;
  try {
    return await history.replay(c.user, from);
  } catch (err) {
    log.warn("replay failed", { conn: c.id, user: c.user, err });
    return NOTHING;
  }
}

/**
 * Streams the replay page by page, waiting for the socket to drain between pages; live frames stay held in
 * c.pending meanwhile. Returns the last offset written, or false when the replay could not finish (the
 * connection is closed: the client was promised `replayed` messages and resumes again).
 */
async function streamReplay({ log, stats }: GatewayContext, delivery: Delivery, c: Conn, cursor: ReplayCursor, last: Offset | null): Promise<Offset | null | false> {
  let sent = 0;
  try {
    for (;;) {
      const page = await cursor.next();
      if (page.length === 0 || c.closed) break;
      for (const f of page) delivery.write(c, f.frame);
      last = parseOffset(page[page.length - 1]!.offset);
      sent += page.length;
      await delivery.drained(c, REPLAY_BUFFERED);
    }
  } catch (err) {
    log.warn("replay interrupted", { conn: c.id, user: c.user, err });
    delivery.close(c, CLOSE.internal, "replay interrupted; resume again");
    return false;
  } finally {
    stats.replayed += sent;
  }
  return last;
}

function welcome({ config }: GatewayContext, c: Conn, replayed: ReplayCursor | null): string {
  const info = { user: c.user, conn: c.id, gateway: config.gatewayId, region: config.region, heartbeat: config.heartbeatMs };
  return welcomeFrame(info, replayed ? { recovered: replayed.recovered, replayed: replayed.count } : undefined);
}

export function createSession(ctx: GatewayContext, delivery: Delivery, membership: Membership, timers: Timers): Session {
  const { config, broker, presence, log, stats, conns } = ctx;
  const { emit } = delivery;
  const cleanups = new Set<Promise<void>>();

  async function setup(c: Conn) {
    try {
      await Promise.all([broker.subscribeUser(c.user), presence.connect(connRef(c))]);
    } catch (err) {
      // Local delivery still works; presence is re-asserted when the store is back.
      log.warn("connection setup incomplete", { conn: c.id, user: c.user, err });
    }
    let cursor: ReplayCursor | null = null;
    let last: Offset | null = null;
    if (c.resumeFrom !== undefined) {
      last = parseOffset(c.resumeFrom);
      cursor = await openReplay(ctx, c, c.resumeFrom);
      c.resumeFrom = undefined;
    }
    if (c.closed) return;
    delivery.write(c, welcome(ctx, c, cursor));
    if (cursor) {
      const to = await streamReplay(ctx, delivery, c, cursor, last);
      if (to === false || c.closed) return;
      last = to;
    }
    const pending = c.pending!;
    c.pending = null;
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
    c.drained?.();
    if (!conns.byId.has(c.id)) return;
    timers.unwatchExpiry(c);
    const { lastForUser, rooms } = conns.remove(c);
    stats.closed(code);
    log.debug("closed", { conn: c.id, user: c.user, code });
    const r = connRef(c);
    const cleanup = (async () => {
      try {
        for (const [room, change] of rooms) await membership.left(c.user, room, change);
        await presence.disconnect(r);
      } catch (err) {
        log.warn("cleanup after close incomplete", { conn: c.id, err });
      }
    })();
    // A drain waits for these, so leave events and presence removals go out before the process exits.
    cleanups.add(cleanup);
    void cleanup.finally(() => cleanups.delete(cleanup));
    if (lastForUser) broker.unsubscribeUser(c.user);
  }

  return { opened, closed, cleanups: () => [...cleanups] };
}
