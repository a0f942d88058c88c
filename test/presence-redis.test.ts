// Redis presence beyond the shared contract: issue 9's presence findings (half-reaped gateways, ghost members,
// dead holders in room presence), issue 10's slot rule (every script touches one hash slot), fencing of
// stale incarnations, re-assert after a lapse or a data loss, and writes under maxmemory. Run once per
// topology: one redis-server per test, and a real 6-node Redis Cluster shared by the tests (each test's own
// names). The "gateways" are RedisPresence instances with their own connections, so a test can kill one
// (drop its connections, no cleanup) or stop it between two steps of a reap.
import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import Redis, { Cluster } from "ioredis";
import { startRedis, type RedisServer } from "../harness/redis.ts";
import { startRedisCluster, type RedisCluster } from "../harness/redis-cluster.ts";
import type { RedisTopology } from "../src/config-redis.ts";
import { createRedisClients, type RedisClients } from "../src/backends/redis/clients.ts";
import { keys } from "../src/backends/redis/keys.ts";
import { RedisPresence, type RedisPresenceOptions } from "../src/backends/redis/presence.ts";
import { SCRIPTS, defineScripts, type Scripted } from "../src/backends/redis/scripts.ts";
import { createLogger } from "../src/log.ts";
import { FakeLocal } from "./helpers/backend-contract.ts";
import { keySlot } from "./helpers/slot.ts";
import { eventually } from "./helpers/wait.ts";

const log = createLogger("error", { test: "presence-redis" });
let seq = 0;
/** Rooms named by the running test: events about other rooms (a shared cluster's leftovers) are not its business. */
const testRooms = new Set<string>();
const uniq = (p: string) => {
  const name = `${p}-${Date.now().toString(36)}-${++seq}`;
  if (p === "room") testRooms.add(name);
  return name;
};

/** Where a test's presence lives, the same way for one redis-server and for a cluster. */
interface Store {
  topology: RedisTopology;
  /** A plain client with the scripts defined (Redis or Cluster); the caller disconnects it. */
  raw(): Promise<Scripted>;
  /** Keys matching `pattern` on every primary. */
  keys(pattern: string): Promise<string[]>;
  /** Runs a command on every primary (FLUSHALL, CONFIG SET, CLIENT KILL). */
  onPrimaries(fn: (r: Redis) => Promise<unknown>): Promise<void>;
  cluster?: RedisCluster;
}

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

function singleStore(redis: RedisServer): Store {
  const connect = async () => {
    const r = new Redis(redis.url, { protocol: 2, lazyConnect: true });
    await r.connect();
    return r;
  };
  return {
    topology: { kind: "single", url: redis.url },
    raw: async () => defineScripts(await connect()),
    async keys(pattern) {
      const r = await connect();
      try {
        return await r.keys(pattern);
      } finally {
        r.disconnect();
      }
    },
    async onPrimaries(fn) {
      const r = await connect();
      try {
        await fn(r);
      } finally {
        r.disconnect();
      }
    },
  };
}

function clusterStore(cluster: RedisCluster): Store {
  const connect = async () => {
    const c = new Cluster(cluster.nodes.map((n) => ({ host: "127.0.0.1", port: n.port })), { lazyConnect: true, redisOptions: { protocol: 2 } });
    await c.connect();
    return c;
  };
  const each = async <T>(fn: (r: Redis) => Promise<T>) => {
    const c = await connect();
    try {
      return await Promise.all(c.nodes("master").map(fn));
    } finally {
      c.disconnect();
    }
  };
  return {
    topology: { kind: "cluster", urls: cluster.urls },
    raw: async () => defineScripts((await connect()) as unknown as Redis),
    keys: async (pattern) => (await each((r) => r.keys(pattern))).flat(),
    onPrimaries: async (fn) => void (await each(fn)),
    cluster,
  };
}

