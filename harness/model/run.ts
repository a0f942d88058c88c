// The model-checked random run: a seeded generator drives users against real gateways while faults fire,
// records everything each client saw, and checks it against what the protocol guarantees (model.ts).
import { SignJWT } from "jose";
import { ModelConn, type Reply } from "./client.ts";
import { checkRound, type Expect, type JoinOp, type PublishOp, type RoundLog, type SendOp } from "./model.ts";
import { quiesce } from "./quiesce.ts";
import { Rng } from "./rng.ts";
import { World, type FaultKind } from "./world.ts";

export interface RunOptions {
  seed: number;
  /** How long the random operations and faults run, per round. */
  chaosMs: number;
  users: number;
  rooms: number;
  /** Fault kinds to draw from; empty = no faults. */
  faults: FaultKind[];
  /** Mean pause between faults. */
  faultEveryMs: number;
  secret: string;
  log?: (line: string) => void;
}

export interface RoundResult {
  seed: number;
  ops: number;
  faults: number;
  violations: string[];
  /** The harness's own trouble (a checker connection lost and reconnected): printed, not violations. */
  notes: string[];
  rssMax: number;
}

const REQUEST_TIMEOUT_MS = 15_000;
const MAX_CONNS_PER_USER = 3;

export async function mint(secret: string, sub: string, rooms: string[]): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub, rooms })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt(now)
    .setExpirationTime(now + 7200)
    .sign(new TextEncoder().encode(secret));
}

/** Users u0..u(n-2) plus `__proto__`, so prototype-named ids are always exercised. */
export function userNames(n: number): string[] {
  return [...Array.from({ length: n - 1 }, (_, i) => `u${i}`), "__proto__"];
}

/** Most users may use every room; every fifth only rooms whose name starts with room-1 (forbidden elsewhere). */
function patternsFor(i: number): string[] {
  return i % 5 === 4 ? ["room-1*"] : ["room-*"];
}

export class ModelRound {
  readonly rng: Rng;
  readonly users: string[];
  readonly rooms: string[];
  readonly tokens = new Map<string, string>();
  readonly patterns = new Map<string, string[]>();
  readonly log: RoundLog;
  private inflight = new Set<Promise<unknown>>();
  private t0 = performance.now();
  private chaosOver = false;

  constructor(
    readonly world: World,
    readonly o: RunOptions,
    /** Per user: the offset up to which earlier rounds already checked delivery. */
    readonly startOffsets: Map<string, string>,
  ) {
    this.rng = new Rng(o.seed);
    this.users = userNames(o.users);
    this.rooms = Array.from({ length: o.rooms }, (_, i) => `room-${i}`);
    this.log = { conns: [], sends: [], publishes: [], joins: [], faults: world.faults, presenceReplies: [], garbage: [], failedConnects: [], startT: this.t0, crashes: [] };
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
    return p;
  }

  private liveConns(): ModelConn[] {
    return this.log.conns.filter((c) => c.open);
  }

  private connsOf(user: string) {
    return this.log.conns.filter((c) => c.user === user && c.closed === null && c.closeRequestedT === null);
  }

  async prepare() {
    await Promise.all(
      this.users.map(async (u, i) => {
        this.patterns.set(u, patternsFor(i));
        this.tokens.set(u, await mint(this.o.secret, u, patternsFor(i)));
      }),
    );
  }

  tokenFor(user: string, rooms: string[]) {
    return mint(this.o.secret, user, rooms);
  }

  connect(user: string, gateway: number, since: string | undefined): ModelConn {
    let url = `${this.world.wsUrl(gateway)}?token=${this.tokens.get(user)}`;
    if (since !== undefined) url += `&since=${encodeURIComponent(since)}`;
    const c = new ModelConn(user, gateway, url, performance.now(), since);
    this.log.conns.push(c);
    this.track(
      c.welcomed(REQUEST_TIMEOUT_MS).then((ok) => {
        if (!ok) this.log.failedConnects.push({ conn: c, t: performance.now() });
      }),
    );
    return c;
  }

