// Picks the backends: in memory without Redis (single-node mode), Redis with any of its topologies (cluster mode).
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { BuildInfo } from "../version.ts";
import { MemoryBroker } from "./memory/broker.ts";
import { MemoryHistory } from "./memory/history.ts";
import { MemoryPresence } from "./memory/presence.ts";
import type { Backends } from "./types.ts";
import type { Ticks } from "../ticks.ts";

/** `now` is the gateway's clock; the Redis backends keep time by Redis's own clock. `ticks`: the gateway's shared timer. */
export async function createBackends(config: Config, log: Logger, started: number, now: () => number = Date.now, build?: BuildInfo, ticks?: Ticks): Promise<Backends> {
  if (!config.redis) {
    const history =
      config.historySize > 0
        ? new MemoryHistory({ size: config.historySize, ttlMs: config.historyTtlS * 1000, maxBytes: config.historyMaxBytes }, now)
        : null;
    return {
      history,
      broker: new MemoryBroker(history),
      presence: new MemoryPresence({ id: config.gatewayId, region: config.region, started, build }, now),
    };
  }
  const { createRedisBackends } = await import("./redis/index.ts");
  return createRedisBackends(config, log, started, build, ticks);
}
