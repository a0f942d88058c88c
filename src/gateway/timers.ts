// The gateway's clocks: the heartbeat (ping everyone, close the silent) and token expiry by the second.
import type { Conn } from "../connections.ts";
import { CLOSE } from "../protocol/codes.ts";
import type { GatewayContext } from "./context.ts";
import type { Delivery } from "./delivery.ts";

/** A connection silent for this many heartbeat intervals is closed 4002. */
const SILENT_INTERVALS = 2;
const SECOND_MS = 1000;

export interface Timers {
  /** Close `c` when its token expires (at once if it already has). */
  watchExpiry(c: Conn): void;
  unwatchExpiry(c: Conn): void;
  start(): void;
  stop(): void;
}

/** `onHeartbeat` runs with every heartbeat (retrying backend steps that failed). */
export function createTimers({ config, conns, now }: GatewayContext, { close }: Delivery, onHeartbeat: () => void = () => {}): Timers {
  const running: ReturnType<typeof setInterval>[] = [];

  function tick() {
    const deadline = now() - SILENT_INTERVALS * config.heartbeatMs;
    for (const c of conns.byId.values()) {
      if (c.lastSeen < deadline) close(c, CLOSE.heartbeat, "heartbeat timeout");
      else c.ws?.ping();
    }
    onHeartbeat();
  }

  // A bucket per second instead of a walk over every connection each second.
  const expiries = new Map<number, Set<Conn>>();
  let expiredUpTo = Math.floor(now() / SECOND_MS);
  const expiryBucket = (c: Conn) => Math.ceil(c.expiresAt! / SECOND_MS);

  function checkExpiry() {
    const until = Math.floor(now() / SECOND_MS);
    for (let sec = expiredUpTo + 1; sec <= until; sec++) {
      const set = expiries.get(sec);
      expiredUpTo = sec;
      if (!set) continue;
      expiries.delete(sec);
      for (const c of set) close(c, CLOSE.tokenExpired, "token expired");
    }
  }

  return {
    watchExpiry(c) {
      if (c.expiresAt === undefined) return;
      const b = expiryBucket(c);
      if (b <= expiredUpTo) return close(c, CLOSE.tokenExpired, "token expired");
      let set = expiries.get(b);
      if (!set) expiries.set(b, (set = new Set()));
      set.add(c);
    },
    unwatchExpiry(c) {
      if (c.expiresAt === undefined) return;
      const b = expiryBucket(c);
      const set = expiries.get(b);
      if (set?.delete(c) && set.size === 0) expiries.delete(b);
    },
    start() {
      running.push(setInterval(tick, config.heartbeatMs));
      running.push(setInterval(checkExpiry, SECOND_MS));
    },
    stop() {
      for (const t of running) clearInterval(t);
    },
  };
}
