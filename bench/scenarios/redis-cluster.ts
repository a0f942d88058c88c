// `bun run bench --redis cluster`: what Redis Cluster buys, measured at the broker seam (the Redis half of
// a direct message: history script + SPUBLISH/PUBLISH + delivery to the subscribed broker), one Redis vs a
// 6-node cluster (3 primaries + 3 replicas), then the cluster with WAIT 1. Per primary: Redis CPU µs per
// message (INFO cpu main thread / EVALSHA calls), keys, sharded channels and commands. In the table the
// "wsgate" column is the cluster and the "floor" column is one Redis.
//
// Honest limits: this machine has 2 cores. One Redis plus the load generator already fill them, so three
// primaries cannot run three times faster here; the per-primary CPU cost and the spread are what carry
// over to a machine per primary. No WebSockets in this scenario (the gateway's share is in `throughput`).
import { RedisBroker } from "../../src/backends/redis/broker.ts";
import { RedisHistory } from "../../src/backends/redis/history.ts";
import { createRedisClients } from "../../src/backends/redis/clients.ts";
import type { RedisTopology } from "../../src/config-redis.ts";
import { createLogger } from "../../src/log.ts";
import { redisCli } from "../../harness/redis-cli.ts";
import { startTopology, type RedisSetup } from "../../harness/topologies.ts";
import type { Ctx } from "../lib/context.ts";

interface PrimaryFigures {
  port: number;
  cpuUsPerMsg: number;
  messages: number;
  commands: number;
  keys: number;
  shardChannels: number;
}
interface Run {
  label: string;
  ackedPerS: number;
  deliveredPerS: number;
  failed: number;
  primaries: PrimaryFigures[];
}

const log = createLogger("error", { bench: "redis-cluster" });

async function cpuUs(port: number): Promise<number> {
  const info = await redisCli(port, ["INFO", "cpu"]);
  const f = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, "m").exec(info)?.[1] ?? NaN);
  // The main thread is where commands run; fall back to the process total on servers without the split.
  const main = f("used_cpu_sys_main_thread") + f("used_cpu_user_main_thread");
  return (Number.isFinite(main) ? main : f("used_cpu_sys") + f("used_cpu_user")) * 1e6;
}

async function calls(port: number): Promise<{ evalsha: number; total: number }> {
  const text = await redisCli(port, ["INFO", "commandstats"]);
  let total = 0, evalsha = 0;
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (m[1] === "info" || m[1] === "ping") continue;
    total += Number(m[2]);
    if (m[1] === "evalsha") evalsha = Number(m[2]);
  }
  return { evalsha, total };
}

async function measure(setup: RedisSetup, label: string, wait: number, users: number, seconds: number, inflight: number): Promise<Run> {
  const topology: RedisTopology = setup.cluster ? { kind: "cluster", urls: setup.cluster.urls } : { kind: "single", url: setup.single!.url };
  const brokers: RedisBroker[] = [];
  let delivered = 0;
  const deliveries = { user: () => void delivered++, room() {}, broadcast() {}, kick() {}, resume() {} };
  for (let i = 0; i < 2; i++) {
    const clients = await createRedisClients(topology, log, { wait: { replicas: wait, ms: 1000 } });
    const origin = crypto.randomUUID().slice(0, 8);
    const b = new RedisBroker(clients, new RedisHistory(clients, { size: 100, ttlS: 60, maxBytes: 1 << 20, origin }), origin, 65536, log);
    await b.start(deliveries);
    brokers.push(b);
  }
  const names = Array.from({ length: users }, (_, i) => `bench-${label}-${i}`);
  await Promise.all(names.map((u, i) => brokers[i % 2]!.subscribeUser(u)));
  const primaries = await setup.primaries();
  const before = await Promise.all(primaries.map(async (p) => ({ cpu: await cpuUs(p.port), calls: await calls(p.port) })));
  let acked = 0, failed = 0, n = 0;
  const end = Date.now() + seconds * 1000;
  const frame = JSON.stringify({ text: "x".repeat(64) });
  const t0 = performance.now();
  const worker = async (from: number) => {
    for (let i = 0; Date.now() < end && i < 10_000_000; i++) {
      // Every message crosses: sent by one broker to a user the other broker holds.
      const to = names[(2 * (n++ % (users / 2)) + (1 - from)) % users]!;
      await brokers[from]!.sendDirect({ fromJson: '"bench"', dataJson: frame, ts: Date.now() }, [to]).then(
        () => void acked++,
        () => void failed++,
      );
    }
  };
  await Promise.all(Array.from({ length: inflight }, (_, i) => worker(i % 2)));
  const elapsed = (performance.now() - t0) / 1000;
  await Bun.sleep(300);
  const figures: PrimaryFigures[] = [];
  for (const [i, p] of primaries.entries()) {
    const c = await calls(p.port);
    const messages = c.evalsha - before[i]!.calls.evalsha;
    figures.push({
      port: p.port,
      messages,
      commands: c.total - before[i]!.calls.total,
      cpuUsPerMsg: messages > 0 ? (await cpuUs(p.port) - before[i]!.cpu) / messages : NaN,
      keys: Number((await redisCli(p.port, ["DBSIZE"])).trim()),
      shardChannels: setup.cluster ? (await redisCli(p.port, ["PUBSUB", "SHARDCHANNELS", "wsg:*"])).split("\n").filter(Boolean).length : 0,
    });
  }
  for (const b of brokers) await b.close();
  return { label, ackedPerS: acked / elapsed, deliveredPerS: delivered / elapsed, failed, primaries: figures };
}

