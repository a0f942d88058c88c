// Issue 10 on a real 6-node Redis Cluster (3 primaries + 3 replicas), at the broker seam: two "gateways" (each
// its own clients + RedisBroker) exchange direct messages while primaries are killed and slots migrate.
// Sharding is measured on the servers themselves (DBSIZE, PUBSUB SHARDCHANNELS, INFO commandstats).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createLogger } from "../src/log.ts";
import { redisCli, redisInfo, until } from "../harness/redis-cli.ts";
import { startRedisCluster, type RedisCluster } from "../harness/redis-cluster.ts";
import type { RedisServer } from "../harness/redis.ts";
import { startBrokerGateway, type BrokerGateway } from "./helpers/broker.ts";

const log = createLogger("error", { test: "redis-cluster" });
let cluster: RedisCluster;
const opened: BrokerGateway[] = [];

async function gateway(wait = 0) {
  const g = await startBrokerGateway({ kind: "cluster", urls: cluster.urls }, log, { wait: { replicas: wait, ms: 500 } });
  opened.push(g);
  return g;
}
type Gw = Awaited<ReturnType<typeof gateway>>;

beforeAll(async () => {
  cluster = await startRedisCluster();
});
afterAll(async () => {
  for (const o of opened) await o.broker.close().catch(() => {});
  await cluster?.stop();
});

const msg = (from: string, data: unknown) => ({ fromJson: JSON.stringify(from), dataJson: JSON.stringify(data), ts: Date.now() });
const spread = (xs: number[]) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return xs.map((x) => (x - mean) / mean);
};

async function commandCalls(node: RedisServer, cmd: string): Promise<number> {
  const m = new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(await redisCli(node.port, ["INFO", "commandstats"]));
  return m ? Number(m[1]) : 0;
}

describe("redis cluster: sharding is real", () => {
  test("300 users: keys and sharded channels on every primary within ±25% of the mean; classic Pub/Sub only for broadcast", async () => {
    const [a, b] = [await gateway(), await gateway()];
    expect(a.clients.sharded).toBe(true);
    expect(a.clients.describe()).toContain("sharded Pub/Sub");
    const users = Array.from({ length: 300 }, (_, i) => `shard-user-${i}`);
    for (const n of cluster.nodes) await redisCli(n.port, ["CONFIG", "RESETSTAT"]);
    await Promise.all(users.map((u, i) => (i % 2 ? a : b).broker.subscribeUser(u)));
    // Every user gets one message from the other gateway, and one room each per 10 users.
    await Promise.all(users.map((u, i) => (i % 2 ? b : a).broker.sendDirect(msg("s", i), [u])));
    await Promise.all(users.map((u, i) => (i % 2 ? a : b).rec.until("user", (d) => d.user === u, 1, 10_000)));
    await a.broker.subscribeRoom("shard-room");
    await b.broker.publishRoom("shard-room", '{"type":"message"}');
    await b.broker.broadcast('{"type":"message","broadcast":true}');
    await a.rec.until("room", () => true, 1, 5000);
    await a.rec.until("broadcast", () => true, 1, 5000);

    const primaries = await cluster.primaries();
    expect(primaries.length).toBe(3);
    const keys = await Promise.all(primaries.map(async (p) => Number((await redisCli(p.port, ["DBSIZE"])).trim())));
    const shardChannels = await Promise.all(primaries.map(async (p) => (await redisCli(p.port, ["PUBSUB", "SHARDCHANNELS", "wsg:*"])).split("\n").filter(Boolean).length));
    const spublish = await Promise.all(primaries.map((p) => commandCalls(p, "spublish")));
    const evalsha = await Promise.all(primaries.map((p) => commandCalls(p, "evalsha")));
    console.log(`keys per primary ${keys.join("/")}, sharded channels ${shardChannels.join("/")}, SPUBLISH ${spublish.join("/")}, EVALSHA ${evalsha.join("/")}`);
    expect(keys.reduce((x, y) => x + y, 0)).toBe(300); // a history stream per user (small messages: no byte-check counter)
    expect(shardChannels.reduce((x, y) => x + y, 0)).toBe(301); // 300 users + 1 room
    for (const d of [...spread(keys), ...spread(shardChannels), ...spread(evalsha)]) expect(Math.abs(d)).toBeLessThanOrEqual(0.25);
    for (const x of spublish) expect(x).toBeGreaterThan(0);

    // Classic Pub/Sub: the broadcast channel only, and the one broadcast the only PUBLISH anywhere.
    const classic = new Set<string>();
    let publishes = 0;
    for (const n of cluster.nodes) {
      for (const ch of (await redisCli(n.port, ["PUBSUB", "CHANNELS"])).split("\n").filter(Boolean)) classic.add(ch);
      publishes += await commandCalls(n, "publish");
    }
    expect([...classic]).toEqual(["wsg:b"]);
    expect(publishes).toBe(1);
  }, 60_000);
});

