// Cluster presence. Upkeep is one lease per gateway instance (lease.lua), whatever its connection count.
// Per-connection writes happen only on connect/disconnect/join/leave, fenced by the lease, so a gateway
// that lapsed cannot resurrect a departed user. An instance is `<gateway id>#<incarnation>`: after an
// outage or a lapse the gateway takes a new incarnation, re-asserts its live state under it, and the old
// one is reaped like any dead gateway — which makes "Redis lost everything" and "we missed a write while
// disconnected" the same, already-tested path.
import type { Logger } from "../../log.ts";
import type { ConnInfo, ConnRef, GatewayInfo, LocalState, Presence, UserPresence } from "../types.ts";
import type { RedisClients } from "./clients.ts";
import { keys } from "./keys.ts";
import type { ScriptedPipeline } from "./scripts.ts";

export interface RedisPresenceOptions {
  gatewayId: string;
  region: string;
  started: number;
  ttlMs: number;
  /** How often the lease is refreshed and dead instances are looked for. */
  intervalMs: number;
}

const member = (room: string, user: string) => `${room} ${user}`;

export class RedisPresence implements Presence {
  private inst: string;
  private incarnation = 0;
  private local: LocalState | null = null;
  private onRoomEvent: (room: string, user: string, event: "join" | "leave") => void = () => {};
  private timer: ReturnType<typeof setInterval> | null = null;
  private reasserting: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly r: RedisClients,
    private readonly o: RedisPresenceOptions,
    private readonly log: Logger,
  ) {
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
    return `${this.o.gatewayId}#${this.o.started.toString(36)}.${(this.incarnation++).toString(36)}`;
  }

  /** Current instance id (tests use it to simulate a stale gateway). */
  get instance() {
    return this.inst;
  }

  async start(local: LocalState, onRoomEvent: (room: string, user: string, event: "join" | "leave") => void) {
    this.local = local;
    this.onRoomEvent = onRoomEvent;
    await this.lease("new");
    this.timer = setInterval(() => void this.tick(), this.o.intervalMs);
  }

  private async lease(mode: "new" | "refresh"): Promise<boolean> {
    const c = this.local!.counts();
    const ok = await this.r.cmd.wsgLease(
      keys.gateways,
      keys.gatewayInfo(this.inst),
      this.inst,
      this.o.ttlMs,
      this.o.gatewayId,
      this.o.region,
      c.connections,
      c.users,
      this.o.started,
      mode,
    );
    return ok === 1;
  }

  private async tick() {
    if (this.stopped || this.r.cmd.status !== "ready") return;
    try {
      if (!this.reasserting && !(await this.lease("refresh"))) await this.reassert("lease lapsed");
      await this.reapDead();
    } catch (err) {
      this.log.warn("presence upkeep failed", { err: (err as Error).message });
    }
  }

  /** New incarnation, live state re-asserted under it, then the old incarnation reaped. */
  private reassert(why: string): Promise<void> {
    this.reasserting ??= (async () => {
      const old = this.inst;
      try {
        this.inst = this.nextInstance();
        this.log.warn("re-asserting presence", { why, instance: this.inst });
        // Reaped by a survivor (not merely lost with Redis's data): our users' leave events went out.
        const wasReaped = (await this.r.cmd.exists(keys.reaped(old))) === 1;
        await this.lease("new");
        const p = this.r.cmd.pipeline() as ScriptedPipeline;
        let n = 0;
        for (const c of this.local!.connections()) {
          p.wsgConnect(...this.connectArgs(c));
          n++;
        }
        const rooms = [...this.local!.rooms()];
        for (const [room, user] of rooms)
          p.wsgRoomJoin(keys.gateways, keys.roomMembers(room), keys.gatewayRooms(this.inst), this.inst, member(room, user), user);
        const res = (await p.exec()) ?? [];
        // Members were told these users left; tell them they are back (only where no one else kept them in).
        if (wasReaped) rooms.forEach(([room, user], i) => res[n + i]?.[1] === 1 && this.onRoomEvent(room, user, "join"));
        // Our own old incarnation, reaped after the re-assert so users still here get no leave event. If someone
        // else claimed it already, reaping again is harmless: room_leave.lua's SREM lets one caller count each member.
        await this.r.cmd.wsgReapClaim(keys.gateways, old, "force");
        await this.reap(old);
      } catch (err) {
        this.log.warn("re-assert failed; retrying next interval", { err: (err as Error).message });
        this.inst = old;
      } finally {
        this.reasserting = null;
      }
    })();
    return this.reasserting;
  }

  private async reapDead() {
    const dead = await this.r.cmd.zrangebyscore(keys.gateways, "-inf", `(${Date.now()}`);
    for (const inst of dead) {
      if (inst === this.inst) continue;
      if ((await this.r.cmd.wsgReapClaim(keys.gateways, inst)) === 1) {
        this.log.info("reaping dead gateway", { instance: inst });
        await this.r.cmd.set(keys.reaped(inst), "1", "PX", 600_000);
        await this.reap(inst);
      }
    }
  }

  /** Removes an instance's connections and room memberships; the caller owns the claim. */
  private async reap(inst: string) {
    const conns = await this.r.cmd.hgetall(keys.gatewayConns(inst));
    const p = this.r.cmd.pipeline() as ScriptedPipeline;
    for (const [conn, user] of Object.entries(conns)) p.wsgDisconnect(keys.presence(user), keys.gatewayConns(inst), conn, inst);
    const members = await this.r.cmd.smembers(keys.gatewayRooms(inst));
    const pairs = members.map((m) => m.split(" ") as [string, string]);
    for (const [room, user] of pairs) p.wsgRoomLeave(keys.roomMembers(room), keys.gatewayRooms(inst), member(room, user), user);
    p.del(keys.gatewayConns(inst), keys.gatewayRooms(inst), keys.gatewayInfo(inst));
    const res = (await p.exec()) ?? [];
    const offset = Object.keys(conns).length;
    pairs.forEach(([room, user], i) => {
        if (res[offset + i]?.[1] === 1) this.onRoomEvent(room, user, "leave");
      });
  }

  async stop() {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.reasserting;
    if ((await this.r.cmd.wsgReapClaim(keys.gateways, this.inst, "force")) === 1) await this.reap(this.inst);
  }

  private connectArgs(c: ConnRef) {
    return [
      keys.gateways,
      keys.presence(c.user),
      keys.gatewayConns(this.inst),
      this.inst,
      c.conn,
      `${this.inst}|${this.o.gatewayId}|${this.o.region}|${c.since}`,
      c.user,
    ] as const;
  }

  async connect(c: ConnRef) {
    const res = await this.r.cmd.wsgConnect(...this.connectArgs(c));
    // Lease lapsed: re-asserting registers this connection too (it is already in the local registry).
    if (res === -1) await this.reassert("write fenced");
  }

  async disconnect(c: ConnRef) {
    await this.r.cmd.wsgDisconnect(keys.presence(c.user), keys.gatewayConns(this.inst), c.conn, this.inst);
  }

  async joinRoom(room: string, user: string) {
    const res = await this.r.cmd.wsgRoomJoin(
      keys.gateways,
      keys.roomMembers(room),
      keys.gatewayRooms(this.inst),
      this.inst,
      member(room, user),
      user,
    );
    if (res === -1) {
      await this.reassert("write fenced");
      return false;
    }
    return res === 1;
  }

  async leaveRoom(room: string, user: string) {
    return (await this.r.cmd.wsgRoomLeave(keys.roomMembers(room), keys.gatewayRooms(this.inst), member(room, user), user)) === 1;
  }

  /** Live instances and each user's entries in one pipelined read (replica when configured). */
  private async entries(users: readonly string[]) {
    const p = this.r.read.pipeline();
    p.zrangebyscore(keys.gateways, Date.now(), "+inf");
    for (const u of users) p.hgetall(keys.presence(u));
    const res = (await p.exec()) ?? [];
    for (const [err] of res) if (err) throw err;
    const live = new Set(res[0]![1] as string[]);
    return users.map((_, i) => {
      const out: ConnInfo[] = [];
      for (const [conn, v] of Object.entries(res[i + 1]![1] as Record<string, string>)) {
        const [inst, gateway, region, since] = v.split("|");
        if (live.has(inst!)) out.push({ conn, gateway: gateway!, region: region!, since: Number(since) });
      }
      return out;
    });
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
    const h = await this.r.read.hgetall(keys.roomMembers(room));
    return Object.keys(h)
      .filter((u) => Number(h[u]) > 0)
      .sort();
  }

  async gateways(): Promise<GatewayInfo[]> {
    const live = await this.r.read.zrangebyscore(keys.gateways, Date.now(), "+inf");
    const p = this.r.read.pipeline();
    for (const inst of live) p.hgetall(keys.gatewayInfo(inst));
    const res = (await p.exec()) ?? [];
    const byId = new Map<string, GatewayInfo>();
    for (const [err, h] of res) {
      const g = h as Record<string, string>;
      if (err || !g?.id) continue;
      const row: GatewayInfo = {
        id: g.id,
        region: g.region!,
        connections: Number(g.connections),
        users: Number(g.users),
        started: Number(g.started),
        last_seen: Number(g.last_seen),
      };
      // During a re-assert a gateway briefly has two incarnations: show the fresher one.
      const prev = byId.get(row.id);
      if (!prev || prev.last_seen < row.last_seen) byId.set(row.id, row);
    }
    return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
  }
}
