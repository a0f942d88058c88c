// Cluster presence, built so that every script touches one hash slot (Redis Cluster) and single Redis is the
// same code with one slot owner. See docs/FAILOVER.md ("Presence") for the key layout and the reaping steps.
//
// - A gateway process runs as an instance "<process>.<incarnation>". Its lease (wsg:gl:{inst}) is the only
//   upkeep: one write per interval, whatever its connection count. Its index of what it holds lives in the
//   same slot and takes writes only while the lease exists.
// - Every write is two steps: the instance index first (fenced by the lease), then the user's or room's slot,
//   whose entries name the instance and a ticket; a removal goes the other way round. Entries refuse writes
//   older than what they hold, so nothing lands after its own removal (lua/entry.lua).
// - Readers take entries from the user's or room's slot, then check the named instances' leases in a second
//   step: a dead holder stops counting at once, before anyone reaped it.
// - Reaping walks a dead instance's index; each step is idempotent and announces each leave once, and the
//   instance stays in the registry until its index is empty, so any survivor can finish an interrupted reap.
import type { Logger } from "../../log.ts";
import type { BuildInfo } from "../../version.ts";
import type { ConnInfo, ConnRef, GatewayInfo, LocalState, Presence, UserPresence } from "../types.ts";
import type { RedisClients } from "./clients.ts";
import { roomEvent } from "../../protocol/outbound.ts";
import { channels, keys } from "./keys.ts";
import { createTicks, type Tick, type Ticks } from "../../ticks.ts";

export interface RedisPresenceOptions {
  gatewayId: string;
  region: string;
  started: number;
  /** Shown in the registry (/v1/gateways), written with each new lease. */
  build?: BuildInfo;
  ttlMs: number;
  /** How often the lease is refreshed and dead instances are looked for. */
  intervalMs: number;
  /** The gateway's shared timer for that refresh (its own when not given). */
  ticks?: Ticks;
  /** How long removal tombstones stay (Redis's clock): the longest a late write can be refused. */
  tombstoneMs?: number;
  /** Index entries one reap step handles, so a huge dead gateway is cleaned in bounded steps. */
  reapBatch?: number;
  /** How long a reaper's claim keeps other survivors off (default: the presence TTL). */
  reapClaimMs?: number;
}

type RoomEvent = (room: string, user: string, event: "join" | "leave") => void;
interface Entry {
  inst: string;
  rest: string;
}

// Late writes come from commands in flight or resent after a reconnect: seconds. Each closed connection costs
// its user's hash one field for this long, so it stays short.
const TOMBSTONE_MS = 120_000;
const REAP_BATCH = 1000;
const NODE_SETTLE_MS = 1000;
/** Instance ids end in ".<incarnation>"; the hash tag must not contain braces. */
const tagSafe = (s: string) => s.replace(/[{}\s|]/g, "_");
const processOf = (inst: string) => inst.slice(0, inst.lastIndexOf("."));
const pairKey = (room: string, user: string) => `${room} ${user}`;

/** Live entries ("L|inst|ticket|rest") of a presence or room hash, bookkeeping fields and tombstones skipped. */
function liveEntries(h: Record<string, string>): [string, Entry][] {
  const out: [string, Entry][] = [];
  for (const [f, v] of Object.entries(h)) {
    if (!v.startsWith("L|")) continue;
    const a = v.indexOf("|", 2);
    const b = v.indexOf("|", a + 1);
    out.push([f, { inst: v.slice(2, a), rest: v.slice(b + 1) }]);
  }
  return out;
}

export class RedisPresence implements Presence {
  private readonly process: string;
  private incarnation = 0;
  private inst: string;
  private tickets = 0;
  /** Bumped with every re-assert (Presence.generation): the reap of the old incarnation follows it. */
  private gen = 0;
  /** (room, user) pairs whose join landed and no leave since: a leave that finds nothing in Redis then knows it was lost. */
  private readonly held = new Set<string>();
  private local: LocalState | null = null;
  private onRoomEvent: RoomEvent = () => {};
  private timer: Tick | null = null;
  private reasserting: Promise<Map<string, number>> | null = null;
  private needsReassert = false;
  private nodeLost: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  private readonly tomb: number;
  private readonly batch: number;

