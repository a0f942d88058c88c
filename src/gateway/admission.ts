// The door: an HTTP upgrade to /ws is refused (draining, full, store down, bad `since`, bad token) with a
// JSON error and status, or admitted as a fresh Conn.
import { readFileSync } from "node:fs";
import type { Server } from "bun";
import { AuthError, type Authenticator, type Identity } from "../auth.ts";
import type { Conn } from "../connections.ts";
import { parseOffset } from "../offsets.ts";
import { RETRY_AFTER } from "../protocol/codes.ts";
import { rateBurst, type GatewayContext } from "./context.ts";

/** Open files kept back from sockets for Redis, listeners and logs. */
const RESERVED_FILES = 100;

/**
 * Sockets this process can hold: the open-files limit less a reserve. Past it accept() would fail anyway;
 * refusing with 503 + Retry-After lets clients go to another machine.
 */
export function socketCapacity(limitsText?: string): number {
  try {
    const text = limitsText ?? readFileSync("/proc/self/limits", "utf8");
    const m = /^Max open files\s+(\d+)/m.exec(text);
    if (m) return Math.max(1, Number(m[1]) - RESERVED_FILES);
  } catch {}
  return Number.POSITIVE_INFINITY;
}

function refuse(status: number, code: string, message: string, headers: Record<string, string> = {}) {
  return Response.json({ error: { code, message } }, { status, headers });
}

export type Upgrade = (req: Request, url: URL, server: Server<Conn>) => Promise<Response | undefined>;

export interface Admission {
  upgrade: Upgrade;
  opened(user: string): void;
}

/** A fresh Conn for an admitted upgrade. */
function newConn(connId: string, burst: number, id: Identity, since: string | undefined, t: number): Conn {
  return {
    id: connId,
    user: id.user,
    rooms: id.rooms,
    expiresAt: id.expiresAt,
    since: t,
    resumeFrom: since,
    replayedTo: null,
    drained: null,
    ws: null,
    joined: null,
    tokens: burst,
    refilledAt: t,
    floodStart: t,
    floodCount: 0,
    lastSeen: t,
    pingedAt: 0,
    pending: [],
    closed: false,
  };
}

export function createAdmission(ctx: GatewayContext, auth: Authenticator, isDraining: () => boolean): Admission {
  const { config, broker, stats, conns, now } = ctx;
  const capacity = socketCapacity();
  const burst = rateBurst(config);
  const connPrefix = `${config.gatewayId}.${ctx.started.toString(36)}.`;
  let connSeq = 0;
  /**
   * Upgrades admitted but not yet opened, per user: the per-user cap counts them, or a burst of simultaneous
   * upgrades would all pass the check before any of them is registered. Expired after a while in case Bun
   * never opens one (the client went away mid-handshake).
   */
  const opening = new Map<string, { n: number; t: number }>();
  const OPENING_EXPIRY_MS = 10_000;

  function userConns(user: string, t: number): number {
    const o = opening.get(user);
    if (o && t - o.t > OPENING_EXPIRY_MS) opening.delete(user);
    return (conns.byUser.get(user)?.size ?? 0) + (opening.get(user)?.n ?? 0);
  }

  /** Refusals that need no token: the gateway cannot or will not take anyone now, or `since` is malformed. */
  function refusedBeforeAuth(req: Request, since: string | undefined): Response | undefined {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket")
      return refuse(426, "upgrade_required", "GET /ws upgrades to a WebSocket", { upgrade: "websocket" });
    if (isDraining()) return refuse(503, "unavailable", "gateway is draining; reconnect", { "retry-after": RETRY_AFTER.busy });
    if (conns.size >= capacity)
      return refuse(503, "unavailable", "gateway at capacity; try another", { "retry-after": RETRY_AFTER.busy });
    if (broker.state() === "down")
      return refuse(503, "unavailable", "cluster store unreachable; retry", { "retry-after": RETRY_AFTER.store });
    if (since !== undefined && !parseOffset(since))
      return refuse(400, "bad_request", "since must be an offset <epoch>:<seq> from a message");
    return undefined;
  }

  const upgrade: Upgrade = async (req, url, server) => {
    const since = url.searchParams.get("since") ?? undefined;
    const early = refusedBeforeAuth(req, since);
    if (early) return early;
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
    if (userConns(id.user, t) >= config.maxConnsPerUser) {
      stats.error("too_many_connections");
      return refuse(429, "too_many_connections", `at most ${config.maxConnsPerUser} connections per user on one gateway`, {
        "retry-after": "1",
      });
    }
    // Counted before the upgrade: Bun may run the open handler (which uncounts it) inside server.upgrade().
    const o = opening.get(id.user);
    opening.set(id.user, { n: (o?.n ?? 0) + 1, t });
    if (server.upgrade(req, { data: newConn(connPrefix + (++connSeq).toString(36), burst, id, since, t) })) return undefined;
    opened(id.user);
    return refuse(400, "bad_request", "WebSocket upgrade failed");
  };

  /** The socket of an admitted upgrade opened: it is counted by the registry from now on. */
  function opened(user: string) {
    const o = opening.get(user);
    if (!o) return;
    if (--o.n <= 0) opening.delete(user);
  }

  return { upgrade, opened };
}
