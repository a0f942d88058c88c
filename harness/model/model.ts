// What the protocol guarantees, checked against what every client saw. Pure: a log in, violations out.
//
// Faults make some guarantees conditional, exactly as the contract does:
// - a direct message acked before Redis lost its data may be gone (history is in Redis);
// - while Redis is stalled or restarting, or a gateway restarts, a live delivery may miss a connection
//   that was not fully (re)subscribed: such messages must still arrive by resume, not live;
// - a room message is live only: one published inside a fault window need not arrive.
import type { ModelConn, Reply } from "./client.ts";
import type { FaultRecord } from "./world.ts";

export interface JoinOp {
  conn: ModelConn;
  room: string;
  kind: "join" | "leave";
  sentT: number;
  reply: Reply | null | undefined;
}
export interface SendOp {
  conn: ModelConn;
  to: string[];
  m: string;
  sentT: number;
  reply: Reply | null | undefined;
}
export interface PublishOp {
  conn: ModelConn;
  room: string;
  m: string;
  sentT: number;
  reply: Reply | null | undefined;
}

export interface RoundLog {
  startT: number;
  conns: ModelConn[];
  sends: SendOp[];
  publishes: PublishOp[];
  joins: JoinOp[];
  faults: FaultRecord[];
  presenceReplies: { conn: ModelConn; frame: Record<string, any>; reply: Reply | null | undefined }[];
  garbage: { conn: ModelConn; t: number }[];
  failedConnects: { conn: ModelConn; t: number }[];
  crashes?: { gateway: number; code: number | null; output: string }[];
}

export interface Expect {
  users: string[];
  rooms: string[];
  patterns: Map<string, string[]>;
}

export interface SettleView {
  violations: string[];
  finalReplays: Map<string, Record<string, any>[]>;
  lastRedisLoss: number;
  quiescedT: number;
}

/** Delivery after an ack is asynchronous: a connection must stay this long after it to be owed the message. */
export const GRACE_MS = 1500;
/** After a fault ends, subscriptions and presence are re-asserted within about a heartbeat: allow this. */
export const SETTLE_MS = 2500;

const isAck = (r: Reply | null | undefined) => r?.f.type === "ack";

/** Rooms the connection is in by the model: for each room, its last join/leave frame was an acked join. */
export function lastMembership(log: RoundLog, c: ModelConn): string[] {
  const last = new Map<string, JoinOp>();
  for (const j of log.joins) if (j.conn === c) last.set(j.room, j);
  return [...last.values()].filter((j) => j.kind === "join" && isAck(j.reply)).map((j) => j.room);
}

/** When the connection stopped being able to receive: its close, or our request to close it. */
function endOf(c: ModelConn, end: number): number {
  return Math.min(c.closeRequestedT ?? Infinity, c.closed?.t ?? Infinity, end);
}

function roomMatches(patterns: string[], room: string): boolean {
  return patterns.some((p) => new RegExp(`^${p.split("*").map((s) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join(".*")}$`).test(room));
}

export function checkRound(log: RoundLog, ex: Expect, settle: SettleView, o: { seed: number }): string[] {
  const v = [...settle.violations, ...(log.crashes ?? []).map((c) => `gateway exits: gateway ${c.gateway} exited (${c.code}) with no fault: ${c.output.slice(-300)}`)];
  const faults = log.faults.filter((f) => f.end >= log.startT);
  const quiet = (from: number, to: number, gateways?: number[]) =>
    !faults.some((f) => f.start <= to && f.end + SETTLE_MS >= from && (f.gateway === undefined || !gateways || gateways.includes(f.gateway)));
  const END = Infinity;

  // Each message names its check, then the connection (key, user, gateway) or user/room it is about.
  const check = (name: string, fn: (out: string[]) => void) => {
    const out: string[] = [];
    fn(out);
    v.push(...out.map((x) => `${name}: ${x}`));
  };
  check("replies and closes", (out) => checkReplies(log, ex, quiet, out));
  check("per connection", (out) => checkPerConnection(log, out));
  check("direct messages", (out) => checkDirect(log, settle, quiet, END, out));
  check("room messages", (out) => checkRooms(log, quiet, END, out));
  check("room events", (out) => checkRoomEvents(log, settle.quiescedT, out));
  return v.map((x) => `[seed ${o.seed}] ${x}`);
}

