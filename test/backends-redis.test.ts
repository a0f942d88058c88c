// The Broker/Presence contract (test/helpers/backend-contract.ts) against the Redis backends: every
// "gateway" of the suite is one createRedisBackends() on the same real redis-server, so the
// cross-gateway assertions run too.
import { loadConfig } from "../src/config.ts";
import { createRedisBackends } from "../src/backends/redis/index.ts";
import { createLogger } from "../src/log.ts";
import { backendContract } from "./helpers/backend-contract.ts";
import { startRedis } from "../harness/redis.ts";

const redis = await startRedis();
// Warnings stay visible (a failing test wants them); info lines would drown the report.
const log = createLogger("warn", { test: "backends-redis" });

backendContract(
  "redis",
  async (o) => {
    const config = loadConfig({
      REDIS_URL: redis.url,
      WSGATE_AUTH: "none",
      WSGATE_GATEWAY_ID: o.gatewayId,
      WSGATE_REGION: o.region,
      WSGATE_HISTORY_SIZE: String(o.historySize),
      WSGATE_HISTORY_TTL_S: String(o.historyTtlS),
      WSGATE_HISTORY_MAX_BYTES: String(o.historyMaxBytes),
      WSGATE_PRESENCE_TTL_MS: String(o.presenceTtlMs),
      WSGATE_HEARTBEAT_MS: String(o.heartbeatMs),
    });
    return createRedisBackends(config, log, o.started);
  },
  { shared: true, cleanup: () => redis.stop() },
);
