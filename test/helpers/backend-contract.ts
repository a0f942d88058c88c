// The Broker, History and Presence contract (src/backends/types.ts), written once and run against every implementation:
// `backendContract("memory", makeMemory)` now, `backendContract("redis", makeRedis, { shared: true })` in cluster mode.
import { afterAll, describe, expect, test } from "bun:test";
import type { Backends, ConnRef, Deliveries, LocalState, StoredFrame } from "../../src/backends/types.ts";

export interface BackendOptions {
  gatewayId: string;
  region: string;
  started: number;
  /** 0 disables history. */
  historySize: number;
  historyTtlS: number;
  historyMaxBytes: number;
  presenceTtlMs: number;
  heartbeatMs: number;
}

/** Makes the backends of one gateway. With `shared`, every call must reach the same store (one cluster). */
export type MakeBackends = (opts: BackendOptions) => Promise<Backends>;

export interface ContractOptions {
  /** Instances from makeBackends share one store: also run the cross-gateway assertions. */
  shared?: boolean;
  /** Runs once after the suite (e.g. stop a redis-server). */
  cleanup?: () => Promise<void>;
}

export type Delivery =
  | { kind: "user"; user: string; frame: string; offset: string | undefined }
  | { kind: "room"; room: string; frame: string }
  | { kind: "broadcast"; frame: string }
  | { kind: "kick"; user: string; exceptConn: string | undefined }
  | { kind: "resume"; user: string };

/** Records what a broker hands to its gateway; deliveries may be asynchronous (Pub/Sub), so tests wait. */
export class Recorder implements Deliveries {
  readonly got: Delivery[] = [];
  private waiters: { pred: (d: Delivery[]) => boolean; resolve: () => void }[] = [];

  private push(d: Delivery) {
    this.got.push(d);
    for (const w of [...this.waiters]) if (w.pred(this.got)) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve();
    }
  }
  user(user: string, frame: string, offset: string | undefined) {
    this.push({ kind: "user", user, frame, offset });
  }
  room(room: string, frame: string) {
    this.push({ kind: "room", room, frame });
  }
  broadcast(frame: string) {
    this.push({ kind: "broadcast", frame });
  }
  kick(user: string, exceptConn: string | undefined) {
    this.push({ kind: "kick", user, exceptConn });
  }
  resume(user: string) {
    this.push({ kind: "resume", user });
  }

  /** Resolves with the matching deliveries once there are at least n of them. */
  async until<K extends Delivery["kind"]>(kind: K, match: (d: Extract<Delivery, { kind: K }>) => boolean, n = 1, timeoutMs = 3000) {
    const sel = () => this.got.filter((d): d is Extract<Delivery, { kind: K }> => d.kind === kind && match(d as Extract<Delivery, { kind: K }>));
    if (sel().length < n)
      await new Promise<void>((resolve, reject) => {
        const w = { pred: () => sel().length >= n, resolve: () => { clearTimeout(t); resolve(); } };
        const t = setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          reject(new Error(`expected ${n} ${kind} deliveries, got ${sel().length}: ${JSON.stringify(this.got).slice(0, 400)}`));
        }, timeoutMs);
        this.waiters.push(w);
      });
    return sel();
  }
}

/** A gateway's local state as the presence backend sees it, settable by the test. */
export class FakeLocal implements LocalState {
  conns = new Map<string, ConnRef>();
  memberships: [string, string][] = [];
  counts() {
    return { connections: this.conns.size, users: new Set([...this.conns.values()].map((c) => c.user)).size };
  }
  connections() {
    return this.conns.values();
  }
  rooms() {
    return this.memberships;
  }
}

const OFFSET = /^[^:\s]+:\d+$/;
const seqOf = (offset: string) => Number(offset.slice(offset.lastIndexOf(":") + 1));
const epochOf = (offset: string) => offset.slice(0, offset.lastIndexOf(":"));

async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = await fn();
  while (!ok(v) && Date.now() < deadline) {
    await Bun.sleep(25);
    v = await fn();
  }
  return v;
}