  // ---- operations ----

  private opConnect() {
    const candidates = this.users.filter((u) => this.connsOf(u).length < MAX_CONNS_PER_USER);
    if (candidates.length === 0) return;
    const user = this.rng.pick(candidates);
    const gws = this.world.gws.map((g, i) => (g ? i : -1)).filter((i) => i >= 0);
    if (gws.length === 0) return;
    const since = this.rng.chance(0.4) ? this.lastOffset(user) : undefined;
    this.connect(user, this.rng.pick(gws), since);
  }

  private lastOffset(user: string): string | undefined {
    let best: { t: number; o: string } | undefined;
    for (const c of this.log.conns) {
      if (c.user !== user) continue;
      for (let i = c.received.length - 1; i >= 0; i--) {
        const r = c.received[i]!;
        if (r.f.type === "message" && typeof r.f.offset === "string") {
          if (!best || r.t > best.t) best = { t: r.t, o: r.f.offset };
          break;
        }
      }
    }
    return best?.o ?? this.startOffsets.get(user);
  }

  private join(c: ModelConn, room: string) {
    const r = c.request({ type: "join", room }, REQUEST_TIMEOUT_MS);
    const op: JoinOp = { conn: c, room, kind: "join", sentT: r.sentT, reply: undefined };
    this.log.joins.push(op);
    this.track(r.reply.then((rep) => (op.reply = rep)));
  }

  private leave(c: ModelConn, room: string) {
    const r = c.request({ type: "leave", room }, REQUEST_TIMEOUT_MS);
    const op: JoinOp = { conn: c, room, kind: "leave", sentT: r.sentT, reply: undefined };
    this.log.joins.push(op);
    this.track(r.reply.then((rep) => (op.reply = rep)));
  }

  private publish(c: ModelConn, room: string) {
    const n = this.log.publishes.filter((p) => p.conn === c).length + 1;
    const m = `p.${this.o.seed}.${this.log.publishes.length}`;
    const r = c.request({ type: "publish", room, data: { m, s: c.key, n } }, REQUEST_TIMEOUT_MS);
    const op: PublishOp = { conn: c, room, m, sentT: r.sentT, reply: undefined };
    this.log.publishes.push(op);
    this.track(r.reply.then((rep) => (op.reply = rep)));
  }

  private send(c: ModelConn, to: string[]) {
    const n = this.log.sends.filter((s) => s.conn === c).length + 1;
    const m = `d.${this.o.seed}.${this.log.sends.length}`;
    const r = c.request({ type: "send", to: to.length === 1 && this.rng.chance(0.5) ? to[0] : to, data: { m, s: c.key, n } }, REQUEST_TIMEOUT_MS);
    const op: SendOp = { conn: c, to, m, sentT: r.sentT, reply: undefined };
    this.log.sends.push(op);
    this.track(r.reply.then((rep) => (op.reply = rep)));
  }

  private presence(c: ModelConn) {
    const byRoom = this.rng.chance(0.4);
    const frame = byRoom
      ? { type: "presence", room: this.rng.pick(this.rooms) }
      : { type: "presence", users: Array.from({ length: this.rng.range(1, 4) }, () => this.rng.pick(this.users)) };
    const r = c.request(frame, REQUEST_TIMEOUT_MS);
    const rec = { conn: c, frame, reply: undefined as Reply | null | undefined };
    this.log.presenceReplies.push(rec);
    this.track(r.reply.then((rep) => (rec.reply = rep)));
  }

  private garbage(c: ModelConn) {
    const kind = this.rng.int(4);
    const bytes = new Uint8Array(this.rng.range(1, 64)).map(() => this.rng.int(256));
    let data: string | Uint8Array;
    if (kind === 0) data = bytes;
    else if (kind === 1) data = Array.from(bytes, (b) => String.fromCharCode(32 + (b % 95))).join("");
    else if (kind === 2) data = JSON.stringify({ type: this.rng.pick(["join", "send", "publish", "presence", "nope"]), room: 7, to: [{}], users: "x" });
    else data = JSON.stringify({ type: "join", room: "room-0".repeat(30) });
    this.log.garbage.push({ conn: c, t: performance.now() });
    c.sendRaw(data);
  }

