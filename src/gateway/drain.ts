// Graceful shutdown (PROTOCOL §7): refuse new upgrades, wait drainDelayMs, close everyone with 1001 spread over drainMs, wait for
// their cleanups, then let the backends go.
import { CLOSE } from "../protocol/codes.ts";
import type { GatewayContext } from "./context.ts";
import type { Delivery } from "./delivery.ts";
import type { Session } from "./session.ts";
import type { Timers } from "./timers.ts";

/** Closes are spread in steps at least this far apart. */
const STEP_MS = 20;
/** How long to wait for the closed sockets' close events after the last step. */
const CLOSE_WAIT_MS = 2000;
const POLL_MS = 10;

export interface Drain {
  isDraining(): boolean;
  drain(): Promise<void>;
}

export function createDrain(ctx: GatewayContext, { close }: Delivery, session: Session, timers: Timers): Drain {
  const { config, conns, log, broker, presence } = ctx;
  let draining = false;

  async function closeEveryone() {
    const all = [...conns.byId.values()];
    log.info("draining", { connections: all.length, drain_ms: config.drainMs });
    const steps = Math.max(1, Math.min(all.length, Math.floor(config.drainMs / STEP_MS)));
    const per = Math.ceil(all.length / steps);
    for (let i = 0; i < all.length; i += per) {
      for (const c of all.slice(i, i + per)) close(c, CLOSE.goingAway, "gateway going away; reconnect and resume");
      if (i + per < all.length) await Bun.sleep(config.drainMs / steps);
    }
    // Counted in polls, not read off a clock: an injected clock may stand still.
    for (let waited = 0; conns.size > 0 && waited < CLOSE_WAIT_MS; waited += POLL_MS) await Bun.sleep(POLL_MS);
  }

  return {
    isDraining: () => draining,
    async drain() {
      if (draining) return;
      draining = true;
      // /ready and new upgrades fail from here on, but a load balancer only learns it at its next check
      // (Fly: every few seconds). Closing now would send reconnects back through a proxy that still
      // routes here; waiting first lets them land on machines that passed the check.
      if (config.drainDelayMs > 0) {
        log.info("drain delay", { delay_ms: config.drainDelayMs, connections: conns.size });
        await Bun.sleep(config.drainDelayMs);
      }
      await closeEveryone();
      timers.stop();
      await Promise.allSettled(session.cleanups());
      await presence.stop().catch((err) => log.warn("presence cleanup failed", { err }));
      await broker.close().catch(() => {});
    },
  };
}