/**
 * 50 sender→receiver pairs across the two gateways, one round of 50 sends every ~20 ms until `stop`:
 * acked offsets per receiver, failed sends, and when every send of a round was acked again.
 */
function traffic(gws: [Gw, Gw], tag: string) {
  const acked = new Map<string, string[]>();
  const state = { running: true, rounds: 0, sent: 0, failed: 0, lastFailAt: 0, lastRoundOkAt: 0 };
  const pairs = Array.from({ length: 50 }, (_, i) => ({ from: gws[i % 2]!, to: gws[(i + 1) % 2]!, recv: `${tag}-r${i}` }));
  const ready = Promise.all(pairs.map((p) => p.to.broker.subscribeUser(p.recv)));
  const done = (async () => {
    await ready;
    for (let round = 0; state.running && round < 5000; round++) {
      const results = await Promise.allSettled(pairs.map((p) => p.from.broker.sendDirect(msg(`${tag}-s`, round), [p.recv])));
      let ok = true;
      results.forEach((r, i) => {
        state.sent++;
        if (r.status === "fulfilled") {
          const recv = pairs[i]!.recv;
          acked.set(recv, [...(acked.get(recv) ?? []), r.value![recv]!]);
        } else {
          if (process.env.DEBUG_TRAFFIC) console.log(round, String(r.reason?.message ?? r.reason).slice(0, 120));
          ok = false;
          state.failed++;
          state.lastFailAt = Date.now();
        }
      });
      if (ok) state.lastRoundOkAt = Date.now();
      state.rounds++;
      await Bun.sleep(20);
    }
  })();
  return {
    state,
    ready,
    async stop() {
      state.running = false;
      await done;
    },
    /** Every acked offset delivered live or retained for resume; live deliveries never twice. */
    async check(): Promise<{ acked: number; lostAcked: number; notLive: number; duplicates: number; reused: number }> {
      let total = 0;
      let lost = 0;
      let notLive = 0;
      let duplicates = 0;
      let reused = 0;
      await Bun.sleep(500);
      for (const p of pairs) {
        const got = p.to.rec.got.filter((d) => d.kind === "user" && d.user === p.recv) as { offset: string; frame: string }[];
        const live = got.map((d) => d.offset);
        // A duplicate is the same message twice. The same offset on two different messages is an offset
        // reused after a failover lost the tail of the history (WAIT 0): counted apart.
        duplicates += got.length - new Set(got.map((d) => d.offset + d.frame)).size;
        reused += new Set(got.map((d) => d.offset + d.frame)).size - new Set(live).size;
        const offsets = acked.get(p.recv) ?? [];
        total += offsets.length;
        const liveSet = new Set(live);
        const missing = offsets.filter((o) => !liveSet.has(o));
        notLive += missing.length;
        if (missing.length) {
          const epoch = missing[0]!.split(":")[0]!;
          const cursor = await p.to.history.replay(p.recv, `${epoch}:0`);
          const retained = new Set<string>();
          for (let page = await cursor.next(), n = 0; page.length && n < 10_000; page = await cursor.next(), n++) for (const f of page) retained.add(f.offset);
          lost += missing.filter((o) => !retained.has(o)).length;
        }
      }
      return { acked: total, lostAcked: lost, notLive, duplicates, reused };
    },
  };
}

