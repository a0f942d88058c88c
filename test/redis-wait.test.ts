// PROTOCOL §8.3, WSGATE_REDIS_WAIT: an ack means n replicas have the message; past WSGATE_REDIS_WAIT_MS the
// sender gets `unavailable` (the message stays stored and is still delivered), counted in
// wsgate_redis_wait_timeouts_total. Plus the one start-up line naming the Redis mode.
import { afterAll, expect, test } from "bun:test";
import { closeAll, connectUser, isDirect } from "./helpers/cluster.ts";
import type { TestClient } from "./helpers/client.ts";
import { startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { startRedis, type RedisServer } from "../harness/redis.ts";
import { redisInfo, until } from "../harness/redis-cli.ts";

const servers: RedisServer[] = [];
const gws: GatewayProc[] = [];
const clients: TestClient[] = [];
afterAll(async () => {
  closeAll(clients);
  await Promise.all(gws.map((g) => g.kill()));
  for (const s of servers.reverse()) await s.stop();
});

async function metric(gw: GatewayProc, name: string): Promise<number> {
  const text = await (await gw.admin("/metrics")).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

test("WAIT 1: acked once the replica has it; without a replica `unavailable` after WSGATE_REDIS_WAIT_MS, still delivered, counted", async () => {
  const primary = await startRedis();
  servers.push(primary);
  const replica = await startRedis({ args: ["--replicaof", "127.0.0.1", String(primary.port), "--repl-diskless-sync-delay", "0", "--dir", "/tmp"] });
  servers.push(replica);
  await until("replica in sync", async () => (await redisInfo(replica.port, "replication")).master_link_status === "up", 10_000, 50);
  const gw = await startGateway({ REDIS_URL: primary.url, WSGATE_REDIS_WAIT: "1", WSGATE_REDIS_WAIT_MS: "300", LOG_LEVEL: "info" });
  gws.push(gw);
  expect(gw.output()).toContain("redis mode: single, Redis 7");
  expect(gw.output()).toContain("classic Pub/Sub, WAIT 1 within 300 ms");

  const [a, b] = [await connectUser(gw, "wait-a"), await connectUser(gw, "wait-b")];
  clients.push(a, b);
  const ack = await a.request({ type: "send", to: "wait-b", data: 1 });
  expect(ack.type).toBe("ack");
  expect((await b.next(isDirect)).offset).toBe(ack.offsets["wait-b"]);
  // The replica holds it already: WAIT returned only after it confirmed.
  const replicated = await redisInfo(replica.port, "keyspace");
  expect(replicated.db0).toMatch(/keys=\d+/);
  expect(await metric(gw, "wsgate_redis_wait_timeouts_total")).toBe(0);

  await replica.stop();
  await until("primary saw the replica go", async () => Number((await redisInfo(primary.port, "replication")).connected_slaves) === 0, 10_000, 50);
  const t0 = Date.now();
  const refused = await a.request({ type: "send", to: "wait-b", data: 2 }, 5000);
  const waited = Date.now() - t0;
  expect(refused).toMatchObject({ type: "error", code: "unavailable" });
  expect(waited).toBeGreaterThanOrEqual(250);
  expect(waited).toBeLessThan(3000);
  // Stored and published all the same: the recipient gets it; the sender just has no ack.
  expect((await b.next(isDirect)).data).toBe(2);
  expect(await metric(gw, "wsgate_redis_wait_timeouts_total")).toBe(1);
}, 40_000);

test("WAIT refused by the server is a start-up error, not a failure per send", async () => {
  // A Redis that refuses WAIT (as Upstash does) is simulated by renaming the command away.
  const r = await startRedis({ args: ["--rename-command", "WAIT", ""] });
  servers.push(r);
  const err = await startGateway({ REDIS_URL: r.url, WSGATE_REDIS_WAIT: "1" }).then(
    (g) => {
      gws.push(g);
      return "started";
    },
    (e: Error) => e.message,
  );
  expect(err).toContain("refuses WAIT");
}, 20_000);
