// One Redis setup per topology of PROTOCOL §8.3, behind one interface, so a suite runs unchanged against one
// redis-server, a 6-node Redis Cluster or a Sentinel group: the env a gateway needs, and a primary to kill.
import { startRedis, type RedisServer } from "./redis.ts";
import { redisCli } from "./redis-cli.ts";
import { startRedisCluster, type RedisCluster } from "./redis-cluster.ts";
import { startRedisSentinel, type RedisSentinelGroup } from "./redis-sentinel.ts";

export type TopologyKind = "single" | "cluster" | "sentinel";
export const ALL_TOPOLOGIES: readonly TopologyKind[] = ["single", "cluster", "sentinel"];
/** Topologies a whole gateway runs on (every presence and history script touches one slot). */
export const GATEWAY_TOPOLOGIES: readonly TopologyKind[] = ALL_TOPOLOGIES;

export interface KilledPrimary {
  node: RedisServer;
  /** Until another server took over (cluster/sentinel); ms waited. Single Redis has nobody to take over: 0. */
  waitFailover(timeoutMs?: number): Promise<number>;
  /** Start the killed server again: empty; in a cluster or sentinel group it rejoins as a replica. */
  restart(): Promise<void>;
}

export interface RedisSetup {
  kind: TopologyKind;
  /** Environment for a gateway on this topology. */
  env: Record<string, string>;
  /** Data-holding servers currently primaries (one, except in a cluster). */
  primaries(): Promise<RedisServer[]>;
  /** kill -9 a primary (the one owning `key`'s slot in a cluster, else the first). */
  killPrimary(key?: string): Promise<KilledPrimary>;
  /** Until every primary has a synced replica again (no-op for single). */
  waitReplicas(timeoutMs?: number): Promise<void>;
  cluster?: RedisCluster;
  sentinel?: RedisSentinelGroup;
  single?: RedisServer;
  stop(): Promise<void>;
}

/** `WSGATE_TEST_TOPOLOGIES=single,sentinel` narrows a run; default all three. */
export function topologiesFromEnv(env: Record<string, string | undefined> = process.env, all: readonly TopologyKind[] = ALL_TOPOLOGIES): TopologyKind[] {
  const want = env.WSGATE_TEST_TOPOLOGIES?.split(",").map((s) => s.trim()).filter(Boolean);
  if (!want?.length) return [...all];
  for (const w of want) if (!ALL_TOPOLOGIES.includes(w as TopologyKind)) throw new Error(`unknown topology ${w}`);
  return all.filter((k) => want.includes(k));
}

export async function startTopology(kind: TopologyKind): Promise<RedisSetup> {
  if (kind === "single") {
    const single = await startRedis();
    return {
      kind,
      env: { REDIS_URL: single.url },
      single,
      primaries: async () => [single],
      async killPrimary() {
        await single.stop("SIGKILL");
        return { node: single, waitFailover: async () => 0, restart: () => single.start() };
      },
      waitReplicas: async () => {},
      stop: () => single.stop(),
    };
  }
  if (kind === "cluster") {
    const cluster = await startRedisCluster();
    return {
      kind,
      env: { REDIS_CLUSTER_URLS: cluster.env },
      cluster,
      primaries: () => cluster.primaries(),
      async killPrimary(key) {
        const ps = await cluster.primaries();
        let node = ps[0]!;
        if (key) {
          const slot = Number((await redisCli(ps[0]!.port, ["CLUSTER", "KEYSLOT", key])).trim());
          const owner = (await cluster.view()).find((n) => n.flags.includes("master") && n.slots > 0 && ownsSlot(n, slot));
          node = ps.find((p) => p.port === owner?.port) ?? node;
        }
        await cluster.kill(node);
        return { node, waitFailover: (ms) => cluster.waitFailover(node, ms), restart: () => cluster.restart(node) };
      },
      waitReplicas: (ms) => cluster.waitHealthy({ replicas: true, timeoutMs: ms }),
      stop: () => cluster.stop(),
    };
  }
  const sentinel = await startRedisSentinel();
  return {
    kind,
    env: { REDIS_SENTINELS: sentinel.env, REDIS_SENTINEL_MASTER: sentinel.masterName },
    sentinel,
    primaries: async () => [await sentinel.primary()],
    async killPrimary() {
      const node = await sentinel.primary();
      await sentinel.kill(node);
      return { node, waitFailover: (ms) => sentinel.waitFailover(node, ms), restart: () => sentinel.restart(node) };
    },
    waitReplicas: (ms) => sentinel.waitReplicas(1, ms),
    stop: () => sentinel.stop(),
  };
}

function ownsSlot(n: { slotRanges?: [number, number][] }, slot: number): boolean {
  return (n.slotRanges ?? []).some(([a, b]) => slot >= a && slot <= b);
}