const spreadPct = (xs: number[]) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return mean ? Math.max(...xs.map((x) => Math.abs(x - mean) / mean)) * 100 : 0;
};

export async function redisCluster(ctx: Ctx): Promise<void> {
  const seconds = ctx.opts.quick ? 3 : Math.min(ctx.opts.durationS, 6);
  const users = ctx.opts.conns ?? 300;
  const inflight = ctx.opts.quick ? 100 : 400;
  const runs: Run[] = [];
  for (const [kind, wait] of [["single", 0], ["cluster", 0], ["cluster", 1]] as const) {
    const label = `${kind}${wait ? "-wait1" : ""}`;
    ctx.log(`redis-cluster: ${label}, ${users} users, ${inflight} sends in flight, ${seconds} s`);
    const setup = await startTopology(kind);
    try {
      const r = await measure(setup, label, wait, users, seconds, inflight);
      runs.push(r);
      ctx.log(
        `  ${label}: ${Math.round(r.ackedPerS)} acked/s, ${Math.round(r.deliveredPerS)} delivered/s, ${r.failed} failed; per primary: ` +
          r.primaries.map((p) => `${p.cpuUsPerMsg.toFixed(1)} µs/msg, ${p.messages} msgs, ${p.commands} cmds, ${p.keys} keys, ${p.shardChannels} sharded channels`).join(" | "),
      );
    } finally {
      await setup.stop();
    }
  }
  ctx.detail.redisCluster = { users, inflight, seconds, runs, note: "2-core machine: Redis processes and the load generator share 2 cores" };
  const [single, cluster, clusterWait] = runs;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const row = (metric: string, unit: string, c: number | null, s: number | null) => ctx.rows.push({ scenario: "redis-cluster", metric, unit, wsgate: c, floor: s });
  row("direct msgs/s at the broker (cluster | one Redis)", "msgs/s", cluster?.ackedPerS ?? null, single?.ackedPerS ?? null);
  row("same, cluster with WAIT 1 (| one Redis)", "msgs/s", clusterWait?.ackedPerS ?? null, single?.ackedPerS ?? null);
  row("Redis CPU per message, mean per primary", "µs/msg", cluster ? mean(cluster.primaries.map((p) => p.cpuUsPerMsg)) : null, single?.primaries[0]?.cpuUsPerMsg ?? null);
  if (cluster) {
    row("spread of keys across primaries (max off mean)", "%", spreadPct(cluster.primaries.map((p) => p.keys)), null);
    row("spread of sharded channels across primaries", "%", spreadPct(cluster.primaries.map((p) => p.shardChannels)), null);
    row("spread of commands across primaries", "%", spreadPct(cluster.primaries.map((p) => p.commands)), null);
  }
}
