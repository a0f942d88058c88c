// Picks the backends: in memory without Redis (single-node mode), Redis with any of its topologies (cluster mode).
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { MemoryBroker } from "./memory/broker.ts";
import { MemoryPresence } from "./memory/presence.ts";
import type { Backends } from "./types.ts";

export async function createBackends(config: Config, log: Logger, started: number): Promise<Backends> {
  if (!config.redis) {
    return {
      broker: new MemoryBroker({ historySize: config.historySize, historyTtlS: config.historyTtlS }),
      presence: new MemoryPresence({ id: config.gatewayId, region: config.region, started }),
    };
  }
  const { createRedisBackends } = await import("./redis/index.ts");
  return createRedisBackends(config, log, started);
}
