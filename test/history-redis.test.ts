// The Redis history's own edges (lua/append.lua, lua/replay.lua), beyond the backend contract: the stream is
// the counter (ids <epoch>-<seq>), so what happens when it is trimmed to empty, deleted, or loses its byte
// counter; the byte cap on the write side; the expiry renewed once per 0.4 TTL; maxmemory's first write.
import { afterAll, beforeAll, expect, test } from "bun:test";
import Redis from "ioredis";
import { keys } from "../src/backends/redis/keys.ts";
import { createLogger } from "../src/log.ts";
import { startRedis, type RedisServer } from "../harness/redis.ts";
import { startBrokerGateway } from "./helpers/broker.ts";

const log = createLogger("error", { test: "history-redis" });
let redis: RedisServer;
let r: Redis;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  redis = await startRedis();
  r = new Redis(redis.url);
});
afterAll(async () => {
  for (const c of closers) await c().catch(() => {});
  r?.disconnect();
  await redis?.stop();
});

let n = 0;
const uniq = (p: string) => `${p}-${Date.now()}-${++n}`;

async function gateway(opts: { ttlS?: number; maxBytes?: number; size?: number } = {}) {
  const { history, broker } = await startBrokerGateway({ kind: "single", url: redis.url }, log, opts);
  closers.push(() => broker.close());
  const send = async (to: string, data: unknown = "hi") =>
    (await broker.sendDirect({ fromJson: '"alice"', dataJson: JSON.stringify(data), ts: Date.now() }, [to]))![to]!;
  const replay = async (user: string, since: string) => {
    const cursor = await history.replay(user, since);
    const offsets: string[] = [];
    const sizes: number[] = [];
    for (let page = await cursor.next(); page.length; page = await cursor.next()) {
      offsets.push(...page.map((f) => f.offset));
      sizes.push(...page.map((f) => f.frame.length));
    }
    return { offsets, recovered: cursor.recovered, sizes };
  };
  return { history, broker, send, replay };
}

const epochOf = (offset: string) => offset.slice(0, offset.indexOf(":"));
const seqOf = (offset: string) => Number(offset.slice(offset.indexOf(":") + 1));

test("offsets are the stream's ids with ':'; the epoch is a microsecond timestamp, far above the clock in ms", async () => {
  const g = await gateway();
  const bob = uniq("bob");
  const offs = [await g.send(bob), await g.send(bob), await g.send(bob)];
  expect(offs.map(seqOf)).toEqual([1, 2, 3]);
  const ids = ((await r.xrange(keys.history(bob), "-", "+")) as [string, string[]][]).map(([id]) => id);
  expect(ids).toEqual(offs.map((o) => o.replace(":", "-")));
  expect(Number(epochOf(offs[0]!))).toBeGreaterThan(Date.now() * 100);
});

test("a stream trimmed to empty keeps its last id: seqs go on in the same epoch, a resume from the last offset is recovered", async () => {
  const g = await gateway();
  const bob = uniq("bob");
  const offs = [await g.send(bob), await g.send(bob), await g.send(bob)];
  await r.xtrim(keys.history(bob), "MAXLEN", 0);
  expect(await r.xlen(keys.history(bob))).toBe(0);
  // Nothing retained, nothing missed after the last offset.
  expect(await g.replay(bob, offs[2]!)).toMatchObject({ offsets: [], recovered: true });
  expect(await g.replay(bob, offs[1]!)).toMatchObject({ offsets: [], recovered: false });
  const next = await g.send(bob);
  expect(epochOf(next)).toBe(epochOf(offs[0]!));
  expect(seqOf(next)).toBe(4);
  expect(await g.replay(bob, offs[2]!)).toMatchObject({ offsets: [next], recovered: true });
  expect(await g.replay(bob, offs[1]!)).toMatchObject({ offsets: [next], recovered: false });
});

test("a deleted stream, or a lost byte counter, starts a new epoch at seq 1; nothing of the old one is replayed", async () => {
  const g = await gateway();
  for (const lose of [keys.history, keys.historyBytes]) {
    const bob = uniq("bob");
    const old = [await g.send(bob), await g.send(bob)];
    await r.del(lose(bob));
    const next = await g.send(bob);
    expect(epochOf(next)).not.toBe(epochOf(old[0]!));
    expect(seqOf(next)).toBe(1);
    expect(await g.replay(bob, old[1]!)).toMatchObject({ offsets: [next], recovered: false });
    expect(await g.replay(bob, `${epochOf(next)}:0`)).toMatchObject({ offsets: [next], recovered: true });
    // Both keys expire together again.
    expect(await r.pttl(keys.history(bob))).toBeGreaterThan(0);
    expect(await r.pttl(keys.historyBytes(bob))).toBeGreaterThan(0);
  }
});

