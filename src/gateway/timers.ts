// The gateway's clocks: the heartbeat (ping the silent, close those silent for two intervals) and token expiry
// by the second.
import type { Conn } from "../connections.ts";
import { CLOSE } from "../protocol/codes.ts";
import type { GatewayContext } from "./context.ts";
import type { Delivery } from "./delivery.ts";
import { gridPeriod, type Tick } from "../ticks.ts";

/** A connection silent for this many heartbeat intervals is closed 4002. */
const SILENT_INTERVALS = 2;
/**
 * The heartbeat sweep visits every connection at least this many times per interval, a slice per step: no tick
 * pings every socket at once (a 19.9k-connection gateway spent 7 % of a core in the tick's window), and a
 * connection is pinged within a quarter interval of falling silent for one, well before its 2-interval deadline.
 * Steps run on the shared half-second grid (ticks.ts), so they wake the process with the other periodic jobs.
 */
const VISITS_PER_INTERVAL = 4;
const STEPS_PER_VISIT = 10;
const SECOND_MS = 1000;
/** A sweep step this many step periods late means this process stalled (see step). */
const STALL_STEPS = 4;

export interface Timers {
  /** Close `c` when its token expires (at once if it already has). */
  watchExpiry(c: Conn): void;
  unwatchExpiry(c: Conn): void;
  start(): void;
  stop(): void;
}

/** The heartbeat sweep: `step` runs every `stepMs`; `onHeartbeat` runs with every step. */
export function heartbeatSweep({ config, conns, now }: GatewayContext, close: Delivery["close"], onHeartbeat: () => void) {
  // One pass over every connection takes heartbeat / VISITS_PER_INTERVAL, in STEPS_PER_VISIT slices. A Map
  // iterator survives deletes and sees entries added behind it, so the pass resumes where the last step left off.
  let pass: Iterator<Conn> | null = null;
  const stepMs = gridPeriod(config.heartbeatMs / (VISITS_PER_INTERVAL * STEPS_PER_VISIT));
  let lastStepAt = now();

  /**
   * Only connections silent (no frame, no pong) for a whole interval are pinged, and once until they answer:
   * an active connection costs the heartbeat nothing.
   */
  function step() {
    const t = now();
    const pingBefore = t - config.heartbeatMs;
    const closeBefore = t - SILENT_INTERVALS * config.heartbeatMs;
    // After a stall of this process (CPU starvation, a long GC), pongs may sit unread in the sockets: closing
    // now would judge clients by our own lateness (the failover test saw 4002 for live observers). This step
    // only pings; the loop reads input before the next one.
    const stalled = t - lastStepAt > STALL_STEPS * stepMs;
    lastStepAt = t;
    if (!pass) pass = conns.byId.values();
    // Sized by the connections now, not at the pass's start: a pass begun at 1k connections that grew to 19.9k
    // would otherwise take 100 s, pinging late (and the idle bench, measuring in that window, saw a third of
    // the pings). test/heartbeat-grid.test.ts opens many behind a small pass.
    const perStep = Math.max(1, Math.ceil(conns.size / STEPS_PER_VISIT));
    for (let i = 0; i < perStep; i++) {
      const next = pass.next();
      if (next.done) {
        pass = null;
        return;
      }
      const c = next.value;
      // Silent for two intervals and a whole interval to answer the ping since: closed. A connection pinged
      // late (a slow sweep) still gets its interval, so the deadline is 2–2.5 intervals, never less.
      if (c.lastSeen < closeBefore && c.pingedAt > c.lastSeen) {
        if (!stalled && t - c.pingedAt >= config.heartbeatMs) close(c, CLOSE.heartbeat, "heartbeat timeout");
      } else if (c.lastSeen < pingBefore && c.pingedAt <= c.lastSeen) {
        c.pingedAt = t;
        c.ws?.ping();
      }
    }
    onHeartbeat();
  }

  return { step, stepMs, restart: () => void (lastStepAt = now()) };
}

/** `onHeartbeat` runs with every heartbeat (retrying backend steps that failed). */
export function createTimers(ctx: GatewayContext, { close }: Delivery, onHeartbeat: () => void = () => {}): Timers {
  const { now } = ctx;
  const running: Tick[] = [];
  const sweep = heartbeatSweep(ctx, close, onHeartbeat);

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
      sweep.restart();
      running.push(ctx.ticks.every(sweep.stepMs, sweep.step));
      running.push(ctx.ticks.every(SECOND_MS, checkExpiry));
    },
    stop() {
      for (const t of running) t.stop();
      running.length = 0;
    },
  };
}
