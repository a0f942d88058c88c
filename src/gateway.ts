// One gateway: the WebSocket side (upgrade, frames, fan-out, heartbeat, drain). HTTP routes live in http.ts.
import { readFileSync } from "node:fs";
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import { AuthError, type Authenticator, type Identity } from "./auth.ts";
import type { Backends, ConnRef, Deliveries, LocalState } from "./backends/types.ts";
import type { Config } from "./config.ts";
import { Connections, type Conn, type RoomChange } from "./connections.ts";
import { errorFrame, FrameError, parseFrame, type ClientFrame, type ErrorCode } from "./frames.ts";
import type { Logger } from "./log.ts";
import { broadcastMessage, roomEvent, roomMessage } from "./messages.ts";
import { parseOffset, seenBefore, type Offset } from "./offsets.ts";
import { Stats } from "./stats.ts";

export const CLOSE = {
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  internal: 1011,
  tokenExpired: 4001,
  heartbeat: 4002,
  flood: 4008,
  replaced: 4009,
  slow: 4029,
} as const;

/** Frames held for a connection before its welcome; past this the client is not keeping up. */
const MAX_PENDING = 10_000;

/**
 * Sockets this process can hold: the open-files limit less a reserve for Redis, listeners and logs. Past it
 * accept() would fail anyway; refusing with 503 + Retry-After lets clients go to another machine.
 */
export function socketCapacity(limitsText?: string): number {
  try {
    const text = limitsText ?? readFileSync("/proc/self/limits", "utf8");
    const m = /^Max open files\s+(\d+)/m.exec(text);
    if (m) return Math.max(1, Number(m[1]) - 100);
  } catch {}
  return Number.POSITIVE_INFINITY;
}

/** The id of a frame refused before parsing. */
function frameId(text: string | Buffer): string | undefined {
  if (typeof text !== "string") return undefined;
  try {
    const id = (JSON.parse(text) as { id?: unknown })?.id;
    return typeof id === "string" && id.length <= 64 ? id : undefined;
  } catch {
    return undefined;
  }
}

export interface GatewayDeps {
  config: Config;
  backends: Backends;
  auth: Authenticator;
  log: Logger;
  now?: () => number;
}

export type Gateway = ReturnType<typeof createGateway>;