test("the write side keeps about 1.25× WSGATE_HISTORY_MAX_BYTES at most; a resume gets exactly the newest that fit, across seqs of 1 to 3 digits", async () => {
  const maxBytes = 4096;
  const sizeOf = new Map<string, number>();
  const g = await gateway({ maxBytes });
  const bob = uniq("bob");
  const offs: string[] = [];
  let biggest = 0;
  for (let i = 0; i < 200; i++) {
    const data = "x".repeat(100 + ((i * 37) % 400));
    offs.push(await g.send(bob, data));
    biggest = Math.max(biggest, data.length + 150);
    // Bytes held, counted as a reader counts them (the frame with its offset).
    const rows = (await r.xrange(keys.history(bob), "-", "+")) as [string, string[]][];
    const held = rows.reduce((sum, [id, f]) => sum + f[3]!.length + f[5]!.length + 12 + id.length, 0);
    // The writer counts frames without their offsets' ids (a reader adds them), hence the ids' share.
    expect(held).toBeLessThanOrEqual(maxBytes * 1.25 + biggest + rows.length * 40);
    const { offsets, sizes } = await g.replay(bob, `${epochOf(offs[0]!)}:0`);
    offsets.forEach((o, k) => sizeOf.set(o, sizes[k]!));
    // The newest, within the cap, and one older would not fit (each frame was replayed while it was newest).
    expect(offsets).toEqual(offs.slice(offs.length - offsets.length));
    const bytes = sizes.reduce((a, b) => a + b, 0);
    expect(offsets.length === 1 || bytes <= maxBytes).toBe(true);
    if (offsets.length < offs.length) expect(bytes + sizeOf.get(offs[offs.length - offsets.length - 1]!)!).toBeGreaterThan(maxBytes);
    expect(rows.length).toBeGreaterThanOrEqual(offsets.length);
  }
});

test("expiry: both keys get 1.5 TTL on the first message, renewed once 0.4 TTL passed; history outlives a steady trickle", async () => {
  const g = await gateway({ ttlS: 1 });
  const bob = uniq("bob");
  const first = await g.send(bob);
  const ttl = async () => [await r.pttl(keys.history(bob)), await r.pttl(keys.historyBytes(bob))];
  for (const t of await ttl()) expect(t).toBeGreaterThan(1300);
  await Bun.sleep(150);
  await g.send(bob);
  // Not renewed yet (0.4 TTL has not passed): about 1.35 s left.
  for (const t of await ttl()) expect(t).toBeLessThan(1400);
  // One message every 300 ms for 2.4 s: never more than 0.4 TTL without a renewal, so never lost.
  for (let i = 0; i < 8; i++) {
    await Bun.sleep(300);
    expect(epochOf(await g.send(bob))).toBe(epochOf(first));
  }
  for (const t of await ttl()) expect(t).toBeGreaterThan(1000);
});

test("a second gateway's renewals only move the deadline later; a gateway that never renewed still finds its history", async () => {
  const a = await gateway({ ttlS: 1 });
  const b = await gateway({ ttlS: 1 });
  const bob = uniq("bob");
  const first = await a.send(bob);
  for (let i = 0; i < 6; i++) {
    await Bun.sleep(250);
    // Alternating senders: each renews on its own clock, neither shortens the other's deadline.
    expect(epochOf(await (i % 2 ? a : b).send(bob))).toBe(epochOf(first));
  }
});

test("maxmemory: the first write of a call is refused (INCRBY, not DEL), so a refused send leaves no keys behind", async () => {
  const g = await gateway();
  const bob = uniq("bob");
  await g.send(bob);
  const used = Number(/^used_memory:(\d+)/m.exec(await r.info("memory"))![1]);
  await r.config("SET", "maxmemory-policy", "noeviction");
  await r.config("SET", "maxmemory", String(used - 1024));
  try {
    const carol = uniq("carol");
    await expect(g.send(carol)).rejects.toThrow(/OOM/);
    expect(await r.exists(keys.history(carol), keys.historyBytes(carol))).toBe(0);
    await expect(g.send(bob)).rejects.toThrow(/OOM/);
  } finally {
    await r.config("SET", "maxmemory", "0");
  }
  // The failed call's renewal is not trusted: the next message renews.
  expect(epochOf(await g.send(bob))).toBeTruthy();
});