function checkReplies(log: RoundLog, ex: Expect, quiet: (a: number, b: number, g?: number[]) => boolean, v: string[]) {
  const reqs: { what: string; conn: ModelConn; sentT: number; reply: Reply | null | undefined }[] = [
    ...log.joins.map((j) => ({ what: `${j.kind} ${j.room}`, ...j })),
    ...log.sends.map((s) => ({ what: `send ${s.m}`, ...s })),
    ...log.publishes.map((p) => ({ what: `publish ${p.m}`, ...p })),
  ];
  for (const r of reqs) {
    const c = r.conn;
    if (r.reply === undefined || r.reply?.f.type === "__timeout__")
      v.push(`${c.key} (${c.user}): ${r.what} got no reply within 15 s while the connection stayed open`);
    const f = r.reply?.f;
    if (!f || f.type === "ack") continue;
    if (f.type === "__timeout__") continue;
    if (f.type !== "error") v.push(`${c.key}: ${r.what} got ${JSON.stringify(f)}`);
    else if (f.code === "unavailable") {
      if (quiet(r.sentT - 500, r.reply!.t)) v.push(`${c.key}: ${r.what} refused unavailable with no fault near (${f.message})`);
    } else if (f.code === "forbidden") {
      const room = r.what.split(" ")[1]!;
      if (roomMatches(ex.patterns.get(c.user) ?? [], room)) v.push(`${c.key} (${c.user}): ${r.what} forbidden though the token allows it`);
    } else v.push(`${c.key} (${c.user}): ${r.what} got error ${f.code}: ${f.message}`);
  }
  for (const p of log.presenceReplies) {
    const f = p.reply?.f;
    if (p.reply === undefined || f?.type === "__timeout__") {
      v.push(`${p.conn.key}: presence got no reply within 15 s`);
      continue;
    }
    if (!f || f.type === "error") {
      if (f?.code === "unavailable" && !quiet(p.reply!.t - 3000, p.reply!.t)) continue;
      if (f && f.code !== "forbidden") v.push(`${p.conn.key}: presence ${JSON.stringify(p.frame)} got ${JSON.stringify(f)}`);
      continue;
    }
    if (p.frame.users) {
      const want = [...new Set(p.frame.users as string[])].sort();
      const got = Object.keys(f.users ?? {}).sort();
      if (JSON.stringify(want) !== JSON.stringify(got)) v.push(`${p.conn.key}: presence for ${JSON.stringify(want)} answered ${JSON.stringify(f.users)}`);
    } else if (!Array.isArray(f.users)) v.push(`${p.conn.key}: room presence answered ${JSON.stringify(f)}`);
  }
  for (const c of log.conns) {
    const code = c.closed?.code;
    // 4002 (heartbeat timeout) is the gateway doing its job when the client process is starved of CPU: with
    // 500 ms heartbeats on a loaded machine it happens; the connection's guarantees end at its close.
    if (code !== undefined && ![1000, 1001, 1005, 1006, 4002].includes(code)) v.push(`${c.key} (${c.user}) closed with ${code}`);
    for (const r of c.received)
      if (r.f.type === "error" && r.f.id === undefined && !["bad_request", "too_large"].includes(r.f.code))
        v.push(`${c.key}: unsolicited error ${JSON.stringify(r.f)}`);
  }
  // A refused or timed-out connect is allowed (503 while the store looks unreachable, a starved machine); a
  // gateway that went down without a fault is not (the world records those: see checkRound).
}

/** At most once per connection; in order per sending connection. */
function checkPerConnection(log: RoundLog, v: string[]) {
  for (const c of log.conns) {
    const seen = new Set<string>();
    const lastN = new Map<string, number>();
    for (const { f } of c.received) {
      if (f.type !== "message" || typeof f.data?.m !== "string") continue;
      const m = f.data.m as string;
      if (seen.has(m)) v.push(`${c.key} (${c.user}): message ${m} delivered twice`);
      seen.add(m);
      const key = `${f.data.s}|${f.room ?? "direct"}`;
      const prev = lastN.get(key) ?? 0;
      if (f.data.n <= prev) v.push(`${c.key} (${c.user}): from ${f.data.s} ${m} (n=${f.data.n}) after n=${prev}: out of order`);
      lastN.set(key, f.data.n);
    }
  }
}

function checkDirect(log: RoundLog, settle: SettleView, quiet: (a: number, b: number) => boolean, END: number, v: string[]) {
  const got = new Map<ModelConn, Set<string>>();
  const gotM = (c: ModelConn) => {
    let s = got.get(c);
    if (!s) got.set(c, (s = new Set(c.received.filter((r) => r.f.type === "message").map((r) => r.f.data?.m))));
    return s;
  };
  const byUser = new Map<string, ModelConn[]>();
  for (const c of log.conns) byUser.set(c.user, [...(byUser.get(c.user) ?? []), c]);
  for (const s of log.sends) {
    if (!isAck(s.reply)) continue;
    const ackT = s.reply!.t;
    for (const u of s.to) {
      const conns = byUser.get(u) ?? [];
      // Live: a connection welcomed before the send and open well after its ack, outside faults, gets it live.
      if (quiet(s.sentT, ackT + GRACE_MS))
        for (const c of conns)
          if (c.welcome && c.welcomeT < s.sentT && endOf(c, END) > ackT + GRACE_MS && !gotM(c).has(s.m))
            v.push(`${c.key} (${u}) on gateway ${c.gateway}: direct ${s.m} acked at ${Math.round(ackT - log.startT)} ms never arrived live`);
      // Eventually: live on some connection or by resume, unless Redis lost its data after the send.
      if (s.sentT <= settle.lastRedisLoss) continue;
      const anywhere = conns.some((c) => gotM(c).has(s.m)) || (settle.finalReplays.get(u) ?? []).some((f) => f.data?.m === s.m);
      if (!anywhere) v.push(`${u}: acked direct ${s.m} (from ${s.conn.key}, acked at ${Math.round(ackT - log.startT)} ms) neither delivered nor retained`);
    }
  }
  // Replayed history is in offset order and per-sender order.
  for (const [u, frames] of settle.finalReplays) {
    const last = new Map<string, number>();
    for (const f of frames) {
      const s = f.data?.s;
      if (typeof s !== "string") continue;
      if ((last.get(s) ?? 0) >= f.data.n) v.push(`${u}: history from ${s} out of order at ${f.data.m}`);
      last.set(s, f.data.n);
    }
  }
}

