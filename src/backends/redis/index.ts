// Cluster-mode backends over Redis: one set of connections shared by the broker and presence.
import type { Config } from "../../config.ts";
import type { Logger } from "../../log.ts";
import type { BuildInfo } from "../../version.ts";
import type { Backends } from "../types.ts";
import { RedisBroker } from "./broker.ts";
import { createRedisClients } from "./clients.ts";
import { RedisHistory } from "./history.ts";
import { RedisPresence } from "./presence.ts";
import type { Ticks } from "../../ticks.ts";

export async function createRedisBackends(config: Config, log: Logger, started: number, build?: BuildInfo, ticks?: Ticks): Promise<Backends> {
  const clients = await createRedisClients(config.redis!, log, { wait: { replicas: config.redisWait, ms: config.redisWaitMs }, ticks });
  // The one line that says which topology and Pub/Sub kind this gateway runs on (capability detection).
  log.info(clients.describe());
  // Tags what this gateway publishes (broker and history's append script), so it skips its own echo.
  const origin = crypto.randomUUID().slice(0, 8);
  const history =
    config.historySize > 0
      ? new RedisHistory(clients, { size: config.historySize, ttlS: config.historyTtlS, maxBytes: config.historyMaxBytes, origin })
      : null;
  return {
    redisCounters: clients.counters,
    history,
    broker: new RedisBroker(clients, history, origin, config.maxPayload, log, config.redisBatchMs),
    presence: new RedisPresence(
      clients,
      {
        gatewayId: config.gatewayId,
        region: config.region,
        started,
        build,
        ttlMs: config.presenceTtlMs,
        // Refresh well inside the TTL, and at least once per heartbeat so a re-assert is never later than that.
        intervalMs: Math.min(config.heartbeatMs, Math.floor(config.presenceTtlMs / 3)),
        ticks,
      },
      log,
    ),
  };
}