  /** One random operation; returns false when nothing could be done. */
  step() {
    const live = this.liveConns();
    const r = this.rng.next();
    if (live.length === 0 || r < 0.12) return this.opConnect();
    const c = this.rng.pick(live);
    const allowed = this.rooms.filter((x) => this.rng.chance(0.85) || x.startsWith("room-1"));
    const room = this.rng.pick(this.rng.chance(0.9) ? allowed : this.rooms);
    if (r < 0.18) return c.close();
    if (r < 0.36) return this.join(c, room);
    if (r < 0.46) return this.leave(c, room);
    if (r < 0.6) return this.publish(c, room);
    if (r < 0.8) {
      const to = Array.from({ length: this.rng.chance(0.8) ? 1 : this.rng.range(2, 4) }, () => this.rng.pick(this.users));
      return this.send(c, [...new Set(to)]);
    }
    if (r < 0.87) return this.presence(c);
    if (r < 0.9) {
      // leave then join at once: the join must win (rooms went deaf).
      this.leave(c, room);
      return this.join(c, room);
    }
    if (r < 0.93) {
      // join racing the connection's close: no member may stay behind.
      this.join(c, room);
      return c.close();
    }
    if (r < 0.96) {
      // Reconnect to the same gateway and re-join every room at once, as an SDK does.
      const rooms = this.roomsOf(c);
      c.close();
      const n = this.connect(c.user, c.gateway, this.lastOffset(c.user));
      this.track(n.welcomed(REQUEST_TIMEOUT_MS).then((ok) => ok && rooms.forEach((x) => this.join(n, x))));
      return;
    }
    if (r < 0.97) return this.garbage(c);
    return this.presence(c);
  }

  /** Rooms this connection asked to be in (last join/leave frame per room was a join). */
  roomsOf(c: ModelConn): string[] {
    const last = new Map<string, string>();
    for (const j of this.log.joins) if (j.conn === c) last.set(j.room, j.kind);
    return [...last].filter(([, k]) => k === "join").map(([r]) => r);
  }

  private async faultLoop(until: number) {
    const frng = this.rng.fork(7);
    let n = 0;
    while (!this.chaosOver && this.o.faults.length > 0 && n < 1000) {
      const wait = frng.range(this.o.faultEveryMs / 2, (this.o.faultEveryMs * 3) / 2);
      if (performance.now() + wait + 2500 > until) break;
      await Bun.sleep(wait);
      const kind = frng.pick(this.o.faults);
      const gw = frng.int(this.world.gws.length);
      this.o.log?.(`  fault ${kind}${kind === "kill9" || kind === "drain" || kind === "gateway-stall" ? ` gateway ${gw}` : ""} at ${Math.round(performance.now() - this.t0)} ms`);
      await this.world.fault(kind, gw, () => performance.now());
      n++;
    }
  }

  async run(): Promise<RoundResult> {
    await this.prepare();
    const faultsBefore = this.world.faults.length;
    const until = performance.now() + this.o.chaosMs;
    const faults = this.faultLoop(until);
    let ops = 0;
    while (performance.now() < until && ops < 1_000_000) {
      this.step();
      ops++;
      await Bun.sleep(this.rng.int(12));
    }
    this.chaosOver = true;
    await faults;
    const expect: Expect = { patterns: this.patterns, users: this.users, rooms: this.rooms };
    const settle = await quiesce(this, [...this.inflight]);
    this.log.crashes = this.world.crashes.splice(0);
    const violations = checkRound(this.log, expect, settle, this.o);
    return { seed: this.o.seed, ops, faults: this.world.faults.length - faultsBefore, violations, notes: settle.notes.map((n) => `[seed ${this.o.seed}] ${n}`), rssMax: settle.rssMax };
  }
}
