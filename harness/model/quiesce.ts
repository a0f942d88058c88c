// After the chaos: let everything settle, then compare what the cluster says (presence, Redis keys and
// subscriptions, gateway stats) with the model, fetch each user's retained history, close every client and
// check that nothing is left behind.
import Redis from "ioredis";
import { channels, keys } from "../../src/backends/redis/keys.ts";
import { ADMIN_TOKEN } from "../../test/helpers/gateway.ts";
import { Checkers, CHECKER } from "./checker.ts";
import type { ModelConn, Frame } from "./client.ts";
import { lastMembership } from "./model.ts";
import type { ModelRound } from "./run.ts";

export interface Settle {
  violations: string[];
  /** What happened to the harness's own checker connections: for the log, not violations. */
  notes: string[];
  /** Per user: the message frames of a resume from the round's start offset, taken after quiescence. */
  finalReplays: Map<string, Frame[]>;
  /** Start of the last Redis restart (its data lost): direct messages sent before it may be gone. */
  lastRedisLoss: number;
  rssMax: number;
  quiescedT: number;
}

/** Presence tombstones (fencing late writes) live 10 minutes in keys that then expire; anything else is a leak. */
const MAX_LEFTOVER_MS = 11 * 60_000;

async function waitAll(ps: Promise<unknown>[], ms: number) {
  await Promise.race([Promise.allSettled(ps), Bun.sleep(ms)]);
}

/** Polls until check() returns no differences, or returns the last differences after ms. */
async function converge(check: () => Promise<string[]>, ms: number): Promise<string[]> {
  const until = performance.now() + ms;
  let diffs = await check();
  while (diffs.length > 0 && performance.now() < until) {
    await Bun.sleep(200);
    diffs = await check();
  }
  return diffs;
}

function tagOf(key: string): string | null {
  const a = key.indexOf("{");
  const b = key.indexOf("}", a + 1);
  return a >= 0 && b > a ? key.slice(a + 1, b) : null;
}

/** Keys that legitimately outlive a user's connections: their history (resume). */
function historyKeys(user: string): Set<string> {
  const out = new Set<string>();
  for (const [name, f] of Object.entries(keys)) if (name.startsWith("history") && typeof f === "function") out.add((f as (u: string) => string)(user));
  return out;
}

export async function quiesce(round: ModelRound, inflight: Promise<unknown>[]): Promise<Settle> {
  const { world } = round;
  const v: string[] = [];
  await waitAll(inflight, 20_000);
  const settleMs = 2 * world.o.presenceTtlMs + 2 * world.o.heartbeatMs + 500;
  await Bun.sleep(settleMs);
  const quiescedT = performance.now();

  const checkers = new Checkers(world, await round.tokenFor(CHECKER, ["*"]));
  for (let i = 0; i < world.gws.length; i++)
    if (!(await checkers.get(i))) v.push(`quiescence: checker: could not connect to gateway ${i} (3 attempts)`);
  const redis = new Redis(world.redis.url, { lazyConnect: false, maxRetriesPerRequest: 3 });
  try {
    const open = () => round.log.conns.filter((c) => c.open);
    v.push(...(await converge(() => clusterDiffs(round, checkers, redis, open()), 10_000)).map((d) => `quiescence: ${d}`));
    const rss = world.rss();
    const rssMax = Math.max(0, ...rss.map((x) => x ?? 0));
    rss.forEach((b, i) => b !== null && b > 400 * 1024 * 1024 && v.push(`memory: gateway ${i} resident memory ${Math.round(b / 1048576)} MB > 400 MB`));

    const finalReplays = await fetchHistories(round, v);

    for (const c of round.log.conns) if (c.closed === null) c.close();
    await Promise.all(round.log.conns.map((c) => c.closedEvent(5000)));
    v.push(...(await converge(() => clusterDiffs(round, checkers, redis, []), 10_000)).map((d) => `after closing every client: ${d}`));

    const losses = world.faults.filter((f) => f.kind === "redis-restart");
    return { violations: v, notes: checkers.notes, finalReplays, lastRedisLoss: losses.length ? losses[losses.length - 1]!.start : -Infinity, rssMax, quiescedT };
  } finally {
    checkers.closeAll();
    redis.disconnect();
  }
}

