// The Broker/Presence contract (test/helpers/backend-contract.ts) against the Redis backends, once per
// topology: one redis-server (REDIS_URL) and a real 6-node Redis Cluster (REDIS_CLUSTER_URLS). Every
// "gateway" of a suite is one createRedisBackends() on the same store, so the cross-gateway assertions run too.
import { loadConfig } from "../src/config.ts";
import { createRedisBackends } from "../src/backends/redis/index.ts";
import { createLogger } from "../src/log.ts";
import { backendContract } from "./helpers/backend-contract.ts";
import { startRedis } from "../harness/redis.ts";
import { startRedisCluster } from "../harness/redis-cluster.ts";

// Warnings stay visible (a failing test wants them); info lines would drown the report.
const log = createLogger("warn", { test: "backends-redis" });

const stores = [
  async () => {
    const redis = await startRedis();
    return { name: "redis", env: { REDIS_URL: redis.url }, stop: () => redis.stop() };
  },
  async () => {
    const cluster = await startRedisCluster();
    return { name: "redis cluster", env: { REDIS_CLUSTER_URLS: cluster.env }, stop: () => cluster.stop() };
  },
];

for (const start of stores) {
  const store = await start();
  backendContract(
    store.name,
    async (o) => {
      const config = loadConfig({
        ...store.env,
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
    { shared: true, cleanup: () => store.stop() },
  );
}