export function backendContract(name: string, makeBackends: MakeBackends, contract: ContractOptions = {}) {
  let seq = 0;
  const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  /** Unique names per test: a shared store is never flushed between tests. */
  const uniq = (p: string) => `${p}-${run}-${++seq}`;
  const live: { b: Backends; stopped: boolean }[] = [];

  interface Gw {
    broker: Backends["broker"];
    history: Backends["history"];
    presence: Backends["presence"];
    rec: Recorder;
    local: FakeLocal;
    reaped: [string, string][];
    id: string;
    region: string;
    stop(): Promise<void>;
  }

  async function gateway(over: Partial<BackendOptions> = {}): Promise<Gw> {
    const opts: BackendOptions = {
      gatewayId: uniq("gw"),
      region: "r1",
      started: Date.now(),
      historySize: 100,
      historyTtlS: 60,
      historyMaxBytes: 1 << 20,
      presenceTtlMs: 2000,
      heartbeatMs: 200,
      ...over,
    };
    const b = await makeBackends(opts);
    const entry = { b, stopped: false };
    live.push(entry);
    const rec = new Recorder();
    const local = new FakeLocal();
    const reaped: [string, string][] = [];
    await b.broker.start(rec);
    await b.presence.start(local, (room, user) => reaped.push([room, user]));
    return {
      broker: b.broker,
      history: b.history,
      presence: b.presence,
      rec,
      local,
      reaped,
      id: opts.gatewayId,
      region: opts.region,
      async stop() {
        if (entry.stopped) return;
        entry.stopped = true;
        // Same order as a gateway's drain: presence first (it may share the broker's connections).
        await b.presence.stop();
        await b.broker.close();
        b.history?.close();
      },
    };
  }

  /** A whole resume: the cursor's verdict and every page, concatenated (`pages` counts them). */
  async function replay(g: Gw, user: string, since: string): Promise<{ frames: StoredFrame[]; recovered: boolean; count?: number; pages?: number }> {
    if (!g.history) return { frames: [], recovered: false };
    const cursor = await g.history.replay(user, since);
    const frames: StoredFrame[] = [];
    let pages = 0;
    for (let page = await cursor.next(); page.length; page = await cursor.next(), pages++) {
      expect(pages).toBeLessThan(10_000);
      for (const f of page) frames.push({ offset: f.offset, frame: f.frame });
    }
    expect(frames).toHaveLength(cursor.count);
    return { frames, recovered: cursor.recovered, count: cursor.count, pages };
  }
  /** replay() as the old Broker.replay answered: frames and recovered only. */
  const replayOf = async (g: Gw, user: string, since: string) => {
    const r = await replay(g, user, since);
    return { frames: r.frames, recovered: r.recovered };
  };

  const ref = (user: string, conn = uniq("c"), since = Date.now()): ConnRef => ({ conn, user, since });

  const msg = (from: string | null, data: unknown, ts = 1_700_000_000_000) => ({
    fromJson: JSON.stringify(from),
    dataJson: JSON.stringify(data),
    ts,
  });

  describe(`backend contract: ${name}`, () => {
    afterAll(async () => {
      for (const e of live) {
        if (e.stopped) continue;
        e.stopped = true;
        await e.b.presence.stop().catch(() => {});
        await e.b.broker.close().catch(() => {});
      }
      await contract.cleanup?.();
    });

    describe("Broker", () => {
      test("state() after start is none (memory) or ready (store reachable)", async () => {
        const g = await gateway();
        expect(["none", "ready"]).toContain(g.broker.state());
        await g.stop();
      });

      test("sendDirect stores and routes: one delivery per recipient, exact frame, offsets returned", async () => {
        const g = await gateway();
        const [bob, carol] = [uniq("bob"), uniq("carol")];
        await g.broker.subscribeUser(bob);
        await g.broker.subscribeUser(carol);
        const offsets = await g.broker.sendDirect(msg("alice", { hi: [1, "ü"] }, 123), [bob, carol]);
        expect(offsets).toEqual({ [bob]: expect.stringMatching(OFFSET), [carol]: expect.stringMatching(OFFSET) });
        const [db] = await g.rec.until("user", (d) => d.user === bob);
        const [dc] = await g.rec.until("user", (d) => d.user === carol);
        expect(db!.offset).toBe(offsets![bob]!);
        expect(dc!.offset).toBe(offsets![carol]!);
        expect(JSON.parse(db!.frame)).toEqual({ type: "message", from: "alice", to: bob, data: { hi: [1, "ü"] }, offset: offsets![bob], ts: 123 });
        expect(JSON.parse(dc!.frame)).toEqual({ type: "message", from: "alice", to: carol, data: { hi: [1, "ü"] }, offset: offsets![carol], ts: 123 });
        await Bun.sleep(50);
        expect(g.rec.got.filter((d) => d.kind === "user")).toHaveLength(2); // once each
        await g.stop();
      });

      test("from null (admin API) is carried as null", async () => {
        const g = await gateway();
        const bob = uniq("bob");
        await g.broker.subscribeUser(bob);
        await g.broker.sendDirect(msg(null, "x"), [bob]);
        const [d] = await g.rec.until("user", (d) => d.user === bob);
        expect(JSON.parse(d!.frame).from).toBeNull();
        await g.stop();
      });

      test("offsets: seq +1 per message to the same recipient, one epoch without ':', independent per recipient", async () => {
        const g = await gateway();
        const [bob, carol] = [uniq("bob"), uniq("carol")];
        const bobOffs: string[] = [];
        for (let i = 0; i < 5; i++) bobOffs.push((await g.broker.sendDirect(msg("a", i), [bob]))![bob]!);
        const carolOff = (await g.broker.sendDirect(msg("a", 0), [carol]))![carol]!;
        for (let i = 1; i < 5; i++) expect(seqOf(bobOffs[i]!)).toBe(seqOf(bobOffs[i - 1]!) + 1);
        expect(new Set(bobOffs.map(epochOf)).size).toBe(1);
        expect(epochOf(bobOffs[0]!)).not.toContain(":");
        expect(epochOf(bobOffs[0]!).length).toBeGreaterThan(0);
        expect(seqOf(carolOff)).toBe(seqOf(bobOffs[0]!)); // a fresh history starts where bob's did
        await g.stop();
      });

      test("ordering: sends issued back to back without awaiting are delivered and numbered in call order", async () => {
        const g = await gateway();
        const bob = uniq("bob");
        await g.broker.subscribeUser(bob);
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => g.broker.sendDirect(msg("a", i), [bob])));
        const ds = await g.rec.until("user", (d) => d.user === bob, 50);
        expect(ds.map((d) => JSON.parse(d.frame).data)).toEqual(Array.from({ length: 50 }, (_, i) => i));
        const seqs = results.map((r) => seqOf(r![bob]!));
        for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1);
        await g.stop();
      });

      test("history off: no offsets, frames without offset", async () => {
        const g = await gateway({ historySize: 0 });
        const bob = uniq("bob");
        await g.broker.subscribeUser(bob);
        expect(await g.broker.sendDirect(msg("a", 1, 5), [bob])).toBeUndefined();
        const [d] = await g.rec.until("user", (d) => d.user === bob);
        expect(d!.offset).toBeUndefined();
        expect(JSON.parse(d!.frame)).toEqual({ type: "message", from: "a", to: bob, data: 1, ts: 5 });
        expect(await replayOf(g, bob, "x:1")).toEqual({ frames: [], recovered: false });
        await g.stop();
      });

      test("publishRoom hands the exact frame to the subscribed room", async () => {
        const g = await gateway();
        const room = uniq("room");
        await g.broker.subscribeRoom(room);
        const frame = JSON.stringify({ type: "message", from: "a", room, data: { n: 1 }, ts: 1 });
        await g.broker.publishRoom(room, frame);
        const [d] = await g.rec.until("room", (d) => d.room === room);
        expect(d!.frame).toBe(frame);
        await g.stop();
      });

      test("room frames keep their order", async () => {
        const g = await gateway();
        const room = uniq("room");
        await g.broker.subscribeRoom(room);
        await Promise.all(Array.from({ length: 30 }, (_, i) => g.broker.publishRoom(room, String(i))));
        const ds = await g.rec.until("room", (d) => d.room === room, 30);
        expect(ds.map((d) => Number(d.frame))).toEqual(Array.from({ length: 30 }, (_, i) => i));
        await g.stop();
      });

      test("broadcast is handed over once, exact frame", async () => {
        const g = await gateway();
        const frame = JSON.stringify({ type: "message", from: null, broadcast: true, data: uniq("b"), ts: 1 });
        await g.broker.broadcast(frame);
        const ds = await g.rec.until("broadcast", (d) => d.frame === frame);
        await Bun.sleep(50);
        expect(ds).toHaveLength(1);
        await g.stop();
      });

      test("kick carries the user and the connection to spare", async () => {
        const g = await gateway();
        const [u1, u2] = [uniq("u"), uniq("u")];
        await g.broker.subscribeUser(u1);
        await g.broker.subscribeUser(u2);
        await g.broker.kick(u1, "conn-7");
        await g.broker.kick(u2);
        expect(await g.rec.until("kick", (d) => d.user === u1)).toEqual([{ kind: "kick", user: u1, exceptConn: "conn-7" }]);
        expect(await g.rec.until("kick", (d) => d.user === u2)).toEqual([{ kind: "kick", user: u2, exceptConn: undefined }]);
        await g.stop();
      });

      test("replay: everything after the offset, in order, with the delivered frames; recovered=true", async () => {
        const g = await gateway();
        const bob = uniq("bob");
        await g.broker.subscribeUser(bob);
        const offs: string[] = [];
        for (let i = 0; i < 6; i++) offs.push((await g.broker.sendDirect(msg("a", i), [bob]))![bob]!);
        const delivered = await g.rec.until("user", (d) => d.user === bob, 6);
        const r = await replayOf(g, bob, offs[2]!);
        expect(r.recovered).toBe(true);
        expect(r.frames.map((f) => f.offset)).toEqual(offs.slice(3));
        expect(r.frames.map((f) => f.frame)).toEqual(delivered.slice(3).map((d) => d.frame));
        expect(await replayOf(g, bob, offs[5]!)).toEqual({ frames: [], recovered: true });
        const all = await replayOf(g, bob, `${epochOf(offs[0]!)}:${seqOf(offs[0]!) - 1}`);
        expect(all.recovered).toBe(true);
        expect(all.frames.map((f) => f.offset)).toEqual(offs);
        await g.stop();
      });

      test("replay after trimming: what is retained, recovered=false; at the window's edge recovered=true", async () => {
        const g = await gateway({ historySize: 3 });
        const bob = uniq("bob");
        const offs: string[] = [];
        for (let i = 0; i < 5; i++) offs.push((await g.broker.sendDirect(msg("a", i), [bob]))![bob]!);
        const trimmed = await replayOf(g, bob, offs[0]!);
        expect(trimmed.recovered).toBe(false);
        expect(trimmed.frames.map((f) => f.offset)).toEqual(offs.slice(2));
        expect(trimmed.frames.map((f) => JSON.parse(f.frame).data)).toEqual([2, 3, 4]);
        const edge = await replayOf(g, bob, offs[1]!);
        expect(edge.recovered).toBe(true);
        expect(edge.frames.map((f) => f.offset)).toEqual(offs.slice(2));
        await g.stop();
      });

      test("replay from another epoch: everything retained, recovered=false", async () => {
        const g = await gateway();
        const bob = uniq("bob");
        const offs: string[] = [];
        for (let i = 0; i < 3; i++) offs.push((await g.broker.sendDirect(msg("a", i), [bob]))![bob]!);
        const r = await replayOf(g, bob, "some-other-epoch:2");
        expect(r.recovered).toBe(false);
        expect(r.frames.map((f) => f.offset)).toEqual(offs);
        await g.stop();
      });

      test("replay ahead of the history, or for a user without one: nothing, recovered=false", async () => {
        const g = await gateway();
        const bob = uniq("bob");
        const off = (await g.broker.sendDirect(msg("a", 0), [bob]))![bob]!;
        expect(await replayOf(g, bob, `${epochOf(off)}:${seqOf(off) + 10}`)).toEqual({ frames: [], recovered: false });
        expect(await replayOf(g, uniq("nobody"), "e:1")).toEqual({ frames: [], recovered: false });
        await g.stop();
      });

      test("history expires after WSGATE_HISTORY_TTL_S without messages, and comes back under a new epoch", async () => {
        const g = await gateway({ historyTtlS: 1 });
        const bob = uniq("bob");
        const first = (await g.broker.sendDirect(msg("a", 0), [bob]))![bob]!;
        await g.broker.sendDirect(msg("a", 1), [bob]);
        // Kept at least one TTL after the last message and at most 1.5 (the deadline is refreshed when it runs low).
        await Bun.sleep(1700);
        expect(await replayOf(g, bob, first)).toEqual({ frames: [], recovered: false });
        const next = (await g.broker.sendDirect(msg("a", 2), [bob]))![bob]!;
        expect(epochOf(next)).not.toBe(epochOf(first)); // an offset is never reused for another message
        await g.stop();
      });

      test("history bytes: a resume sees the newest messages within WSGATE_HISTORY_MAX_BYTES, oldest dropped first", async () => {
        const g = await gateway({ historyMaxBytes: 2048 });
        const bob = uniq("bob");
        const offs: string[] = [];
        for (let i = 0; i < 20; i++) offs.push((await g.broker.sendDirect(msg("a", "x".repeat(300) + i), [bob]))![bob]!);
        const r = await replay(g, bob, `${epochOf(offs[0]!)}:0`);
        const bytes = r.frames.reduce((n, f) => n + f.frame.length, 0);
        expect(bytes).toBeLessThanOrEqual(2048);
        // Exactly the newest that fit: one more would pass the cap.
        const sizes = r.frames.map((f) => f.frame.length);
        expect(bytes + sizes[0]!).toBeGreaterThan(2048);
        expect(r.frames.map((f) => f.offset)).toEqual(offs.slice(offs.length - r.frames.length));
        expect(r.recovered).toBe(false);
        // From inside the window: the rest, recovered.
        const inside = await replay(g, bob, offs[offs.length - 3]!);
        expect(inside.recovered).toBe(true);
        expect(inside.frames.map((f) => f.offset)).toEqual(offs.slice(-2));
        await g.stop();
      });

      test("history bytes: the newest message is always kept, even when it alone is over the cap", async () => {
        const g = await gateway({ historyMaxBytes: 1024 });
        const bob = uniq("bob");
        await g.broker.sendDirect(msg("a", "small"), [bob]);
        const big = (await g.broker.sendDirect(msg("a", "y".repeat(3000)), [bob]))![bob]!;
        const r = await replay(g, bob, `${epochOf(big)}:0`);
        expect(r.frames.map((f) => f.offset)).toEqual([big]);
        expect(JSON.parse(r.frames[0]!.frame).data).toBe("y".repeat(3000));
        await g.stop();
      });

      test("a resume is read in pages, in order, without duplicates; count says how many", async () => {
        const g = await gateway({ historySize: 500, historyMaxBytes: 8 << 20 });
        const bob = uniq("bob");
        const big = "z".repeat(40_000);
        const offs: string[] = [];
        for (let i = 0; i < 300; i++) offs.push((await g.broker.sendDirect(msg("a", i % 10 === 0 ? big : i), [bob]))![bob]!);
        const r = await replay(g, bob, offs[9]!);
        expect(r.recovered).toBe(true);
        expect(r.count).toBe(290);
        expect(r.frames.map((f) => f.offset)).toEqual(offs.slice(10));
        expect(r.pages).toBeGreaterThan(1);
        await g.stop();
      });

      test("since seq ≥ 10^14 (Lua prints 1e+14) is an ordinary offset: ahead, nothing, recovered=false", async () => {
        const g = await gateway();
        const bob = uniq("bob");
        const off = (await g.broker.sendDirect(msg("a", 0), [bob]))![bob]!;
        for (const seq of ["100000000000000", "9007199254740991"]) {
          expect(await replayOf(g, bob, `${epochOf(off)}:${seq}`)).toEqual({ frames: [], recovered: false });
          const other = await replayOf(g, bob, `other:${seq}`);
          expect(other.recovered).toBe(false);
          expect(other.frames.map((f) => f.offset)).toEqual([off]);
        }
        await g.stop();
      });
    });

    describe("Presence", () => {

      test("online while at least one connection is registered; connections() lists them", async () => {
        const g = await gateway();
        const bob = uniq("bob");
        const c1 = ref(bob);
        const c2 = ref(bob);
        await g.presence.connect(c1);
        await g.presence.connect(c2);
        expect(await g.presence.users([bob])).toEqual({ [bob]: { online: true, connections: 2, regions: [g.region] } });
        const conns = (await g.presence.connections(bob)).sort((a, b) => a.conn.localeCompare(b.conn));
        expect(conns).toEqual(
          [c1, c2]
            .map((c) => ({ conn: c.conn, gateway: g.id, region: g.region, since: c.since }))
            .sort((a, b) => a.conn.localeCompare(b.conn)),
        );
        await g.presence.disconnect(c1);
        expect(await g.presence.users([bob])).toEqual({ [bob]: { online: true, connections: 1, regions: [g.region] } });
        await g.presence.disconnect(c2);
        expect(await g.presence.users([bob])).toEqual({ [bob]: { online: false, connections: 0, regions: [] } });
        expect(await g.presence.connections(bob)).toEqual([]);
        await g.stop();
      });

      test("unknown users read offline; an empty query is an empty answer; a repeated disconnect is harmless", async () => {
        const g = await gateway();
        const [x, y] = [uniq("x"), uniq("y")];
        expect(await g.presence.users([x, y])).toEqual({
          [x]: { online: false, connections: 0, regions: [] },
          [y]: { online: false, connections: 0, regions: [] },
        });
        expect(await g.presence.users([])).toEqual({});
        const c = ref(x);
        await g.presence.connect(c);
        await g.presence.disconnect(c);
        await g.presence.disconnect(c);
        await g.presence.disconnect(ref(y));
        expect((await g.presence.users([x]))[x]).toEqual({ online: false, connections: 0, regions: [] });
        await g.stop();
      });

      test("200 connections registered and removed concurrently leave nothing behind", async () => {
        const g = await gateway();
        const bob = uniq("bob");
        const refs = Array.from({ length: 200 }, () => ref(bob));
        await Promise.all(refs.map((c) => g.presence.connect(c)));
        expect((await g.presence.users([bob]))[bob]!.connections).toBe(200);
        await Promise.all(refs.map((c) => g.presence.disconnect(c)));
        expect((await g.presence.users([bob]))[bob]).toEqual({ online: false, connections: 0, regions: [] });
        expect(await g.presence.connections(bob)).toEqual([]);
        await g.stop();
      });

      test("room membership: join true only the first time, leave true only when in, sorted members", async () => {
        const g = await gateway();
        const room = uniq("room");
        const [zed, amy] = [uniq("zed"), uniq("amy")];
        expect(await g.presence.roomUsers(room)).toEqual([]);
        expect(await g.presence.joinRoom(room, zed)).toBe(true);
        expect(await g.presence.joinRoom(room, zed)).toBe(false);
        expect(await g.presence.joinRoom(room, amy)).toBe(true);
        expect(await g.presence.roomUsers(room)).toEqual([amy, zed].sort());
        expect(await g.presence.leaveRoom(room, zed)).toBe(true);
        expect(await g.presence.leaveRoom(room, zed)).toBe(false);
        expect(await g.presence.leaveRoom(uniq("nowhere"), amy)).toBe(false);
        expect(await g.presence.roomUsers(room)).toEqual([amy]);
        expect(await g.presence.leaveRoom(room, amy)).toBe(true);
        expect(await g.presence.roomUsers(room)).toEqual([]);
        await g.stop();
      });

      test("a join that arrives after the leave decided later never lands (no ghost member); a late leave never undoes a newer join", async () => {
        const g = await gateway();
        const room = uniq("room");
        const [ann, ben] = [uniq("ann"), uniq("ben")];
        // ann's join was decided first (ticket 1), her close's leave second (ticket 2), but the leave got there first.
        const tJoin = g.presence.ticket();
        const tLeave = g.presence.ticket();
        expect(await g.presence.leaveRoom(room, ann, tLeave)).toBe(false);
        expect(await g.presence.joinRoom(room, ann, tJoin)).toBe(false);
        expect(await g.presence.roomUsers(room)).toEqual([]);
        // A later decision still lands.
        expect(await g.presence.joinRoom(room, ann, g.presence.ticket())).toBe(true);
        expect(await g.presence.roomUsers(room)).toEqual([ann]);
        // ben leaves (ticket 1) and re-joins (ticket 2); the leave is the one that arrives late.
        const t1 = g.presence.ticket();
        expect(await g.presence.joinRoom(room, ben)).toBe(true);
        const t2 = g.presence.ticket();
        expect(await g.presence.joinRoom(room, ben, t2)).toBe(false);
        expect(await g.presence.leaveRoom(room, ben, t1)).toBe(false);
        expect(await g.presence.roomUsers(room)).toEqual([ann, ben].sort());
        expect(await g.presence.leaveRoom(room, ben)).toBe(true);
        expect(await g.presence.leaveRoom(room, ann)).toBe(true);
        expect(await g.presence.roomUsers(room)).toEqual([]);
        await g.stop();
      });

      test("a registration that arrives after its connection's removal never makes the user online", async () => {
        const g = await gateway();
        const bob = uniq("bob");
        const c = ref(bob);
        await g.presence.disconnect(c);
        await g.presence.connect(c);
        expect((await g.presence.users([bob]))[bob]).toEqual({ online: false, connections: 0, regions: [] });
        expect(await g.presence.connections(bob)).toEqual([]);
        await g.stop();
      });

      test("gateways() lists this gateway with its local counts", async () => {
        const g = await gateway();
        g.local.conns.set("c1", ref("u1", "c1"));
        g.local.conns.set("c2", ref("u1", "c2"));
        g.local.conns.set("c3", ref("u2", "c3"));
        // A lease may carry the counts only at its next refresh: wait up to a few heartbeats.
        const rows = await eventually(
          () => g.presence.gateways(),
          (rs) => rs.some((r) => r.id === g.id && r.connections === 3),
        );
        const mine = rows.find((r) => r.id === g.id)!;
        expect(mine).toEqual({ id: g.id, region: g.region, connections: 3, users: 2, started: expect.any(Number), last_seen: expect.any(Number) });
        expect(Math.abs(mine.last_seen - Date.now())).toBeLessThan(5000);
        await g.stop();
      });

      test("stop() removes this gateway's entries", async () => {
        const g = await gateway();
        const observer = contract.shared ? await gateway() : g;
        const bob = uniq("bob");
        const room = uniq("room");
        const c = ref(bob);
        g.local.conns.set(c.conn, c);
        g.local.memberships.push([room, bob]);
        await g.presence.connect(c);
        await g.presence.joinRoom(room, bob);
        await g.presence.stop();
        if (observer !== g) {
          expect((await observer.presence.users([bob]))[bob]).toEqual({ online: false, connections: 0, regions: [] });
          expect(await observer.presence.roomUsers(room)).toEqual([]);
          expect((await observer.presence.gateways()).map((r) => r.id)).not.toContain(g.id);
          await observer.stop();
        } else {
          expect((await g.presence.users([bob]))[bob]).toEqual({ online: false, connections: 0, regions: [] });
          expect(await g.presence.roomUsers(room)).toEqual([]);
        }
        await g.broker.close();
        live.find((e) => e.b.presence === g.presence)!.stopped = true;
      });
    });

    if (contract.shared)
      describe("across gateways (shared store)", () => {
        test("a direct message sent on one gateway reaches the gateway that holds the user", async () => {
          const [a, b] = [await gateway(), await gateway()];
          const bob = uniq("bob");
          await b.broker.subscribeUser(bob);
          const offsets = await a.broker.sendDirect(msg("alice", "hi"), [bob]);
          const [d] = await b.rec.until("user", (d) => d.user === bob);
          expect(d!.offset).toBe(offsets![bob]!);
          expect(a.rec.got.filter((x) => x.kind === "user" && x.user === bob)).toEqual([]); // a is not subscribed
          // Either gateway can replay it.
          expect((await replayOf(a, bob, `${epochOf(offsets![bob]!)}:0`)).frames.map((f) => f.frame)).toEqual([d!.frame]);
          await a.stop();
          await b.stop();
        });

        test("rooms, broadcasts and kicks cross gateways", async () => {
          const [a, b] = [await gateway(), await gateway()];
          const room = uniq("room");
          const bob = uniq("bob");
          await b.broker.subscribeRoom(room);
          await b.broker.subscribeUser(bob);
          await a.broker.publishRoom(room, "r1");
          expect((await b.rec.until("room", (d) => d.room === room))[0]!.frame).toBe("r1");
          const frame = uniq("bc");
          await a.broker.broadcast(frame);
          await a.rec.until("broadcast", (d) => d.frame === frame);
          await b.rec.until("broadcast", (d) => d.frame === frame);
          await a.broker.kick(bob, "keep-me");
          expect(await b.rec.until("kick", (d) => d.user === bob)).toEqual([{ kind: "kick", user: bob, exceptConn: "keep-me" }]);
          await a.stop();
          await b.stop();
        });

        test("presence adds up across gateways and regions; room membership is cluster-wide", async () => {
          const a = await gateway({ region: "r1" });
          const b = await gateway({ region: "r2" });
          const bob = uniq("bob");
          const room = uniq("room");
          await a.presence.connect(ref(bob));
          const cb = ref(bob);
          await b.presence.connect(cb);
          for (const g of [a, b]) {
            const p = (await g.presence.users([bob]))[bob]!;
            expect({ ...p, regions: [...p.regions].sort() }).toEqual({ online: true, connections: 2, regions: ["r1", "r2"] });
            expect((await g.presence.connections(bob)).map((c) => c.gateway).sort()).toEqual([a.id, b.id].sort());
          }
          expect(await a.presence.joinRoom(room, bob)).toBe(true);
          expect(await b.presence.joinRoom(room, bob)).toBe(false); // already in the room cluster-wide
          expect(await a.presence.leaveRoom(room, bob)).toBe(false); // still in through b
          expect(await b.presence.roomUsers(room)).toEqual([bob]);
          expect(await b.presence.leaveRoom(room, bob)).toBe(true);
          expect(await a.presence.roomUsers(room)).toEqual([]);
          const ids = (await a.presence.gateways()).map((r) => r.id);
          expect(ids).toContain(a.id);
          expect(ids).toContain(b.id);
          await b.presence.disconnect(cb);
          expect((await a.presence.users([bob]))[bob]).toEqual({ online: true, connections: 1, regions: ["r1"] });
          await a.stop();
          await b.stop();
        });
      });
  });
}
