// Rooms: one publish to a room whose members are spread over both instances; the figure is the
// time from publish until the last member has the message. Members are `roomUsers` user ids
// holding `members` connections between them: with 10,000 distinct users the join events alone
// (every member told of every later joiner) would be ~50M frames before the first publish.
// wsgate and the floor are both up and publish alternately.
import { sleep, type Ctx } from "../lib/context.ts";
import { Fleet } from "../lib/fleet.ts";
import { cpuOf, foreignLoad, loadSnapshot } from "../lib/procs.ts";
import { Target, type Kind } from "../lib/target.ts";

const REPS = 5;
const ROOM = "bench-room";

interface Rep { members: number; got: number; firstMs: number; p50Ms: number; lastMs: number; cpuUs: number; otherCores: number }
interface Rig { target: Target; fleet: Fleet; joinMs: number; joinEvents: number; reps: Rep[] }

async function setUp(ctx: Ctx, kind: Kind, members: number, roomUsers: number): Promise<Rig> {
  const half = Math.floor(members / 2);
  const target = await Target.start(kind, 2, ctx.opts);
  let fleet: Fleet | null = null;
  try {
    fleet = await Fleet.spawn(2, `${kind}-rooms-`);
    const [ga, gb] = fleet.gens as [typeof fleet.gens[0], typeof fleet.gens[0]];
    const auth = target.auth ? { ...target.auth, rooms: ["*"] } : null;
    // Members m<i % roomUsers>: the first half on A (generator 0), the second half on B (generator 1).
    const a = await fleet.connect({ prefix: "m", from: 0, count: half, mod: roomUsers }, target.urls(0), auth, [ga]);
    const b = await fleet.connect({ prefix: "m", from: half, count: members - half, mod: roomUsers }, target.urls(1), auth, [gb]);
    const p = await fleet.connect({ prefix: "pub", from: 0, count: 1 }, target.urls(0), auth, [ga]);
    if (a.failed + b.failed + p.failed) throw new Error(`rooms: connections failed ${JSON.stringify({ ...a.failures, ...b.failures, ...p.failures })}`);
    const t0 = performance.now();
    const joins = await Promise.all([ga, gb].map((g) => g.request({ cmd: "join", prefix: "m", room: ROOM, concurrency: 50 })));
    const joinMs = performance.now() - t0;
    const joined = joins.reduce((n, j) => n + j.joined, 0);
    ctx.log(`  ${kind} joined ${joined}/${members} in ${(joinMs / 1000).toFixed(1)} s`);
    if (joined < members) throw new Error(`rooms: only ${joined} of ${members} joined`);
    // Wait out the join-event storm before timing anything.
    let prev = -1;
    for (let i = 0; i < 100; i++) {
      const m = await fleet.stats();
      if (m.roomEvents === prev) break;
      prev = m.roomEvents;
      await sleep(500);
    }
    return { target, fleet, joinMs, joinEvents: prev, reps: [] };
  } catch (e) {
    await fleet?.exit();
    await target.stop();
    throw e;
  }
}

async function publishOnce(rig: Rig, members: number): Promise<Rep> {
  rig.target.assertAlive();
  await rig.fleet.stats(true);
  const c0 = await cpuOf(rig.target.pids());
  const l0 = await loadSnapshot();
  await rig.fleet.gens[0]!.request({ cmd: "publish", user: "pub0", room: ROOM });
  const m = await rig.fleet.settle((x) => x.room.n, members, 1500, 15000);
  const cpu = (await cpuOf(rig.target.pids())) - c0;
  const { otherCores } = foreignLoad(l0, await loadSnapshot());
  return { members, got: m.room.n, firstMs: m.room.min, p50Ms: m.room.pct(0.5), lastMs: m.room.max, cpuUs: cpu, otherCores };
}

export async function rooms(ctx: Ctx): Promise<void> {
  const members = ctx.opts.conns ?? (ctx.opts.quick ? 1000 : 10000);
  const roomUsers = Math.min(ctx.opts.roomUsers, members);
  const rigs = new Map<Kind, Rig>();
  try {
    for (const kind of ctx.opts.kinds) {
      ctx.log(`rooms: starting ${kind}, ${members} members (${roomUsers} users) over 2 instances`);
      rigs.set(kind, await setUp(ctx, kind, members, roomUsers));
    }
    for (let r = 0; r <= REPS; r++) {
      for (const [kind, rig] of rigs) {
        const rep = await publishOnce(rig, members);
        ctx.log(`  ${kind} publish ${r}: ${rep.got}/${members}, first ${rep.firstMs.toFixed(2)} p50 ${rep.p50Ms.toFixed(2)} last ${rep.lastMs.toFixed(2)} ms, others ${rep.otherCores.toFixed(2)} cores`);
        if (r > 0) { rig.reps.push(rep); ctx.noise.push({ label: `rooms ${kind} ${r}`, otherCores: rep.otherCores, stealCores: 0 }); } // publish 0 warms the fan-out path
        await sleep(300);
      }
    }
  } finally {
    for (const rig of rigs.values()) {
      await rig.fleet.close();
      await rig.fleet.exit();
      await rig.target.stop();
    }
  }
  const res = Object.fromEntries([...rigs].map(([k, r]) => [k, { joinMs: r.joinMs, joinEvents: r.joinEvents, reps: r.reps }])) as Partial<Record<Kind, Omit<Rig, "target" | "fleet">>>;
  ctx.detail.rooms = { members, roomUsers, ...res };
  const med = (xs: number[]) => { const s = xs.slice().sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)]! : null; };
  const last = (k: Kind) => (res[k] ? med(res[k]!.reps.map((r) => r.lastMs)) : null);
  const p50 = (k: Kind) => (res[k] ? med(res[k]!.reps.map((r) => r.p50Ms)) : null);
  const lost = (k: Kind) => (res[k] ? res[k]!.reps.reduce((n, r) => n + r.members - r.got, 0) : null);
  const cpu = (k: Kind) => (res[k] ? med(res[k]!.reps.map((r) => r.cpuUs / r.members)) : null);
  const label = `${members.toLocaleString("en-US")} members`;
  ctx.rows.push({ scenario: "rooms", metric: `${label}: until last has it (median of ${REPS})`, unit: "ms", wsgate: last("wsgate"), floor: last("floor") });
  ctx.rows.push({ scenario: "rooms", metric: `${label}: p50 member`, unit: "ms", wsgate: p50("wsgate"), floor: p50("floor") });
  ctx.rows.push({ scenario: "rooms", metric: `${label}: CPU per delivery`, unit: "µs", wsgate: cpu("wsgate"), floor: cpu("floor") });
  ctx.rows.push({ scenario: "rooms", metric: `${label}: missed deliveries`, unit: "msgs", wsgate: lost("wsgate"), floor: lost("floor") });
  ctx.rows.push({ scenario: "rooms", metric: `${label}: join all (${roomUsers} users)`, unit: "ms", wsgate: res.wsgate?.joinMs ?? null, floor: res.floor?.joinMs ?? null });
}