const topologies: { name: string; store(): Promise<Store> }[] = [
  {
    name: "single redis",
    // A fresh server per test: nothing of another test's gateways can interfere.
    async store() {
      const redis = await startRedis();
      cleanups.push(() => redis.stop());
      return singleStore(redis);
    },
  },
  {
    name: "redis cluster",
    store: (() => {
      let shared: Promise<Store> | null = null;
      return () =>
        (shared ??= startRedisCluster().then((c) => {
          cleanups.push(() => c.stop());
          return clusterStore(c);
        }));
    })(),
  },
];

interface Call {
  name: string;
  args: unknown[];
}
type Event = [string, string, "join" | "leave"];

interface Node {
  p: RedisPresence;
  clients: RedisClients;
  local: FakeLocal;
  events: Event[];
  calls: Call[];
  /** As kill -9 would: no cleanup, connections dropped, timer gone. */
  kill(): Promise<void>;
}

/** Records every command the presence backend issues (scripts with their keys), then runs it. */
function recording(target: Scripted, calls: Call[]): Scripted {
  return new Proxy(target, {
    get(t, prop) {
      const v = Reflect.get(t, prop, t);
      if (typeof v !== "function" || typeof prop !== "string" || prop === "on" || prop === "once") return v;
      return (...args: unknown[]) => {
        calls.push({ name: prop, args });
        return v.apply(t, args);
      };
    },
  });
}

async function node(store: Store, o: Partial<RedisPresenceOptions> = {}): Promise<Node> {
  const clients = await createRedisClients(store.topology, log);
  const calls: Call[] = [];
  clients.cmd = recording(clients.cmd, calls);
  clients.read = clients.cmd;
  const local = new FakeLocal();
  const events: Event[] = [];
  // By default a node's timer never fires within a test (no automatic reaping) and its lease outlives the test;
  // a node meant to die gets a short ttlMs, one meant to tick a short intervalMs.
  const opts: RedisPresenceOptions = { gatewayId: uniq("gw"), region: "r1", started: Date.now(), ttlMs: 120_000, intervalMs: 60_000, reapClaimMs: 500, ...o };
  const p = new RedisPresence(clients, opts, log);
  await p.start(local, (room, user, ev) => testRooms.has(room) && events.push([room, user, ev]));
  let dead = false;
  const n: Node = {
    p,
    clients,
    local,
    events,
    calls,
    async kill() {
      if (dead) return;
      dead = true;
      (p as unknown as { timer: { stop(): void } | null }).timer?.stop();
      await clients.close();
    },
  };
  nodes.push(n);
  return n;
}

const ref = (user: string) => ({ conn: uniq("c"), user, since: Date.now() });
/** Connects and remembers it locally, as the gateway would. */
async function connect(n: Node, user: string) {
  const c = ref(user);
  n.local.conns.set(c.conn, c);
  await n.p.connect(c);
  return c;
}
async function join(n: Node, room: string, user: string) {
  n.local.memberships.push([room, user]);
  return n.p.joinRoom(room, user);
}
async function keysOf(store: Store, inst: string) {
  return (await store.keys("wsg:*")).filter((k) => k.includes(`{${inst}}`));
}
const leaves = (ns: Node[]) => ns.flatMap((n) => n.events.filter((e) => e[2] === "leave")).map(([r, u]) => `${r} ${u}`).sort();


const nodes: Node[] = [];
beforeEach(() => testRooms.clear());
afterEach(async () => {
  for (const n of nodes.splice(0)) await n.kill();
});