export function createGateway({ config, backends, auth, log, now = Date.now }: GatewayDeps) {
  const { broker, presence } = backends;
  const conns = new Connections();
  const stats = new Stats();
  const started = now();
  const slowBound = Math.max(1 << 20, config.maxPayload * 16);
  const burst = config.rate * 2;
  const capacity = socketCapacity();
  let draining = false;
  let connSeq = 0;
  const connPrefix = `${config.gatewayId}.${started.toString(36)}.`;
  const timers: ReturnType<typeof setInterval>[] = [];
  const cleanups = new Set<Promise<void>>();

  function ref(c: Conn): ConnRef {
    return { conn: c.id, user: c.user, since: c.since };
  }

  /** Every outbound frame passes here: holds it until the welcome went out, and bounds slow consumers. */
  function emit(c: Conn, frame: string, offset?: string) {
    if (c.closed) return;
    if (offset !== undefined && c.replayedTo !== null) {
      if (seenBefore(offset, c.replayedTo)) return;
      if (!c.pending) c.replayedTo = null;
    }
    if (c.pending) {
      if (c.pending.length >= MAX_PENDING) return close(c, CLOSE.slow, "slow consumer");
      c.pending.push({ frame, offset });
      return;
    }
    const r = c.ws!.send(frame);
    stats.framesOut++;
    if (r === -1 && c.ws!.getBufferedAmount() > slowBound) close(c, CLOSE.slow, "slow consumer");
  }

  function close(c: Conn, code: number, reason: string) {
    if (c.closed) return;
    c.closed = true;
    try {
      c.ws?.close(code, reason);
    } catch {}
  }

  function fail(c: Conn, code: ErrorCode, message: string, id?: string) {
    stats.error(code);
    emit(c, errorFrame(code, message, id));
  }

  const deliveries: Deliveries = {
    user(user, frame, offset) {
      const set = conns.byUser.get(user);
      if (set) for (const c of set) emit(c, frame, offset);
    },
    room(room, frame) {
      const set = conns.byRoom.get(room);
      if (set) for (const c of set) emit(c, frame);
    },
    broadcast(frame) {
      for (const c of conns.byId.values()) emit(c, frame);
    },
    kick(user, exceptConn) {
      const set = conns.byUser.get(user);
      if (!set) return;
      for (const c of [...set]) if (c.id !== exceptConn) close(c, CLOSE.replaced, exceptConn ? "replaced by a newer session" : "kicked");
    },
  };

  const local: LocalState = {
    counts: () => ({ connections: conns.size, users: conns.users }),
    connections: function* () {
      for (const c of conns.byId.values()) if (!c.closed) yield ref(c);
    },
    rooms: () => conns.roomMemberships(),
  };

  async function roomEntered(c: Conn, room: string, change: RoomChange) {
    if (change.roomEdge) await broker.subscribeRoom(room);
    if (change.userEdge && (await presence.joinRoom(room, c.user)))
      await broker.publishRoom(room, roomEvent(room, "join", c.user, now()));
  }

  async function roomLeft(user: string, room: string, change: RoomChange) {
    if (change.userEdge && (await presence.leaveRoom(room, user)))
      await broker.publishRoom(room, roomEvent(room, "leave", user, now()));
    if (change.roomEdge) broker.unsubscribeRoom(room);
  }

  // ---- connection lifecycle ----

  async function setup(c: Conn) {
    try {
      await Promise.all([broker.subscribeUser(c.user), presence.connect(ref(c))]);
    } catch (err) {
      // Local delivery still works; presence is re-asserted when the store is back.
      log.warn("connection setup incomplete", { conn: c.id, user: c.user, err });
    }
    let replay = null;
    let last: Offset | null = null;
    if (c.resumeFrom !== undefined) {
      last = parseOffset(c.resumeFrom);
      try {
        replay = await broker.replay(c.user, c.resumeFrom);
      } catch (err) {
        log.warn("replay failed", { conn: c.id, user: c.user, err });
        replay = { frames: [], recovered: false };
      }
      c.resumeFrom = undefined;
    }
    if (c.closed) return;
    const pending = c.pending!;
    c.pending = null;
    const welcome: Record<string, unknown> = {
      type: "welcome",
      user: c.user,
      conn: c.id,
      gateway: config.gatewayId,
      region: config.region,
      heartbeat: config.heartbeatMs,
    };
    if (replay) {
      welcome.recovered = replay.recovered;
      welcome.replayed = replay.frames.length;
    }
    emit(c, JSON.stringify(welcome));
    if (replay) {
      for (const f of replay.frames) {
        emit(c, f.frame);
        last = parseOffset(f.offset);
      }
      stats.replayed += replay.frames.length;
    }
    // Live messages that arrived during the replay, and any still on their way: emit drops the ones the replay carried.
    c.replayedTo = last;
    for (const p of pending) emit(c, p.frame, p.offset);
  }

  function opened(ws: ServerWebSocket<Conn>) {
    const c = ws.data;
    c.ws = ws;
    conns.add(c);
    watchExpiry(c);
    stats.connectionsOpened++;
    if (config.sessions === "single") {
      deliveries.kick(c.user, c.id);
      broker.kick(c.user, c.id).catch((err) => log.warn("single-session kick failed", { user: c.user, err }));
    }
    void setup(c);
  }

  function closed(ws: ServerWebSocket<Conn>, code: number) {
    const c = ws.data;
    c.closed = true;
    c.pending = null;
    if (!conns.byId.has(c.id)) return;
    unwatchExpiry(c);
    const { lastForUser, rooms } = conns.remove(c);
    stats.connectionsClosed++;
    log.debug("closed", { conn: c.id, user: c.user, code });
    const r = ref(c);
    const cleanup = (async () => {
      try {
        for (const [room, change] of rooms) await roomLeft(c.user, room, change);
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

  // ---- frames ----

  function allow(c: Conn, t: number): boolean {
    c.tokens = Math.min(burst, c.tokens + ((t - c.refilledAt) * config.rate) / 1000);
    c.refilledAt = t;
    if (c.tokens >= 1) {
      c.tokens -= 1;
      return true;
    }
    if (t - c.floodStart > 10_000) {
      c.floodStart = t;
      c.floodCount = 0;
    }
    if (++c.floodCount > 10 * config.rate) close(c, CLOSE.flood, "rate limit exceeded persistently");
    return false;
  }

  function message(ws: ServerWebSocket<Conn>, msg: string | Buffer) {
    const c = ws.data;
    const t = now();
    c.lastSeen = t;
    stats.framesIn++;
    if (c.closed) return;
    if (!allow(c, t)) return refused(c, msg);
    if (typeof msg !== "string") return fail(c, "bad_request", "binary frames are not accepted; send JSON text frames");
    let f: ClientFrame;
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

  /** Over the rate: one error, carrying the frame's id so even this refusal can be correlated. */
  function refused(c: Conn, msg: string | Buffer) {
    fail(c, "rate_limited", `more than ${config.rate} frames/s`, frameId(msg));
  }

  const ack = (c: Conn, id: string | undefined) => {
    if (id !== undefined) emit(c, `{"type":"ack","id":${JSON.stringify(id)}}`);
  };

  function allowedRoom(c: Conn, room: string, id: string | undefined) {
    if (!c.rooms(room)) throw new FrameError("forbidden", `room ${room} is not allowed by your token`, id);
  }

  async function handle(c: Conn, f: ClientFrame, t: number) {
    switch (f.type) {
      case "ping":
        emit(c, f.id === undefined ? `{"type":"pong"}` : `{"type":"pong","id":${JSON.stringify(f.id)}}`);
        return;
      case "send": {
        const to = typeof f.to === "string" ? [f.to] : [...new Set(f.to)];
        const offsets = await sendDirect(`"${c.user}"`, to, JSON.stringify(f.data), t);
        if (f.id !== undefined)
          emit(c, JSON.stringify(offsets ? { type: "ack", id: f.id, offsets } : { type: "ack", id: f.id }));
        return;
      }
      case "join": {
        allowedRoom(c, f.room, f.id);
        const change = conns.join(c, f.room);
        if (change) {
          try {
            await roomEntered(c, f.room, change);
          } catch (err) {
            const undo = conns.leave(c, f.room);
            if (undo) await roomLeft(c.user, f.room, undo).catch(() => {});
            throw err;
          }
        }
        return ack(c, f.id);
      }
      case "leave": {
        const change = conns.leave(c, f.room);
        if (change) await roomLeft(c.user, f.room, change);
        return ack(c, f.id);
      }
      case "publish": {
        allowedRoom(c, f.room, f.id);
        await broker.publishRoom(f.room, roomMessage(`"${c.user}"`, f.room, JSON.stringify(f.data), t));
        stats.messagesRouted++;
        return ack(c, f.id);
      }
      case "presence": {
        if (f.room !== undefined) {
          allowedRoom(c, f.room, f.id);
          const users = await presence.roomUsers(f.room);
          emit(c, JSON.stringify({ type: "presence", id: f.id, room: f.room, users }));
        } else {
          const users = await presence.users([...new Set(f.users!)]);
          emit(c, JSON.stringify({ type: "presence", id: f.id, users }));
        }
        return;
      }
    }
  }

  async function sendDirect(fromJson: string, to: string[], dataJson: string, ts: number) {
    const offsets = await broker.sendDirect({ fromJson, dataJson, ts }, to);
    stats.messagesRouted += to.length;
    return offsets;
  }

  // ---- upgrade ----

  function refuse(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    return Response.json({ error: { code, message } }, { status, headers });
  }

  async function upgrade(req: Request, url: URL, server: Server<Conn>): Promise<Response | undefined> {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket")
      return refuse(426, "upgrade_required", "GET /ws upgrades to a WebSocket", { upgrade: "websocket" });
    if (draining) return refuse(503, "unavailable", "gateway is draining; reconnect", { "retry-after": "1" });
    if (conns.size >= capacity)
      return refuse(503, "unavailable", "gateway at capacity; try another", { "retry-after": "1" });
    if (broker.state() === "down")
      return refuse(503, "unavailable", "cluster store unreachable; retry", { "retry-after": "2" });
    const since = url.searchParams.get("since") ?? undefined;
    if (since !== undefined && !parseOffset(since))
      return refuse(400, "bad_request", "since must be an offset <epoch>:<seq> from a message");
    let id: Identity;
    try {
      id = await auth.authenticate(req, url);
    } catch (err) {
      if (err instanceof AuthError) {
        stats.error(err.code);
        return refuse(err.status, err.code, err.message);
      }
      throw err;
    }
    const t = now();
    if (id.expiresAt !== undefined && id.expiresAt <= t) return refuse(401, "unauthorized", "token expired");
    const data: Conn = {
      id: connPrefix + (++connSeq).toString(36),
      user: id.user,
      rooms: id.rooms,
      expiresAt: id.expiresAt,
      since: t,
      resumeFrom: since,
      replayedTo: null,
      ws: null,
      joined: null,
      tokens: burst,
      refilledAt: t,
      floodStart: t,
      floodCount: 0,
      lastSeen: t,
      pending: [],
      closed: false,
    };
    if (server.upgrade(req, { data })) return undefined;
    return refuse(400, "bad_request", "WebSocket upgrade failed");
  }

  // ---- timers ----

  function tick() {
    const t = now();
    const deadline = t - 2 * config.heartbeatMs;
    for (const c of conns.byId.values()) {
      if (c.lastSeen < deadline) close(c, CLOSE.heartbeat, "heartbeat timeout");
      else c.ws?.ping();
    }
  }

  // Token expiry by the second: a bucket per second instead of a walk over every connection each second.
  const expiries = new Map<number, Set<Conn>>();
  let expiredUpTo = Math.floor(now() / 1000);
  const expiryBucket = (c: Conn) => Math.ceil(c.expiresAt! / 1000);

  function watchExpiry(c: Conn) {
    if (c.expiresAt === undefined) return;
    const b = expiryBucket(c);
    if (b <= expiredUpTo) return close(c, CLOSE.tokenExpired, "token expired");
    let set = expiries.get(b);
    if (!set) expiries.set(b, (set = new Set()));
    set.add(c);
  }

  function unwatchExpiry(c: Conn) {
    if (c.expiresAt === undefined) return;
    const b = expiryBucket(c);
    const set = expiries.get(b);
    if (set?.delete(c) && set.size === 0) expiries.delete(b);
  }

  function checkExpiry() {
    const until = Math.floor(now() / 1000);
    for (let sec = expiredUpTo + 1; sec <= until; sec++) {
      const set = expiries.get(sec);
      expiredUpTo = sec;
      if (!set) continue;
      expiries.delete(sec);
      for (const c of set) close(c, CLOSE.tokenExpired, "token expired");
    }
  }

  const websocket: WebSocketHandler<Conn> = {
    open: opened,
    message,
    close: closed,
    pong(ws) {
      ws.data.lastSeen = now();
    },
    maxPayloadLength: config.maxPayload,
    // Heartbeats are ours (4002 after two silent intervals), so Bun's own idle timer and pings are off.
    idleTimeout: 0,
    sendPings: false,
    backpressureLimit: slowBound * 2,
    closeOnBackpressureLimit: false,
    perMessageDeflate: false,
  };

  return {
    config,
    stats,
    conns,
    websocket,
    upgrade,
    started,
    deliveries,
    isDraining: () => draining,
    backendState: () => broker.state(),
    /** Admin API entry points share the client paths. */
    admin: {
      sendDirect: (to: string[], dataJson: string) => sendDirect("null", to, dataJson, now()),
      async publishRoom(room: string, dataJson: string) {
        await broker.publishRoom(room, roomMessage("null", room, dataJson, now()));
        stats.messagesRouted++;
      },
      async broadcast(dataJson: string) {
        await broker.broadcast(broadcastMessage(dataJson, now()));
        stats.messagesRouted++;
      },
      async kick(user: string) {
        const n = (await presence.connections(user)).length;
        await broker.kick(user);
        return n;
      },
    },
    async start() {
      await broker.start(deliveries);
      await presence.start(local, (room, user, event) => {
        broker
          .publishRoom(room, roomEvent(room, event, user, now()))
          .catch((err) => log.warn("room event not sent", { room, user, event, err }));
      });
      timers.push(setInterval(tick, config.heartbeatMs));
      timers.push(setInterval(checkExpiry, 1000));
    },
    /** Graceful shutdown (PROTOCOL §7): refuse new upgrades, close everyone with 1001 over drainMs, clean up. */
    async drain() {
      if (draining) return;
      draining = true;
      const all = [...conns.byId.values()];
      log.info("draining", { connections: all.length, drain_ms: config.drainMs });
      const steps = Math.max(1, Math.min(all.length, Math.floor(config.drainMs / 20)));
      const per = Math.ceil(all.length / steps);
      for (let i = 0; i < all.length; i += per) {
        for (const c of all.slice(i, i + per)) close(c, CLOSE.goingAway, "gateway going away; reconnect and resume");
        if (i + per < all.length) await Bun.sleep(config.drainMs / steps);
      }
      const until = Date.now() + 2000;
      while (conns.size > 0 && Date.now() < until) await Bun.sleep(10);
      for (const t of timers) clearInterval(t);
      await Promise.allSettled([...cleanups]);
      await presence.stop().catch((err) => log.warn("presence cleanup failed", { err }));
      await broker.close().catch(() => {});
    },
    /** For tests that run gateways in-process. */
    stopTimers() {
      for (const t of timers) clearInterval(t);
    },
  };
}