/** Membership intervals of a connection in a room: [join ack, next leave frame or end). */
function intervals(log: RoundLog, c: ModelConn, END: number): Map<string, [number, number][]> {
  const out = new Map<string, [number, number][]>();
  const ops = log.joins.filter((j) => j.conn === c);
  ops.forEach((j, i) => {
    if (j.kind !== "join" || !isAck(j.reply)) return;
    const next = ops.slice(i + 1).find((k) => k.room === j.room);
    const a = j.reply!.t;
    const b = Math.min(next ? next.sentT : END, endOf(c, END));
    if (b > a) out.set(j.room, [...(out.get(j.room) ?? []), [a, b]]);
  });
  return out;
}

function checkRooms(log: RoundLog, quiet: (a: number, b: number) => boolean, END: number, v: string[]) {
  for (const c of log.conns) {
    const got = new Set(c.received.filter((r) => r.f.type === "message" && r.f.room).map((r) => r.f.data?.m));
    for (const [room, spans] of intervals(log, c, END)) {
      for (const p of log.publishes) {
        if (p.room !== room || !isAck(p.reply)) continue;
        const ackT = p.reply!.t;
        if (!spans.some(([a, b]) => a < p.sentT && ackT + GRACE_MS < b)) continue;
        if (!quiet(p.sentT, ackT + GRACE_MS)) continue;
        if (!got.has(p.m))
          v.push(`${c.key} (${c.user}) on gateway ${c.gateway}: room ${room} message ${p.m} acked at ${Math.round(ackT - log.startT)} ms while joined never arrived`);
      }
    }
  }
}

/**
 * Each (room, user) as seen by one connection during one membership: join and leave events alternate, and for a
 * connection still in the room at quiescence the last event agrees with the model's final state.
 */
function checkRoomEvents(log: RoundLog, quiescedT: number, v: string[]) {
  const finalIn = new Set<string>();
  for (const c of log.conns) if (endOf(c, Infinity) > quiescedT) for (const r of lastMembership(log, c)) finalIn.add(`${r}|${c.user}`);
  for (const c of log.conns) {
    const joins = log.joins.filter((j) => j.conn === c && j.kind === "join");
    const last = new Map<string, { event: string; t: number }>();
    for (const { f, t } of c.received) {
      if (f.type !== "room") continue;
      const k = `${f.room}|${f.user}`;
      const prev = last.get(k);
      // A fresh membership (a join sent since the previous event) starts a fresh sequence. After Redis lost its
      // data, the record of which events were announced is gone too: a repeat across that loss is allowed.
      const rejoined = prev && joins.some((j) => j.room === f.room && j.sentT > prev.t && j.sentT < t);
      const lost = prev && log.faults.some((x) => x.kind === "redis-restart" && x.start < t && x.end + SETTLE_MS > prev.t);
      if (prev && !rejoined && !lost && prev.event === f.event)
        v.push(
          `${c.key} (${c.user}) on gateway ${c.gateway}: two ${f.event} events in a row for ${f.user} in ${f.room} ` +
            `(at ${Math.round(prev.t - log.startT)} and ${Math.round(t - log.startT)} ms)`,
        );
      last.set(k, { event: f.event, t });
    }
    if (endOf(c, Infinity) <= quiescedT) continue;
    const rooms = new Set(lastMembership(log, c));
    for (const [k, { event, t }] of last) {
      const room = k.slice(0, k.indexOf("|"));
      if (!rooms.has(room)) continue;
      if (joins.some((j) => j.room === room && j.sentT > t)) continue; // re-joined after the last event
      // Redis lost its data after the last event: the record that a leave is owed went with it.
      if (log.faults.some((x) => x.kind === "redis-restart" && x.start > t - SETTLE_MS)) continue;
      const want = finalIn.has(k) ? "join" : "leave";
      if (event !== want) v.push(`${c.key} (${c.user}): last ${room} event for ${k.slice(room.length + 1)} is ${event}, model says ${want}`);
    }
  }
}
