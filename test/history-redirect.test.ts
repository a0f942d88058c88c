// History reads right after a user's slot moved, on a real 6-node Redis Cluster: a resume (history.replay) and
// a gap fill (the broker's) return every message. The slot is migrated with CLUSTER SETSLOT/MIGRATE, so the
// gateway's slot map is stale, and the read shares its auto-pipeline with a command to the old owner that
// succeeds: ioredis then hands the read its MOVED instead of following it (src/backends/redis/redirect.ts).
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { EventEmitter } from "node:events";
import { keySlot } from "../src/backends/redis/slot.ts";
import { createLogger } from "../src/log.ts";
import { directHead, tsTail } from "../src/protocol/outbound.ts";
import { redisCli, until } from "../harness/redis-cli.ts";
import { startRedisCluster, type ClusterNodeView, type RedisCluster } from "../harness/redis-cluster.ts";
import { startBrokerGateway, type BrokerGateway } from "./helpers/broker.ts";

let cluster: RedisCluster;
const opened: BrokerGateway[] = [];

async function gateway() {
  const lines: string[] = [];
  const log = createLogger("warn", { test: "history-redirect" }, (l) => lines.push(l));
  const g = await startBrokerGateway({ kind: "cluster", urls: cluster.urls }, log);
  opened.push(g);
  return { ...g, lines };
}

beforeAll(async () => {
  cluster = await startRedisCluster();
});
afterAll(async () => {
  for (const o of opened) await o.broker.close().catch(() => {});
  await cluster?.stop();
});

const msg = (data: unknown) => ({ fromJson: '"s"', dataJson: JSON.stringify(data), ts: Date.now() });
const owns = (n: ClusterNodeView, slot: number) => n.slotRanges.some(([a, b]) => slot >= a && slot <= b);

/**
 * Migrates `user`'s slot (keys included) to another primary, told to every primary. Returns a key that stays on
 * the old owner: a command on it joins the same auto-pipeline as a stale read of the moved slot.
 */
async function moveUserSlot(user: string): Promise<string> {
  const slot = keySlot(user);
  const masters = (await cluster.view()).filter((n) => n.flags.includes("master") && n.slots > 0);
  const from = masters.find((n) => owns(n, slot))!;
  const to = masters.find((n) => n !== from)!;
  await redisCli(to.port, ["CLUSTER", "SETSLOT", String(slot), "IMPORTING", from.id]);
  await redisCli(from.port, ["CLUSTER", "SETSLOT", String(slot), "MIGRATING", to.id]);
  const keys = (await redisCli(from.port, ["CLUSTER", "GETKEYSINSLOT", String(slot), "100"])).split("\n").filter(Boolean);
  expect(keys.length).toBeGreaterThan(0);
  await redisCli(from.port, ["MIGRATE", "127.0.0.1", String(to.port), "", "0", "5000", "KEYS", ...keys]);
  for (const n of [to, from, ...masters.filter((m) => m !== to && m !== from)]) await redisCli(n.port, ["CLUSTER", "SETSLOT", String(slot), "NODE", to.id]);
  let i = 0;
  while (!owns(from, keySlot(`probe-${i}`)) || keySlot(`probe-${i}`) === slot) i++;
  return `probe-${i}`;
}

test("a resume right after the user's slot moved replays every message", async () => {
  const gw = await gateway();
  const user = "redirect-resume";
  const offsets: string[] = [];
  for (let i = 0; i < 20; i++) offsets.push((await gw.broker.sendDirect(msg(i), [user]))![user]!);
  const probe = await moveUserSlot(user);
  const epoch = offsets[0]!.split(":")[0]!;
  // Same tick: the replay script and the probe leave in one pipeline to the old owner.
  const opening = gw.history.replay(user, `${epoch}:0`);
  const other = gw.clients.cmd.set(probe, "1");
  const [cursor] = await Promise.all([opening, other]);
  const got: string[] = [];
  for (let page = await cursor.next(); page.length; page = await cursor.next()) got.push(...page.map((f) => f.offset));
  expect(cursor.recovered).toBe(true);
  expect(got).toEqual(offsets);
  await cluster.waitHealthy({ replicas: true });
}, 60_000);

test("a gap fill right after the user's slot moved delivers every message the subscriber missed", async () => {
  const [a, b] = [await gateway(), await gateway()];
  const user = "redirect-gap";
  await b.broker.subscribeUser(user);
  await a.broker.sendDirect(msg("before"), [user]);
  await b.rec.until("user", (d) => d.user === user, 1, 5000);
  // Appended with b's own origin: b takes the published copies for its echo, so it never delivers them, as if
  // its subscriber had been away. Only a gap fill can bring them.
  const missed = await b.history.append(Array.from({ length: 10 }, (_, i) => ({ user, head: directHead('"s"', user, JSON.stringify(`missed-${i}`)), tail: tsTail(Date.now()) })));
  await Bun.sleep(200);
  expect(b.rec.got.filter((d) => d.kind === "user" && d.user === user).length).toBe(1);
  const probe = await moveUserSlot(user);
  // The broker's own signals, at once (its resubscriber would react 250 ms later): the subscriber lost a node
  // (opens the gap), the subscribers are back (fills it); the probe joins the fill's first read.
  const sub = b.clients.sub as unknown as EventEmitter;
  sub.emit("-node");
  sub.emit("subscribersReady");
  await b.clients.cmd.set(probe, "1");
  const filled = await b.rec.until("user", (d) => d.user === user && d.frame.includes("missed-"), missed.length, 5000);
  expect(filled.map((d) => (d as { offset: string }).offset)).toEqual(missed.map((m) => m.offset));
  // The fill did not need its once-a-second retry: the redirect was followed within the read.
  expect(b.lines.filter((l) => l.includes("fill the subscriber's gap"))).toEqual([]);
  // Live delivery follows the slot to its new owner too. The sender's own first try may be refused
  // (`unavailable`: its pipeline met the MOVED), as a client's send would be; it sends again.
  await until("the sender's send acked", () => a.broker.sendDirect(msg("after-move"), [user]).catch(() => undefined), 5000, 50);
  await b.rec.until("user", (d) => d.user === user && d.frame.includes("after-move"), 1, 10_000);
  await cluster.waitHealthy({ replicas: true });
}, 60_000);