  constructor(
    private readonly r: RedisClients,
    private readonly o: RedisPresenceOptions,
    private readonly log: Logger,
  ) {
    this.tomb = o.tombstoneMs ?? TOMBSTONE_MS;
    this.batch = o.reapBatch ?? REAP_BATCH;
    this.process = `${tagSafe(o.gatewayId)}#${o.started.toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
    this.inst = this.nextInstance();
    // A reconnect may hide writes that never reached Redis (or Redis came back empty): re-assert.
    let wasDown = false;
    r.cmd.on("close", () => (wasDown = true));
    r.cmd.on("ready", () => {
      if (wasDown && this.local && !this.stopped) void this.reassert("redis reconnected");
      wasDown = false;
    });
  }

  private nextInstance() {
    return `${this.process}.${(this.incarnation++).toString(36)}`;
  }

  /** Current instance id (tests use it to play a dead or stale gateway). */
  get instance() {
    return this.inst;
  }

  ticket() {
    return ++this.tickets;
  }

  get generation() {
    return this.gen;
  }

  async start(local: LocalState, onRoomEvent: RoomEvent) {
    this.local = local;
    this.onRoomEvent = onRoomEvent;
    await this.register(this.inst);
    this.timer = (this.o.ticks ?? createTicks()).every(this.o.intervalMs, () => void this.tick());
    // Redis Cluster: a failover may lose the newest writes of the promoted primary's slots, which the lease
    // (in another slot) does not show. A node leaving the pool is the sign: re-assert once the slot map settled.
    if (typeof (this.r.cmd as unknown as { nodes?: unknown }).nodes === "function")
      this.r.cmd.on("-node", () => {
        if (this.stopped || this.nodeLost) return;
        this.nodeLost = setTimeout(() => {
          this.nodeLost = null;
          if (!this.stopped) void this.reassert("cluster node lost");
        }, NODE_SETTLE_MS);
      });
  }

  /** Findable first, then alive: a reaper that sees the registry entry before the lease finds nothing to do. */
  private async register(inst: string) {
    await this.r.cmd.sadd(keys.gateways, inst);
    await this.lease(inst, "new");
  }

  private async lease(inst: string, mode: "new" | "refresh" | "retire"): Promise<boolean> {
    const c = this.local?.counts() ?? { connections: 0, users: 0 };
    const b = this.o.build ?? { version: "", build: "" };
    const args = [mode, this.o.ttlMs, this.o.gatewayId, this.o.region, c.connections, c.users, this.o.started, b.version, b.build];
    return (await this.r.cmd.wsgLease(keys.lease(inst), ...args)) === 1;
  }

  private async tick() {
    if (this.stopped || this.r.cmd.status !== "ready") return;
    try {
      if (!this.reasserting) {
        if (this.needsReassert || !(await this.lease(this.inst, "refresh"))) await this.reassert("lease lapsed");
        // Every interval: a registry that lost its data (failover of its node) finds live instances again.
        else await this.r.cmd.sadd(keys.gateways, this.inst);
      }
      await this.reapDead();
    } catch (err) {
      this.log.warn("presence upkeep failed", { err: (err as Error).message });
    }
  }

  /**
   * New incarnation, live state re-asserted under it, then the old one retired and reaped: entries the new one
   * took over stay, so users still here get no leave event. Resolves with room_join.lua's result for each
   * (room, user) it wrote, for a joinRoom that was fenced meanwhile.
   */
  reassert(why: string): Promise<Map<string, number>> {
    this.reasserting ??= (async () => {
      const old = this.inst;
      this.inst = this.nextInstance();
      this.gen++;
      this.needsReassert = false;
      const inst = this.inst;
      this.log.warn("re-asserting presence", { why, instance: inst });
      try {
        await this.register(inst);
        const results = await this.reassertState(inst);
        await this.lease(old, "retire");
        void this.reap(old, true).catch(() => {});
        return results;
      } catch (err) {
        this.log.warn("re-assert failed; retrying next interval", { err: (err as Error).message });
        this.needsReassert = true;
        return new Map<string, number>();
      } finally {
        this.reasserting = null;
      }
    })();
    return this.reasserting;
  }

  private async reassertState(inst: string): Promise<Map<string, number>> {
    // Tickets are taken now, with the snapshot: newer than any decision already made, older than any to come.
    const conns = [...this.local!.connections()].map((c) => ({ c, t: this.ticket() }));
    // "reassert" (silent when nothing is owed) only for holdings whose join landed: absent from Redis, they were
    // lost with its data and their join was announced. A holding whose join had not landed yet (its step waits
    // for the room subscription, or is in flight) is written as a join: announced if it makes the user present
    // (seed 2005: written silently here, its own step then found it present and nobody announced it).
    const rooms = [...this.local!.rooms()].map(([room, user]) => ({
      room,
      user,
      t: this.ticket(),
      mode: this.held.has(pairKey(room, user)) ? "reassert" : "join",
    }));
    for (let i = 0; i < conns.length; i += this.batch) {
      const part = conns.slice(i, i + this.batch).flatMap(({ c }) => [c.conn, c.user]);
      if ((await this.r.cmd.wsgIndex(keys.lease(inst), keys.gatewayConns(inst), "add", ...part)) === -1) throw new Error("lease lost");
    }
    for (let i = 0; i < rooms.length; i += this.batch) {
      const part = rooms.slice(i, i + this.batch).flatMap(({ room, user, t }) => [pairKey(room, user), t]);
      if ((await this.r.cmd.wsgIndex(keys.lease(inst), keys.gatewayRooms(inst), "addmax", ...part)) === -1) throw new Error("lease lost");
    }
    const connRes = await Promise.all(conns.map(({ c, t }) => this.r.cmd.wsgConnect(keys.presence(c.user), c.conn, inst, t, this.payload(c), this.tomb)));
    const roomRes = await Promise.all(
      rooms.map(({ room, user, t, mode }) =>
        this.r.cmd.wsgRoomJoin(keys.roomMembers(room), user, this.process, inst, t, mode, this.tomb, ...this.event(room, user, "join")),
      ),
    );
    if ([...connRes, ...roomRes].includes(-1)) throw new Error("new incarnation fenced");
    const results = new Map<string, number>();
    rooms.forEach(({ room, user }, i) => {
      results.set(pairKey(room, user), roomRes[i] as number);
      if ((roomRes[i] as number) >= 0) this.held.add(pairKey(room, user));
      // A leave was announced for them (their old incarnation was reaped), or their join had not landed: the
      // script announced it.
      if (roomRes[i] === 1) this.onRoomEvent(room, user, "join");
    });
    return results;
  }

  /** Instances in the registry whose lease is gone are reaped (a step at a time, by whoever gets the claim). */
  private async reapDead() {
    const insts = (await this.r.cmd.smembers(keys.gateways)).filter((i) => i !== this.inst);
    const alive = await Promise.all(insts.map((i) => this.r.cmd.exists(keys.lease(i))));
    for (const [k, inst] of insts.entries()) if (alive[k] === 0 && !this.stopped) await this.reap(inst);
  }

  /**
   * One bounded step of reaping `inst`: up to `reapBatch` connections and room holdings. Each entry's script is
   * idempotent, so a step repeated after a crash changes nothing twice; the index entry goes only after its
   * script succeeded, and the registry entry only once the index is empty. Returns true when done.
   */
  async reap(inst: string, force = false): Promise<boolean> {
    if (!force && (await this.r.cmd.wsgReapClaim(keys.lease(inst), keys.reapClaim(inst), this.inst, this.o.reapClaimMs ?? this.o.ttlMs)) !== 1) return false;
    const [conns, rooms] = await Promise.all([this.r.cmd.hgetall(keys.gatewayConns(inst)), this.r.cmd.hgetall(keys.gatewayRooms(inst))]);
    const connList = Object.entries(conns).slice(0, this.batch);
    const roomList = Object.keys(rooms).slice(0, Math.max(0, this.batch - connList.length));
    if (connList.length + roomList.length > 0) this.log.info("reaping gateway instance", { instance: inst, connections: connList.length, rooms: roomList.length });
    const connRes = await Promise.allSettled(connList.map(([conn, user]) => this.r.cmd.wsgDisconnect(keys.presence(user), "reap", conn, inst, 0, this.tomb)));
    const doneConns = connList.filter((_, i) => connRes[i]!.status === "fulfilled").map(([conn]) => conn);
    if (doneConns.length) await this.r.cmd.hdel(keys.gatewayConns(inst), ...doneConns);
    const proc = processOf(inst);
    const roomRes = await Promise.allSettled(
      roomList.map((p) => {
        const [room, user] = p.split(" ") as [string, string];
        return this.r.cmd.wsgRoomLeave(keys.roomMembers(room), "reap", user, proc, inst, 0, this.tomb, "0", ...this.event(room, user, "leave"));
      }),
    );
    const doneRooms: string[] = [];
    roomList.forEach((p, i) => {
      const res = roomRes[i]!;
      if (res.status !== "fulfilled") return;
      doneRooms.push(p);
      // Exactly one caller cluster-wide gets 1 for a (room, user) that left: it announces.
      if (res.value === 1) {
        const [room, user] = p.split(" ") as [string, string];
        this.onRoomEvent(room, user, "leave");
      }
    });
    if (doneRooms.length) await this.r.cmd.hdel(keys.gatewayRooms(inst), ...doneRooms);
    const failed = connRes.find((r) => r.status === "rejected") ?? roomRes.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    if ((await this.r.cmd.exists(keys.gatewayConns(inst), keys.gatewayRooms(inst))) > 0) return false;
    // Nothing of it is left anywhere: only now it stops being findable.
    await this.r.cmd.srem(keys.gateways, inst);
    await this.r.cmd.del(keys.reapClaim(inst));
    return true;
  }

  async stop() {
    this.stopped = true;
    this.held.clear();
    this.timer?.stop();
    if (this.nodeLost) clearTimeout(this.nodeLost);
    await this.reasserting;
    const inst = this.inst;
    await this.lease(inst, "retire");
    for (let i = 0; i < 1000 && !(await this.reap(inst, true)); i++);
  }

  private payload(c: ConnRef) {
    return `${this.o.gatewayId}|${this.o.region}|${c.since}`;
  }

  async connect(c: ConnRef) {
    const inst = this.inst;
    const t = this.ticket();
    // Index first: a lapsed instance is refused here and never writes into the user's slot.
    if ((await this.r.cmd.wsgIndex(keys.lease(inst), keys.gatewayConns(inst), "add", c.conn, c.user)) === -1) {
      // The connection is in the local registry already: the re-assert registers it.
      await this.reassert("write fenced");
      return;
    }
    if ((await this.r.cmd.wsgConnect(keys.presence(c.user), c.conn, inst, t, this.payload(c), this.tomb)) === -1) await this.reassert("write fenced");
  }

  async disconnect(c: ConnRef) {
    const inst = this.inst;
    const t = this.ticket();
    await this.r.cmd.wsgDisconnect(keys.presence(c.user), "close", c.conn, inst, t, this.tomb);
    await this.r.cmd.hdel(keys.gatewayConns(inst), c.conn);
  }

  /** Room events are published by the scripts that decide them (room_join.lua, room_leave.lua). */
  readonly announces = true;

  /** The script arguments that make a room script publish its event: frame, command, channel (same slot). */
  private event(room: string, user: string, event: "join" | "leave"): [string, string, string] {
    return [roomEvent(room, event, user, Date.now()), this.r.sharded ? "SPUBLISH" : "PUBLISH", channels.room(room)];
  }

  async joinRoom(room: string, user: string, ticket = this.ticket()) {
    const inst = this.inst;
    const key = pairKey(room, user);
    let res = await this.r.cmd.wsgIndex(keys.lease(inst), keys.gatewayRooms(inst), "addmax", key, ticket);
    const ev = this.event(room, user, "join");
    if (res !== -1) res = await this.r.cmd.wsgRoomJoin(keys.roomMembers(room), user, this.process, inst, ticket, "join", this.tomb, ...ev);
    if (res !== -1) {
      if ((res as number) >= 0) this.held.add(key);
      return res === 1;
    }
    // Fenced: the re-assert takes the pair from the local state; if that made the user present cluster-wide,
    // the announcement is this join's.
    const results = await this.reassert("write fenced");
    const got = results.get(key);
    results.delete(key);
    // Announced by the re-assert's script (this join had not landed, so it was written as a join).
    if (got === 1) return true;
    if (got === 2) {
      // Written silently (a join of ours had landed before and Redis lost it): this join's event goes out here.
      await this.r.cmd.call(ev[1], ev[2], ev[0]);
      return true;
    }
    const again = await this.r.cmd.wsgRoomJoin(keys.roomMembers(room), user, this.process, this.inst, this.ticket(), "join", this.tomb, ...ev);
    if ((again as number) >= 0) this.held.add(key);
    return again === 1;
  }

  async leaveRoom(room: string, user: string, ticket = this.ticket()) {
    const inst = this.inst;
    const key = pairKey(room, user);
    const held = this.held.has(key) ? "1" : "0";
    const res = await this.r.cmd.wsgRoomLeave(keys.roomMembers(room), "leave", user, this.process, inst, ticket, this.tomb, held, ...this.event(room, user, "leave"));
    this.held.delete(key);
    await this.r.cmd.wsgIndex(keys.lease(inst), keys.gatewayRooms(inst), "delmax", key, ticket);
    return res === 1;
  }

  /** Second step of every read: which of these instances hold a lease now (one command per slot). */
  private async liveInstances(insts: Iterable<string>): Promise<Set<string>> {
    const list = [...new Set(insts)];
    const res = await Promise.all(list.map((i) => this.r.read.exists(keys.lease(i))));
    return new Set(list.filter((_, k) => res[k] === 1));
  }

  private async entries(users: readonly string[]): Promise<ConnInfo[][]> {
    const hashes = await Promise.all(users.map((u) => this.r.read.hgetall(keys.presence(u))));
    const all = hashes.map(liveEntries);
    const live = await this.liveInstances(all.flatMap((es) => es.map(([, e]) => e.inst)));
    return all.map((es) =>
      es
        .filter(([, e]) => live.has(e.inst))
        .map(([conn, e]) => {
          const [gateway, region, since] = e.rest.split("|");
          return { conn, gateway: gateway!, region: region!, since: Number(since) };
        }),
    );
  }

  async users(users: readonly string[]) {
    const all = await this.entries(users);
    // No prototype: a user named __proto__ must be an ordinary key.
    const out: Record<string, UserPresence> = Object.create(null);
    users.forEach((u, i) => {
      const cs = all[i]!;
      out[u] = { online: cs.length > 0, connections: cs.length, regions: [...new Set(cs.map((c) => c.region))].sort() };
    });
    return out;
  }

  async connections(user: string) {
    return (await this.entries([user]))[0]!;
  }

  async roomUsers(room: string) {
    const holders = liveEntries(await this.r.read.hgetall(keys.roomMembers(room))).filter(([f]) => f.includes(" "));
    const live = await this.liveInstances(holders.map(([, e]) => e.inst));
    const users = new Set(holders.filter(([, e]) => live.has(e.inst)).map(([f]) => f.slice(0, f.indexOf(" "))));
    return [...users].sort();
  }

  async gateways(): Promise<GatewayInfo[]> {
    const insts = await this.r.read.smembers(keys.gateways);
    const leases = await Promise.all(insts.map((i) => this.r.read.hgetall(keys.lease(i))));
    const byId = new Map<string, GatewayInfo>();
    for (const g of leases) {
      if (!g?.id) continue;
      const row: GatewayInfo = {
        id: g.id,
        region: g.region!,
        connections: Number(g.connections),
        users: Number(g.users),
        started: Number(g.started),
        last_seen: Number(g.last_seen),
        ...(g.version ? { version: g.version, build: g.build || "unknown" } : {}),
      };
      // During a re-assert a gateway briefly has two incarnations: show the fresher one.
      const prev = byId.get(row.id);
      if (!prev || prev.last_seen < row.last_seen) byId.set(row.id, row);
    }
    return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
  }
}