/** Differences between the cluster's view and the model, for the given set of open connections. */
async function clusterDiffs(round: ModelRound, checkers: Checkers, redis: Redis, open: ModelConn[]): Promise<string[]> {
  const connsOf = new Map<string, ModelConn[]>();
  for (const c of open) connsOf.set(c.user, [...(connsOf.get(c.user) ?? []), c]);
  const members = new Map<string, ModelConn[]>();
  for (const c of open) for (const room of lastMembership(round.log, c)) members.set(room, [...(members.get(room) ?? []), c]);
  const want: Want = { open, connsOf, members };
  const diffs: string[] = [];
  for (let i = 0; i < round.world.gws.length; i++) diffs.push(...(await presenceDiffs(round, checkers, i, want)));
  diffs.push(...(await subscriptionDiffs(round, redis, want)));
  diffs.push(...(await keyDiffs(round, redis, want)));
  diffs.push(...(await statsDiffs(round, checkers, want)));
  return diffs;
}

interface Want {
  open: ModelConn[];
  /** Open connections per user. */
  connsOf: Map<string, ModelConn[]>;
  /** Open connections per room they are in by the model. */
  members: Map<string, ModelConn[]>;
}

/** User presence (online, connections) and room presence, as gateway i answers them, against the model. */
async function presenceDiffs({ users, rooms }: ModelRound, checkers: Checkers, i: number, w: Want): Promise<string[]> {
  const diffs: string[] = [];
  const rep = await checkers.ask(i, { type: "presence", users });
  if (typeof rep === "string" || rep.f.type !== "presence") {
    diffs.push(`user presence: gateway ${i}: no presence reply (${typeof rep === "string" ? rep : JSON.stringify(rep.f)})`);
  } else {
    for (const u of users) {
      const want = w.connsOf.get(u)?.length ?? 0;
      const got = rep.f.users?.[u];
      if (!got || !Object.prototype.hasOwnProperty.call(rep.f.users, u)) diffs.push(`user presence: gateway ${i}: reply lacks user ${u}`);
      else if (got.connections !== want || got.online !== want > 0)
        diffs.push(`user presence: gateway ${i}: user ${u} has ${got.connections} connections (online ${got.online}), model ${want}`);
    }
  }
  for (const room of rooms) {
    const r = await checkers.ask(i, { type: "presence", room });
    const want = [...new Set((w.members.get(room) ?? []).map((c) => c.user))].sort();
    const got = typeof r === "string" ? r : Array.isArray(r.f.users) ? [...r.f.users].sort() : r.f;
    if (JSON.stringify(got) !== JSON.stringify(want)) diffs.push(`room presence: gateway ${i}: room ${room} ${JSON.stringify(got)}, model ${JSON.stringify(want)}`);
  }
  return diffs;
}

/** `PUBSUB NUMSUB`: each user/room channel has exactly one subscriber per gateway holding it. */
async function subscriptionDiffs({ users, rooms }: ModelRound, redis: Redis, w: Want): Promise<string[]> {
  const chans: [string, number, string][] = [];
  for (const u of users) chans.push([channels.user(u), new Set((w.connsOf.get(u) ?? []).map((c) => c.gateway)).size, `user ${u}`]);
  for (const room of rooms) chans.push([channels.room(room), new Set((w.members.get(room) ?? []).map((c) => c.gateway)).size, `room ${room}`]);
  const numsub = (await redis.call("PUBSUB", "NUMSUB", ...chans.map((c) => c[0]))) as (string | number)[];
  const diffs: string[] = [];
  chans.forEach(([, want, what], i) => {
    const got = Number(numsub[2 * i + 1]);
    if (got !== want) diffs.push(`subscriptions: ${what} channel has ${got} subscribers, model ${want} gateways`);
  });
  return diffs;
}