for (const topo of topologies)
describe(topo.name, () => {
  describe("redis presence: one hash slot per script (Redis Cluster)", () => {
    test("keySlot agrees with Redis Cluster's published examples", () => {
      expect(keySlot("foo")).toBe(12182);
      expect(keySlot("bar")).toBe(5061);
      expect(keySlot("{user1000}.following")).toBe(keySlot("{user1000}.followers"));
    });

    test("every script call and multi-key command of a full life cycle touches one slot; keys sit in the owner's slot", async () => {
      const main = await topo.store();
      const a = await node(main, { intervalMs: 50, ttlMs: 600 });
      const b = await node(main, { intervalMs: 50, ttlMs: 600 });
      const room = uniq("room");
      const [u1, u2] = [uniq("u"), uniq("u")];
      const c1 = await connect(a, u1);
      await connect(b, u2);
      await join(a, room, u1);
      await join(b, room, u2);
      await a.p.users([u1, u2]);
      await a.p.roomUsers(room);
      await a.p.gateways();
      // A lapse (lease gone) forces a re-assert under a new incarnation; a kill forces a reap by the survivor.
      const r = await main.raw();
      await r.del(keys.lease(a.p.instance));
      await eventually(() => a.calls.filter((c) => c.name === "wsgLease" && c.args[1] === "new").length, (n) => n >= 2, 3000);
      await a.p.leaveRoom(room, u1);
      await a.p.disconnect(c1);
      const deadInst = b.p.instance;
      await b.kill();
      await eventually(() => r.sismember(keys.gateways, deadInst), (m) => m === 0, 5000);
      r.disconnect();

      const multiKey = new Set(["exists", "del", "mget", "unlink"]);
      let checked = 0;
      for (const { name, args } of [...a.calls, ...b.calls]) {
        const n = (SCRIPTS as Record<string, number | null>)[name];
        // null: the key count is the first argument (wsgAppend's batches).
        const ks = n === null ? args.slice(1, 1 + Number(args[0])) : n !== undefined ? args.slice(0, n) : multiKey.has(name) ? args : [];
        if (ks.length < 2) continue;
        checked++;
        expect({ name, slots: new Set(ks.map((k) => keySlot(String(k)))).size }).toEqual({ name, slots: 1 });
      }
      expect(checked).toBeGreaterThan(10);
      const scriptsSeen = new Set([...a.calls, ...b.calls].map((c) => c.name).filter((n) => n in SCRIPTS));
      for (const s of ["wsgLease", "wsgIndex", "wsgConnect", "wsgDisconnect", "wsgRoomJoin", "wsgRoomLeave", "wsgReapClaim"]) expect(scriptsSeen).toContain(s);
      // Hash tags: a user's keys in the user id's slot, a room's in the room's, an instance's in its own.
      expect(keySlot(keys.presence(u1))).toBe(keySlot(u1));
      expect(keySlot(keys.roomMembers(room))).toBe(keySlot(room));
      const inst = a.p.instance;
      for (const k of [keys.lease(inst), keys.gatewayConns(inst), keys.gatewayRooms(inst), keys.reapClaim(inst)]) expect(keySlot(k)).toBe(keySlot(inst));
      await a.kill();
    });

    test("upkeep does not grow with connections: per interval, the same few commands for 1 or 300 connections", async () => {
      const main = await topo.store();
      const perConnection = new Set(["wsgConnect", "wsgIndex", "wsgDisconnect", "wsgRoomJoin", "wsgRoomLeave"]);
      const idle = async (conns: number) => {
        const n = await node(main, { intervalMs: 100 });
        await Promise.all(Array.from({ length: conns }, () => connect(n, uniq("u"))));
        await Bun.sleep(150);
        const from = n.calls.length;
        await Bun.sleep(1000);
        const calls = n.calls.slice(from);
        await n.kill();
        // Reaping other (dead) gateways is not upkeep: count the lease and the registry entry.
        const upkeep = calls.filter((c) => c.name === "wsgLease" || c.name === "sadd").length;
        return { upkeep, perConnection: calls.filter((c) => perConnection.has(c.name) && c.args[1] !== "reap").length };
      };
      const one = await idle(1);
      const many = await idle(300);
      // About 10 intervals: one lease refresh and one registry write each.
      for (const r of [one, many]) expect(r.upkeep).toBeLessThanOrEqual(24);
      expect(many.upkeep).toBeGreaterThanOrEqual(8);
      expect([one.perConnection, many.perConnection]).toEqual([0, 0]);
    });
  });

  describe("redis presence: issue 9 findings", () => {
    test("half-reaped gateway: a reaper dies after its first step; another survivor finishes, nothing leaks, one leave per (room, user) that left", async () => {
      const main = await topo.store();
      const dead = await node(main, { reapBatch: 2, ttlMs: 600 });
      const s1 = await node(main, { reapBatch: 2 });
      const s2 = await node(main, { reapBatch: 2 });
      const [r1, r2] = [uniq("room"), uniq("room")];
      const users = [uniq("u"), uniq("u"), uniq("u")];
      for (const u of users) await connect(dead, u);
      for (const u of users) await join(dead, r1, u);
      await join(dead, r2, users[0]!);
      // users[1] is also in r1 through a live gateway: it must get no leave.
      await connect(s2, users[1]!);
      expect(await join(s2, r1, users[1]!)).toBe(false);
      const inst = dead.p.instance;
      await dead.kill();
      const r = await main.raw();
      await eventually(() => r.exists(keys.lease(inst)), (e) => e === 0, 3000);

      // Step one of the reap (2 of 7 index entries), then the reaper dies.
      expect(await s1.p.reap(inst)).toBe(false);
      await s1.kill();
      expect(await r.sismember(keys.gateways, inst)).toBe(1); // still findable: its keys are not gone
      expect((await keysOf(main, inst)).length).toBeGreaterThan(0);
      // Its claim stops others only until it expires; then the next survivor finishes the job.
      let done = false;
      for (let i = 0; i < 100 && !done; i++) {
        done = await s2.p.reap(inst);
        if (!done) await Bun.sleep(50);
      }
      expect(done).toBe(true);
      expect(await r.sismember(keys.gateways, inst)).toBe(0);
      expect(await keysOf(main, inst)).toEqual([]);
      // No entry of the dead instance anywhere; its users are offline except the one on s2.
      for (const u of users) expect(Object.values(await r.hgetall(keys.presence(u))).filter((v) => v.includes(`|${inst}|`) && v.startsWith("L"))).toEqual([]);
      expect(Object.values(await r.hgetall(keys.roomMembers(r1))).filter((v) => v.includes(`|${inst}|`) && v.startsWith("L"))).toEqual([]);
      const online = await s2.p.users(users);
      expect(users.map((u) => online[u]!.online)).toEqual([false, true, false]);
      expect(await s2.p.roomUsers(r1)).toEqual([users[1]!]);
      expect(await s2.p.roomUsers(r2)).toEqual([]);
      expect(leaves([s1, s2])).toEqual([`${r1} ${users[0]}`, `${r1} ${users[2]}`, `${r2} ${users[0]}`].sort());
      // Running it again (a third survivor that still had it listed) changes nothing and announces nothing.
      expect(await s2.p.reap(inst, true)).toBe(true);
      expect(leaves([s1, s2])).toHaveLength(3);
      r.disconnect();
      await s2.kill();
    });

    test("a Redis drop in the middle of a reap leaks nothing: the next reap finishes", async () => {
      const main = await topo.store();
      const dead = await node(main, { ttlMs: 600 });
      const s = await node(main, { reapBatch: 3 });
      const room = uniq("room");
      const users = Array.from({ length: 12 }, () => uniq("u"));
      for (const u of users) {
        await connect(dead, u);
        await join(dead, room, u);
      }
      const inst = dead.p.instance;
      await dead.kill();
      const r = await main.raw();
      await eventually(() => r.exists(keys.lease(inst)), (e) => e === 0, 3000);
      // Kill the survivor's connections while its reap step is in flight.
      const step = s.p.reap(inst, true).catch(() => false);
      await main.onPrimaries((x) => x.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")).catch(() => {});
      await step;
      await eventually(() => Promise.resolve(s.clients.cmd.status), (st) => st === "ready", 5000);
      // Reconnecting takes a moment; each attempt is one bounded step.
      for (let i = 0; i < 100 && !(await s.p.reap(inst, true).catch(() => false)); i++) await Bun.sleep(50);
      expect(await keysOf(main, inst)).toEqual([]);
      expect(await r.sismember(keys.gateways, inst)).toBe(0);
      expect(await s.p.roomUsers(room)).toEqual([]);
      expect(leaves([s])).toEqual(users.map((u) => `${room} ${u}`).sort());
      r.disconnect();
      await s.kill();
    });

    test("room and user presence count only live holders: a dead gateway's users drop out before anyone reaps it", async () => {
      const main = await topo.store();
      const dead = await node(main, { ttlMs: 600 });
      const obs = await node(main); // its timer never fires within the test: no reaping
      const room = uniq("room");
      const [u, v] = [uniq("u"), uniq("u")];
      await connect(dead, u);
      await join(dead, room, u);
      await connect(obs, v);
      await join(obs, room, v);
      expect(await obs.p.roomUsers(room)).toEqual([u, v].sort());
      const inst = dead.p.instance;
      await dead.kill();
      await eventually(() => obs.p.roomUsers(room), (us) => us.length === 1, 3000);
      expect(await obs.p.roomUsers(room)).toEqual([v]);
      expect((await obs.p.users([u]))[u]).toEqual({ online: false, connections: 0, regions: [] });
      const r = await main.raw();
      expect(await r.sismember(keys.gateways, inst)).toBe(1); // not reaped yet
      expect(obs.events).toEqual([]);
      for (let i = 0; i < 10 && !(await obs.p.reap(inst)); i++);
      expect(obs.events).toEqual([[room, u, "leave"]]);
      r.disconnect();
      await obs.kill();
    });

    test("concurrent reapers of one dead gateway: one leave per (room, user) in total", async () => {
      const main = await topo.store();
      const dead = await node(main, { ttlMs: 600 });
      const survivors = [await node(main), await node(main), await node(main)];
      const rooms = [uniq("room"), uniq("room")];
      const users = Array.from({ length: 5 }, () => uniq("u"));
      for (const u of users) for (const room of rooms) await join(dead, room, u);
      const inst = dead.p.instance;
      await dead.kill();
      await Bun.sleep(700);
      await Promise.all(survivors.map((s) => s.p.reap(inst, true)));
      expect(leaves(survivors)).toEqual(rooms.flatMap((room) => users.map((u) => `${room} ${u}`)).sort());
      for (const s of survivors) await s.kill();
    });
  });

  describe("redis presence: fencing", () => {
    test("a lapsed incarnation's writes are refused; the gateway re-asserts under a new one without a leave", async () => {
      const main = await topo.store();
      const a = await node(main, { intervalMs: 100, ttlMs: 600 });
      const obs = await node(main);
      const room = uniq("room");
      const u = uniq("u");
      await connect(a, u);
      expect(await join(a, room, u)).toBe(true);
      const old = a.p.instance;
      const r = await main.raw();
      await r.del(keys.lease(old)); // lapsed (as if it froze past the TTL), nobody reaped it yet
      // Its index refuses it, so nothing it writes reaches a user's or room's slot.
      expect(await r.wsgIndex(keys.lease(old), keys.gatewayConns(old), "add", "late-conn", u)).toBe(-1);
      await eventually(() => Promise.resolve(a.p.instance), (i) => i !== old, 3000);
      await eventually(() => r.sismember(keys.gateways, old), (m) => m === 0, 3000);
      expect((await obs.p.users([u]))[u]!.connections).toBe(1);
      expect(await obs.p.roomUsers(room)).toEqual([u]);
      expect([...a.events, ...obs.events]).toEqual([]);
      r.disconnect();
      await a.kill();
      await obs.kill();
    });

    test("reaped, then back: leave announced by the reaper, join announced by the comeback", async () => {
      const main = await topo.store();
      const a = await node(main, { intervalMs: 100, ttlMs: 600 });
      const s = await node(main);
      const room = uniq("room");
      const u = uniq("u");
      await connect(a, u);
      await join(a, room, u);
      const old = a.p.instance;
      // Freeze a's upkeep, let its lease lapse, and let the survivor reap it.
      (a.p as unknown as { timer: { stop(): void } }).timer.stop();
      await Bun.sleep(700);
      for (let i = 0; i < 10 && !(await s.p.reap(old)); i++);
      expect(s.events).toEqual([[room, u, "leave"]]);
      expect(await s.p.roomUsers(room)).toEqual([]);
      // Its next write is fenced (old incarnation), which makes it re-assert under a new one; the write then lands.
      const room2 = uniq("room");
      a.local.memberships.push([room2, u]);
      expect(await a.p.joinRoom(room2, u)).toBe(true);
      expect(a.p.instance).not.toBe(old);
      expect(await s.p.roomUsers(room)).toEqual([u]);
      expect(await s.p.roomUsers(room2)).toEqual([u]);
      // Both joins are announced by the re-assert's scripts: room's as a comeback, room2's because its own join had
      // not landed when the re-assert wrote it (seed 2005).
      expect(a.events).toEqual([
        [room, u, "join"],
        [room2, u, "join"],
      ]);
      expect((await s.p.users([u]))[u]!.online).toBe(true);
      await a.kill();
      await s.kill();
    });

    test("entry rules, driven directly: closed stays closed, reaped refuses its incarnation (not a newer one), x.1 never matches x.10", async () => {
      const main = await topo.store();
      const r = await main.raw();
      const u = uniq("fz");
      const P = keys.presence(u);
      const T = 60_000;
      expect(await r.wsgConnect(P, "c1", "p#a.1", 1, "gw|r|0", T)).toBe(1);
      expect(await r.wsgDisconnect(P, "close", "c1", "p#a.1", 2, T)).toBe(1);
      expect(await r.wsgConnect(P, "c1", "p#a.1", 3, "gw|r|0", T)).toBe(0); // closed for ever
      // A reaped incarnation 1 cannot write; its successor 2 can.
      expect(await r.wsgDisconnect(P, "reap", "c2", "p#a.1", 0, T)).toBe(0); // tombstone before the late write
      expect(await r.wsgConnect(P, "c2", "p#a.1", 4, "gw|r|0", T)).toBe(-1);
      expect(await r.wsgConnect(P, "c2", "p#a.2", 5, "gw|r|0", T)).toBe(1);
      // Reaping 1 again (a slow reaper) leaves 2's entry alone; so does reaping a prefix of another incarnation.
      expect(await r.wsgDisconnect(P, "reap", "c2", "p#a.1", 0, T)).toBe(0);
      expect(await r.wsgConnect(P, "c3", "p#a.10", 6, "gw|r|0", T)).toBe(1);
      expect(await r.wsgDisconnect(P, "reap", "c3", "p#a.1", 0, T)).toBe(0);
      const h = await r.hgetall(P);
      expect([h.c1?.[0], h.c2, h.c3]).toEqual(["X", "L|p#a.2|5|gw|r|0", "L|p#a.10|6|gw|r|0"]);
      expect(h["!n"]).toBe("2");
      // Rooms: an older ticket never overtakes a newer one, either way round.
      const R = keys.roomMembers(uniq("fzr"));
      expect(await r.wsgRoomLeave(R, "leave", u, "p#a", "p#a.1", 9, T)).toBe(0);
      expect(await r.wsgRoomJoin(R, u, "p#a", "p#a.1", 8, "join", T)).toBe(-2);
      expect(await r.wsgRoomJoin(R, u, "p#a", "p#a.1", 10, "join", T)).toBe(1);
      expect(await r.wsgRoomLeave(R, "leave", u, "p#a", "p#a.1", 7, T)).toBe(0);
      expect(await r.wsgRoomJoin(R, u, "q#b", "q#b.0", 1, "join", T)).toBe(0); // second holder: no new join
      expect(await r.wsgRoomLeave(R, "leave", u, "p#a", "p#a.1", 11, T)).toBe(0); // still held by q#b
      expect(await r.wsgRoomLeave(R, "reap", u, "q#b", "q#b.0", 0, T)).toBe(1); // the last holder: one leave
      expect(await r.wsgRoomLeave(R, "reap", u, "q#b", "q#b.0", 0, T)).toBe(0);
      // A reaper that got there between a join's two steps (index taken, room not yet): the join's second step
      // for the reaped incarnation is refused, and nothing is counted.
      const R3 = keys.roomMembers(uniq("fzr"));
      expect(await r.wsgRoomLeave(R3, "reap", u, "p#c", "p#c.4", 0, T)).toBe(0);
      expect(await r.wsgRoomJoin(R3, u, "p#c", "p#c.4", 30, "join", T)).toBe(-1);
      expect(await r.hget(R3, `#${u}`)).toBeNull();
      expect(await r.wsgRoomJoin(R3, u, "p#c", "p#c.5", 31, "join", T)).toBe(1);
      // A re-assert after a data loss (no leave announced) owes no join; after an announced leave it does.
      const R2 = keys.roomMembers(uniq("fzr"));
      expect(await r.wsgRoomJoin(R2, u, "p#a", "p#a.3", 20, "reassert", T)).toBe(2);
      expect(await r.wsgRoomJoin(R, u, "p#a", "p#a.3", 21, "reassert", T)).toBe(1);
      r.disconnect();
    });

    test("tombstones are pruned after their time, and a hash with no live entry expires", async () => {
      const main = await topo.store();
      const r = await main.raw();
      const u = uniq("tb");
      const P = keys.presence(u);
      for (let i = 0; i < 5; i++) {
        await r.wsgConnect(P, `c${i}`, "p#t.0", i * 2 + 1, "gw|r|0", 200);
        await r.wsgDisconnect(P, "close", `c${i}`, "p#t.0", i * 2 + 2, 200);
      }
      expect(await r.pttl(P)).toBeGreaterThan(0);
      await r.wsgConnect(P, "live", "p#t.0", 100, "gw|r|0", 200);
      expect(await r.pttl(P)).toBe(-1);
      await Bun.sleep(250);
      await r.wsgConnect(P, "live2", "p#t.0", 101, "gw|r|0", 200); // the prune runs on a write once due
      await Bun.sleep(150);
      await r.wsgConnect(P, "live3", "p#t.0", 102, "gw|r|0", 200);
      expect(Object.keys(await r.hgetall(P)).filter((f) => !f.startsWith("!")).sort()).toEqual(["live", "live2", "live3"]);
      r.disconnect();
    });
  });

  describe("redis presence: Redis loses its data", () => {
    test("each gateway re-asserts within one interval, without room events", async () => {
      const redis = await topo.store();
      const a = await node(redis, { intervalMs: 200, ttlMs: 1000 });
      const b = await node(redis, { intervalMs: 200, ttlMs: 1000 });
      const room = uniq("room");
      const [u, v] = [uniq("u"), uniq("u")];
      await connect(a, u);
      await connect(b, v);
      await join(a, room, u);
      await join(b, room, v);
      const r = await redis.raw();
      await redis.onPrimaries((x) => x.flushall());
      const t0 = Date.now();
      await eventually(async () => {
        const p = await b.p.users([u, v]);
        return p[u]!.online && p[v]!.online && (await a.p.roomUsers(room)).length === 2;
      }, (ok) => ok, 2000, 10);
      expect(Date.now() - t0).toBeLessThan(200 + 300);
      expect((await a.p.gateways()).length).toBe(2);
      expect([...a.events, ...b.events]).toEqual([]);
      r.disconnect();
      await a.kill();
      await b.kill();
    });

    test("a leave whose join Redis lost (restart empty) is still announced once; a leave of what never landed is not", async () => {
      const redis = await topo.store();
      const a = await node(redis);
      const b = await node(redis);
      const [room, other] = [uniq("room"), uniq("room")];
      const [u, v, w] = [uniq("u"), uniq("u"), uniq("u")];
      expect(await join(a, room, u)).toBe(true);
      expect(await join(a, room, w)).toBe(true);
      expect(await join(b, room, w)).toBe(false);
      await redis.onPrimaries((x) => x.flushall());
      // Before any re-assert: u left through a, the only gateway that held them; members were told "join".
      expect(await a.p.leaveRoom(room, u)).toBe(true);
      expect(await a.p.leaveRoom(room, u)).toBe(false);
      // b re-asserts first (w is back through b), then w leaves through a: still in the room, no leave.
      // (2: written without an announcement, as b's join of w had landed before the loss.)
      expect(await b.p.reassert("test")).toEqual(new Map([[`${room} ${w}`, 2]]));
      expect(await a.p.leaveRoom(room, w)).toBe(false);
      expect(await b.p.roomUsers(room)).toEqual([w]);
      // v's join never landed: its leave announces nothing.
      expect(await a.p.leaveRoom(other, v)).toBe(false);
      expect([...a.events, ...b.events]).toEqual([]);
    });
  });

  describe("redis presence: maxmemory reached (noeviction)", () => {
    test("growing writes are refused before changing anything; removals, lease refreshes and reaping still work", async () => {
      const redis = await topo.store();
      const a = await node(redis);
      const s = await node(redis);
      const room = uniq("room");
      const u = uniq("u");
      const c = await connect(a, u);
      await join(a, room, u);
      const dead = await node(redis, { ttlMs: 600 });
      const du = uniq("u");
      await connect(dead, du);
      await join(dead, room, du);
      const r = await redis.raw();
      await redis.onPrimaries(async (x) => {
        const used = Number(/used_memory:(\d+)/.exec(await x.info("memory"))![1]);
        await x.config("SET", "maxmemory-policy", "noeviction");
        await x.config("SET", "maxmemory", String(Math.floor(used / 2)));
      });
      try {
        const before = await r.hgetall(keys.presence(u));
        await expect(a.p.connect(ref(u))).rejects.toThrow(/OOM/);
        await expect(a.p.joinRoom(uniq("room"), u)).rejects.toThrow(/OOM/);
        expect(await r.hgetall(keys.presence(u))).toEqual(before);
        // The lease keeps the gateway alive; removals and reaping go through.
        expect(await (a.p as unknown as { lease(i: string, m: string): Promise<boolean> }).lease(a.p.instance, "refresh")).toBe(true);
        expect(await a.p.leaveRoom(room, u)).toBe(true);
        await a.p.disconnect(c);
        expect((await s.p.users([u]))[u]!.online).toBe(false);
        const inst = dead.p.instance;
        await dead.kill();
        await Bun.sleep(700);
        for (let i = 0; i < 10 && !(await s.p.reap(inst)); i++);
        expect(s.events).toEqual([[room, du, "leave"]]);
        expect(await r.sismember(keys.gateways, inst)).toBe(0);
      } finally {
        await redis.onPrimaries((x) => x.config("SET", "maxmemory", "0"));
        r.disconnect();
        await a.kill();
        await s.kill();
      }
    });
  });

  if (topo.name === "redis cluster")
    describe("redis presence: primary failover", () => {
      test("writes lost with a failed primary are re-asserted once the slot map settled, without waiting for a lapse", async () => {
        const main = await topo.store();
        const cluster = main.cluster!;
        const a = await node(main); // its timer never fires in the test: only the failover can make it re-assert
        const obs = await node(main);
        const room = uniq("room");
        const u = uniq("u");
        await connect(a, u);
        await join(a, room, u);
        // What an asynchronous replica may not have had: deleted on the primary, so gone from its replica too.
        const r = await main.raw();
        await r.del(keys.presence(u));
        await r.del(keys.roomMembers(room));
        expect((await obs.p.users([u]))[u]!.online).toBe(false);
        const victim = (await cluster.primaries())[0]!;
        await cluster.kill(victim);
        await cluster.waitFailover(victim);
        await eventually(async () => (await obs.p.users([u]))[u]!.online && (await obs.p.roomUsers(room)).length === 1, (ok) => ok, 15_000, 100);
        expect([...a.events, ...obs.events]).toEqual([]); // Redis lost them: no leave went out, so no join is owed
        r.disconnect();
        await cluster.restart(victim);
        await cluster.waitHealthy({ replicas: true });
      }, 60_000);
    });
});
