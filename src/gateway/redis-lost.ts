// Losing Redis for long (PROTOCOL §8.4): a gateway that has not reached its primary for
// WSGATE_REDIS_LOST_DRAIN_MS closes its clients with 1001, spread over WSGATE_DRAIN_MS, so they
// reconnect to a gateway that can (another region, through Fly's proxy) and resume by offset. It
// refuses new upgrades and answers /ready 503 meanwhile (the store being down already does both);
// once Redis answers again it is ready and takes connections, and any closes not yet made are kept.
import { CLOSE } from "../protocol/codes.ts";
import type { GatewayContext } from "./context.ts";
import type { Delivery } from "./delivery.ts";
import type { Tick } from "../ticks.ts";

/**
 * How often the store's state is looked at: a half-second error on a window of seconds (10 s by default), on the
 * shared grid of the other periodic jobs (ticks.ts): an idle gateway is charged per wake-up.
 */
const CHECK_MS = 500;
/** Closes are spread in steps at least this far apart (as in the shutdown drain). */
const STEP_MS = 20;
/**
 * The store must be up this long to count as back: the watchdog's reconnect of a stalled link can
 * look "ready" for an instant, which must not restart the window.
 */
const BACK_MS = 1000;

export interface RedisLost {
  /** True from the moment the window ran out until Redis answers again. */
  isLost(): boolean;
  start(): void;
  stop(): void;
}

export function createRedisLost({ config, broker, conns, log, now, ticks }: GatewayContext, { close }: Delivery): RedisLost {
  let timer: Tick | null = null;
  let downSince: number | null = null;
  let upSince: number | null = null;
  let lost = false;
  /** Bumped whenever a spread of closes must stop (Redis back, gateway stopping). */
  let round = 0;

  async function closeEveryone(mine: number) {
    const all = [...conns.byId.values()];
    log.warn("redis lost: closing clients so they reconnect elsewhere", { connections: all.length, drain_ms: config.drainMs, lost_ms: config.redisLostDrainMs });
    const steps = Math.max(1, Math.min(all.length, Math.floor(config.drainMs / STEP_MS)));
    const per = Math.ceil(all.length / steps);
    for (let i = 0; i < all.length && round === mine; i += per) {
      // A connection that closed meanwhile is skipped by close() itself.
      for (const c of all.slice(i, i + per)) close(c, CLOSE.goingAway, "gateway lost its store; reconnect and resume");
      if (i + per < all.length) await Bun.sleep(config.drainMs / steps);
    }
  }

  function check() {
    const down = broker.state() === "down";
    if (!down) {
      upSince ??= now();
      if (downSince !== null && now() - upSince < BACK_MS) return;
      if (lost) log.info("redis back: ready again", { lost_for_ms: now() - (downSince ?? now()) });
      downSince = null;
      if (lost) round++;
      lost = false;
      return;
    }
    upSince = null;
    downSince ??= now();
    if (lost || now() - downSince < config.redisLostDrainMs) return;
    lost = true;
    void closeEveryone(++round);
  }

  return {
    isLost: () => lost,
    start() {
      if (config.redisLostDrainMs === 0 || broker.state() === "none" || timer) return;
      timer = ticks.every(CHECK_MS, check);
    },
    stop() {
      timer?.stop();
      timer = null;
      round++;
    },
  };
}