/**
 * Keys: nothing but history for a user with no live connection, nothing for a room with no member, except
 * what expires by itself soon: presence keeps removal tombstones (fencing late writes) in keys that expire.
 */
async function keyDiffs({ users, rooms }: ModelRound, redis: Redis, w: Want): Promise<string[]> {
  const userSet = new Set(users);
  const roomSet = new Set(rooms);
  const suspects: [string, string][] = [];
  let cursor = "0";
  for (let i = 0; i < 10_000; i++) {
    const [next, batch] = (await redis.scan(cursor, "COUNT", 1000)) as [string, string[]];
    for (const k of batch) {
      const tag = tagOf(k);
      if (tag === null) continue;
      if (userSet.has(tag) && !w.connsOf.has(tag) && !historyKeys(tag).has(k)) suspects.push([k, `offline user ${tag}`]);
      if (roomSet.has(tag) && !w.members.has(tag)) suspects.push([k, `empty room ${tag}`]);
    }
    cursor = next;
    if (cursor === "0") break;
  }
  const diffs: string[] = [];
  for (const [k, what] of suspects) {
    const ttl = await redis.pttl(k);
    if (ttl < 0 || ttl > MAX_LEFTOVER_MS) diffs.push(`redis keys: key ${k} for ${what} (expiry ${ttl} ms)`);
  }
  return diffs;
}

/** Each gateway's /stats holds exactly the model's connections and rooms (plus its checker while that is open). */
async function statsDiffs({ world, log }: ModelRound, checkers: Checkers, w: Want): Promise<string[]> {
  const diffs: string[] = [];
  for (let i = 0; i < world.gws.length; i++) {
    try {
      const r = await fetch(`${world.httpUrl(i)}/stats`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const s = (await r.json()) as { connections: number; rooms: number };
      const mine = w.open.filter((c) => c.gateway === i);
      const want = mine.length + (checkers.isOpen(i) ? 1 : 0);
      if (s.connections !== want) diffs.push(`/stats: gateway ${i}: connections ${s.connections}, model ${want} (checker ${checkers.isOpen(i) ? "open" : "closed"})`);
      const wantRooms = new Set(mine.flatMap((c) => lastMembership(log, c))).size;
      if (s.rooms !== wantRooms) diffs.push(`/stats: gateway ${i}: rooms ${s.rooms}, model ${wantRooms}`);
    } catch (err) {
      diffs.push(`/stats: gateway ${i}: request failed: ${(err as Error).message}`);
    }
  }
  return diffs;
}

/** Resumes every user from the round's start offset and returns what was retained. */
async function fetchHistories(round: ModelRound, v: string[]): Promise<Map<string, Frame[]>> {
  const out = new Map<string, Frame[]>();
  const recipients = new Set(round.log.sends.filter((s) => s.reply?.f.type === "ack").flatMap((s) => s.to));
  for (const u of recipients) {
    const since = round.startOffsets.get(u) ?? "none:0";
    const c = round.connect(u, round.rng.int(round.world.gws.length), since);
    if (!(await c.welcomed(10_000))) {
      v.push(`final resume: ${u}: could not connect`);
      continue;
    }
    const fence = await c.request({ type: "ping" }, 10_000).reply;
    if (!fence) v.push(`final resume: ${u}: no pong`);
    const frames = c.received.filter((r) => r.f.type === "message").map((r) => r.f);
    if (frames.length !== c.welcome!.replayed) v.push(`final resume: ${u}: welcome.replayed ${c.welcome!.replayed} but ${frames.length} messages`);
    out.set(u, frames);
    const last = frames[frames.length - 1]?.offset;
    if (typeof last === "string") round.startOffsets.set(u, last);
    c.close();
  }
  return out;
}