describe("redis cluster: failover and slot migration during traffic", () => {
  for (const wait of [1, 0])
    test(`kill -9 of a primary, then its restart: traffic resumes by itself; WAIT ${wait}: ${wait ? "no acked message is lost" : "what is lost is reported"}, none delivered twice`, async () => {
      const gws: [Gw, Gw] = [await gateway(wait), await gateway(wait)];
      const t = traffic(gws, `fo${wait}`);
      await t.ready;
      await Bun.sleep(500);
      const victim = (await cluster.primaries())[0]!;
      const killedAt = Date.now();
      await cluster.kill(victim);
      const failoverMs = await cluster.waitFailover(victim);
      // With WAIT 1 the promoted replica has no replica of its own until the old primary rejoins.
      await cluster.restart(victim);
      await cluster.waitHealthy({ replicas: true, timeoutMs: 30_000 });
      const rejoinedAt = Date.now();
      await until("a fully acked round after the rejoin", async () => t.state.lastRoundOkAt > rejoinedAt, 15_000, 50);
      const recoveryMs = t.state.lastRoundOkAt - killedAt;
      await Bun.sleep(300);
      await t.stop();
      const r = await t.check();
      console.log(
        `cluster kill -9 (WAIT ${wait}): failover ${failoverMs} ms, all sends acked again ${recoveryMs} ms after the kill ` +
          `(rejoin at +${rejoinedAt - killedAt} ms); sent ${t.state.sent}, failed ${t.state.failed}; acked ${r.acked}, ` +
          `not live ${r.notLive}, lost (neither live nor retained) ${r.lostAcked}, duplicates ${r.duplicates}, offsets reused ${r.reused}; ` +
          `wait timeouts ${gws[0].clients.counters.waitTimeouts + gws[1].clients.counters.waitTimeouts}`,
      );
      expect(r.acked).toBeGreaterThan(1000);
      if (wait) expect([r.lostAcked, r.reused]).toEqual([0, 0]);
      expect(r.duplicates).toBe(0);
      // The old primary is back as a replica of the promoted one.
      expect((await redisInfo(victim.port, "replication")).role).toBe("slave");
    }, 90_000);

  test("redis-cli --cluster reshard of 500 slots during traffic loses nothing acked", async () => {
    const gws: [Gw, Gw] = [await gateway(1), await gateway(1)];
    const t = traffic(gws, "rs");
    await t.ready;
    await Bun.sleep(300);
    const [from, to] = await cluster.primaries();
    // Counted by the receiving node itself: another node learns the moves by gossip, a moment later.
    const before = (await cluster.view(to!.port)).find((n) => n.port === to!.port)!.slots;
    const t0 = Date.now();
    await cluster.reshard(from!, to!, 500);
    const reshardMs = Date.now() - t0;
    const after = (await cluster.view(to!.port)).find((n) => n.port === to!.port)!.slots;
    const movedAt = Date.now();
    await until("a fully acked round after the reshard", async () => t.state.lastRoundOkAt > movedAt, 10_000, 50);
    await Bun.sleep(300);
    await t.stop();
    const r = await t.check();
    console.log(`reshard 500 slots in ${reshardMs} ms: sent ${t.state.sent}, failed ${t.state.failed}; acked ${r.acked}, not live ${r.notLive}, lost ${r.lostAcked}, duplicates ${r.duplicates}`);
    expect(after - before).toBe(500);
    expect(r.acked).toBeGreaterThan(500);
    expect(r.lostAcked).toBe(0);
    expect(r.duplicates).toBe(0);
  }, 90_000);
});

describe("redis cluster: sharded subscriptions follow the server, not only the slot map", () => {
  // The intermittent of issue 10 (an "after" message not delivered live after a failover): a node drops a
  // sharded channel with a server-sent SUNSUBSCRIBE while the slot map ioredis reads next looks unchanged, so
  // ioredis re-subscribes nothing. Deterministic here: the owner gives the slot away and takes it back at once.
  test("a server-sent SUNSUBSCRIBE with an unchanged slot map: the channel is subscribed again and delivery resumes", async () => {
    const [a, b] = [await gateway(), await gateway()];
    const user = "sunsub-victim";
    const ch = `wsg:u:{${user}}`;
    await b.broker.subscribeUser(user);
    const slot = Number((await redisCli(cluster.nodes[0]!.port, ["CLUSTER", "KEYSLOT", ch])).trim());
    const view = await cluster.view();
    const owner = view.find((n) => n.flags.includes("master") && n.slotRanges.some(([x, y]) => slot >= x && slot <= y))!;
    const other = view.find((n) => n.flags.includes("master") && n.port !== owner.port)!;
    const numsub = async () => Number((await redisCli(owner.port, ["PUBSUB", "SHARDNUMSUB", ch])).trim().split("\n")[1]);
    expect(await numsub()).toBe(1);
    await redisCli(owner.port, ["CLUSTER", "SETSLOT", String(slot), "NODE", other.id]);
    await redisCli(owner.port, ["CLUSTER", "SETSLOT", String(slot), "NODE", owner.id]);
    await until("the channel subscribed again on its owner", async () => (await numsub()) === 1, 5000, 50);
    await a.broker.sendDirect(msg("s", "after-sunsubscribe"), [user]);
    await b.rec.until("user", (d) => d.user === user && d.frame.includes("after-sunsubscribe"), 1, 5000);
    await cluster.waitHealthy({ replicas: true });
  }, 30_000);
});
