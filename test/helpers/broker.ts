// A "gateway" at the broker seam for Redis tests: its own clients, history and broker, started with a
// Recorder for what it delivers. The caller closes it (broker.close()).
import { RedisBroker } from "../../src/backends/redis/broker.ts";
import { createRedisClients, type ClientOptions, type RedisClients } from "../../src/backends/redis/clients.ts";
import { RedisHistory } from "../../src/backends/redis/history.ts";
import type { RedisTopology } from "../../src/config-redis.ts";
import type { Logger } from "../../src/log.ts";
import { Recorder } from "./backend-contract.ts";

export interface BrokerGateway {
  clients: RedisClients;
  history: RedisHistory;
  broker: RedisBroker;
  rec: Recorder;
}

export async function startBrokerGateway(
  topology: RedisTopology,
  log: Logger,
  opts: ClientOptions & { size?: number; ttlS?: number; maxBytes?: number; batchMs?: number } = {},
): Promise<BrokerGateway> {
  const clients = await createRedisClients(topology, log, opts.wait ? { wait: opts.wait } : {});
  const origin = crypto.randomUUID().slice(0, 8);
  const history = new RedisHistory(clients, { size: opts.size ?? 1000, ttlS: opts.ttlS ?? 300, maxBytes: opts.maxBytes ?? 1 << 20, origin });
  const broker = new RedisBroker(clients, history, origin, 65536, log, opts.batchMs ?? 0);
  const rec = new Recorder();
  await broker.start(rec);
  return { clients, history, broker, rec };
}
