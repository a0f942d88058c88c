// One connection's life after the upgrade: registered, welcomed (with its replay on resume, streamed in pages),
// and on close taken out of every index, its rooms left and its presence removed.
import type { ServerWebSocket } from "bun";
import type { ReplayCursor } from "../backends/types.ts";
import type { Conn } from "../connections.ts";
import { CLOSE } from "../protocol/codes.ts";
import { parseOffset, type Offset } from "../offsets.ts";
import { welcomeFrame } from "../protocol/outbound.ts";
import type { GatewayContext } from "./context.ts";
import type { Delivery } from "./delivery.ts";
import type { Membership } from "./membership.ts";
import type { Timers } from "./timers.ts";

export interface Session {
  opened(ws: ServerWebSocket<Conn>): void;
  closed(ws: ServerWebSocket<Conn>, code: number): void;
  /** A newer single session of `user` was announced (stamp): older local connections are closed 4009. */
  supersede(user: string, stamp: string): void;
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

// ---- WSGATE_SESSIONS=single (§8.2) ----
// Each connection gets a stamp from one clock all gateways share (Redis TIME) plus its id, and announces it;
// every gateway closes the user's connections with an older stamp, and a connection whose stamp arrives after
// a newer one was announced closes itself. Two simultaneous connects thus leave exactly one: the newest.
function createSingleSession({ broker, log, conns }: GatewayContext, delivery: Delivery) {
  const stamps = new Map<string, string>();
  const newest = new Map<string, string>();
  const stampOf = (at: number, conn: string) => `${String(at).padStart(17, "0")}:${conn}`;

  /** A stamp was announced for `user`: older local connections of the user go. */
  function supersede(user: string, stamp: string) {
    const local = conns.byUser.get(user);
    if (!local) return;
    const seen = newest.get(user);
    if (seen === undefined || seen < stamp) newest.set(user, stamp);
    const top = newest.get(user)!;
    for (const c of [...local]) {
      const mine = stamps.get(c.id);
      if (mine !== undefined && mine < top) delivery.close(c, CLOSE.replaced, "replaced by a newer session");
    }
  }

  async function claimSession(c: Conn) {
    let at: number;
    try {
      at = await broker.sessionClock();
    } catch (err) {
      // No shared clock now: the newest connection here wins, and others are told without a stamp.
      log.warn("single-session clock unavailable", { user: c.user, err });
      delivery.deliveries.kick(c.user, c.id);
      broker.kick(c.user, c.id).catch(() => {});
      return;
    }
    if (c.closed) return;
    const stamp = stampOf(at, c.id);
    stamps.set(c.id, stamp);
    supersede(c.user, stamp);
    broker.kick(c.user, c.id, stamp).catch((err) => log.warn("single-session kick failed", { user: c.user, err }));
  }

  return { supersede, claim: claimSession, forget: (id: string) => stamps.delete(id), userGone: (user: string) => newest.delete(user) };
}

export function createSession(ctx: GatewayContext, delivery: Delivery, membership: Membership, timers: Timers): Session {
  const { config, log, stats, conns } = ctx;
  const { emit } = delivery;
  const single = createSingleSession(ctx, delivery);
  const cleanups = new Set<Promise<void>>();

  async function setup(c: Conn) {
    try {
      await membership.connected(c);
    } catch (err) {
      // Local delivery still works; the failed step is retried on the heartbeat (and presence re-asserted).
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
    if (config.sessions === "single") void single.claim(c);
    void setup(c);
  }

  function closed(ws: ServerWebSocket<Conn>, code: number) {
    const c = ws.data;
    single.forget(c.id);
    c.closed = true;
    c.pending = null;
    c.drained?.();
    if (!conns.byId.has(c.id)) return;
    timers.unwatchExpiry(c);
    const { rooms, lastForUser } = conns.remove(c);
    if (lastForUser) single.userGone(c.user);
    stats.closed(code);
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

  return { opened, closed, supersede: single.supersede, cleanups: () => [...cleanups] };
}
