// Redis's own CPU per direct message with history on (issue 12): the plain-XADD floor (the floor relay's
// commands: XADD exact MAXLEN 1000, PEXPIRE, PUBLISH, pipelined, no Lua) against append.lua and candidates.
// One redis-server of our own (harness/redis.ts, killed by pid), one subscriber on every user channel, USERS
// users whose streams are first filled to their steady state (1,000 entries, trimming), then MSGS messages per
// measurement in pipelines of DEPTH messages (one script call per pipeline for the scripts, as the broker's
// per-turn pipeline does on one Redis). CPU = used_cpu_user + used_cpu_sys (INFO cpu) delta / messages; the
// split by command from INFO commandstats. Variants interleave within a round; medians of ROUNDS.
//   bun bench/history-micro.ts [--msgs N] [--rounds N] [--depths 4,16] [--only floor,append]
import Redis from "ioredis";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { startRedis } from "../harness/redis.ts";
import { scriptSource } from "../src/backends/redis/scripts.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const USERS = Number(arg("users", "100"));
const SIZE = 1000;
const TTL_MS = 300_000;
const MAX_BYTES = 1 << 20;
const MSGS = Number(arg("msgs", "24000"));
const ROUNDS = Number(arg("rounds", "3"));
const DEPTHS = arg("depths", "4,16").split(",").map(Number);
const DATA = JSON.stringify("x".repeat(100));

const here = (f: string) => readFileSync(new URL(`./history-micro/${f}`, import.meta.url), "utf8");
/** A file as committed at `rev`: past versions of append.lua are read from git, not kept as copies. */
function atRev(rev: string, path: string): string {
  const r = Bun.spawnSync(["git", "show", `${rev}:${path}`], { cwd: new URL("..", import.meta.url).pathname });
  if (r.exitCode !== 0) throw new Error(`git show ${rev}:${path} failed (a checkout with history is needed): ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

type Pipe = ReturnType<Redis["pipeline"]>;
interface Variant {
  name: string;
  what: string;
  /** Adds the commands for messages [from, from + n) to the pipeline. */
  add(p: Pipe, shas: Record<string, string>, from: number, n: number): void;
  lua?: string;
}

const user = (i: number) => `u${i % USERS}`;
const head = (i: number) => `{"type":"message","from":"s${i % USERS}","to":"${user(i)}","data":${DATA}`;
const tail = () => `,"ts":${Date.now()}}`;
const channel = (i: number) => `wsg:u:{${user(i)}}`;

/**
 * A script call for n messages: keys per message (keysOf). Layout "v1": the first append.lua's arguments
 * (gateway clock, no renew flag); "v2": the second's (1.5 TTL, head and tail apart, a renew flag per message, from
 * `renew`); "v3": append.lua's now (head \x01 tail in one argument).
 */
function scriptVariant(name: string, what: string, lua: string, keysOf: (tag: string, u: string) => string[], layout: "v1" | "v2" | "v3" = "v1", renew?: (u: string) => boolean): Variant {
  return {
    name,
    what,
    lua,
    add(p, shas, from, n) {
      const keys: string[] = [];
      const argv: (string | number)[] = layout === "v1" ? ["bench", SIZE, TTL_MS, MAX_BYTES, "PUBLISH", Date.now()] : ["bench", SIZE, TTL_MS * 1.5, MAX_BYTES, "PUBLISH"];
      for (let i = from; i < from + n; i++) {
        keys.push(...keysOf(name, user(i)));
        if (layout === "v3") argv.push(channel(i), `${head(i)}\x01${tail()}`, renew!(user(i)) ? "1" : "");
        else argv.push(channel(i), head(i), tail());
        if (layout === "v2") argv.push(renew!(user(i)) ? "1" : "");
      }
      p.evalsha(shas[name]!, keys.length, ...keys, ...argv);
    },
  };
}

const appendLua = scriptSource("wsgAppend");
/** What RedisHistory does: renew a user's keys once per 0.4 TTL. */
const renewed = new Map<string, number>();
const renewOnce = (u: string) => {
  const now = Date.now();
  if ((renewed.get(u) ?? -Infinity) > now) return false;
  renewed.set(u, now + TTL_MS * 0.4);
  return true;
};
const VARIANTS: Variant[] = [
  {
    name: "floor",
    what: "plain-XADD floor: XADD MAXLEN 1000 * + PEXPIRE + PUBLISH, pipelined, no Lua",
    add(p, _shas, from, n) {
      for (let i = from; i < from + n; i++) {
        const key = `floor:h:{${user(i)}}`;
        const out = head(i) + tail();
        p.xadd(key, "MAXLEN", String(SIZE), "*", "m", out);
        p.pexpire(key, TTL_MS);
        p.publish(channel(i), out);
      }
    },
  },
  scriptVariant("v1", "previous append.lua: meta hash HMGET+HSET, id <seq>-<bytes>", here("append-v1.lua"), (t, u) => [`${t}:h:{${u}}`, `${t}:hm:{${u}}`]),
  scriptVariant("append", "append.lua: stream is the counter (XADD *), one field (head \\x01 tail), publish; big messages counted; TTL renewed by the gateway once per 0.4 TTL", appendLua, (t, u) => [`${t}:hs:{${u}}`, `${t}:hb:{${u}}`], "v3", renewOnce),
  scriptVariant("append+pexpire", "append.lua told to renew (PEXPIRE) with every message", appendLua, (t, u) => [`${t}:hs:{${u}}`, `${t}:hb:{${u}}`], "v3", () => true),
  scriptVariant("second", "the second append.lua (22030a7): head and tail in two arguments and two fields", atRev("22030a7", "src/backends/redis/lua/append.lua"), (t, u) => [`${t}:hs:{${u}}`, `${t}:hb:{${u}}`], "v2", renewOnce),
  scriptVariant("tail-read", "stream is the counter, bytes and deadline read from the newest entry (XREVRANGE) instead of a counter", here("tail-read.lua"), (t, u) => [`${t}:h:{${u}}`]),
  scriptVariant("counter+pttl", "stream is the counter, INCRBY byte counter, PTTL per message and PEXPIRE only when low (Redis decides)", here("counter-pttl.lua"), (t, u) => [`${t}:h:{${u}}`, `${t}:hb:{${u}}`]),
  scriptVariant("stream-only", "stream is the counter and holds nothing else (no bytes), PEXPIRE every message", here("stream-only.lua"), (t, u) => [`${t}:h:{${u}}`]),
  scriptVariant("bare", "reference: XADD MAXLEN ~ * + PUBLISH in Lua, nothing else", here("bare.lua"), (t, u) => [`${t}:h:{${u}}`]),
];

// Ad-hoc candidates: --lua name=path.lua[,name=path.lua] (append.lua's keys and arguments).
for (const spec of arg("lua", "").split(",").filter(Boolean)) {
  const [name, path] = spec.split("=") as [string, string];
  VARIANTS.push(scriptVariant(name, `candidate ${path}`, readFileSync(path, "utf8"), (t, u) => [`${t}:hs:{${u}}`, `${t}:hb:{${u}}`], "v3", renewOnce));
}

function info(text: string, key: string): number {
  return Number(new RegExp(`^${key}:([\\d.]+)`, "m").exec(text)?.[1] ?? NaN);
}

function commandstats(text: string): Record<string, { calls: number; usec: number }> {
  const out: Record<string, { calls: number; usec: number }> = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) out[m[1]!] = { calls: Number(m[2]), usec: Number(m[3]) };
  return out;
}

async function send(r: Redis, v: Variant, shas: Record<string, string>, total: number, depth: number, offset: number) {
  for (let i = 0; i < total; i += depth) {
    const p = r.pipeline();
    v.add(p, shas, offset + i, Math.min(depth, total - i));
    const res = await p.exec();
    const err = res?.find(([e]) => e)?.[0];
    if (err) throw err;
  }
}

interface Run { usPerMsg: number; byCommand: Record<string, number> }

async function measure(r: Redis, v: Variant, shas: Record<string, string>, depth: number): Promise<Run> {
  await r.config("RESETSTAT");
  const cpu0 = await r.info("cpu");
  await send(r, v, shas, MSGS, depth, 0);
  const cpu1 = await r.info("cpu");
  const stats = commandstats(await r.info("commandstats"));
  const cpu = (t: string) => info(t, "used_cpu_user") + info(t, "used_cpu_sys");
  const byCommand: Record<string, number> = {};
  for (const [c, s] of Object.entries(stats)) if (c !== "info" && c !== "config") byCommand[c] = s.usec / MSGS;
  return { usPerMsg: ((cpu(cpu1) - cpu(cpu0)) * 1e6) / MSGS, byCommand };
}

const median = (xs: number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};

async function main() {
  const only = arg("only", "");
  const variants = only ? VARIANTS.filter((v) => only.split(",").includes(v.name) || arg("lua", "").includes(`${v.name}=`)) : VARIANTS;
  const server = await startRedis();
  const r = new Redis(server.url, { enableAutoPipelining: false });
  const subscriber = new Redis(server.url);
  let received = 0;
  subscriber.on("message", () => received++);
  const started = Date.now();
  try {
    await subscriber.subscribe(...Array.from({ length: USERS }, (_, i) => channel(i)));
    const shas: Record<string, string> = {};
    for (const v of variants) if (v.lua) shas[v.name] = (await r.script("LOAD", v.lua)) as string;
    // Steady state: every stream full (count trimming at work), as after a few seconds of the real bench.
    for (const v of variants) await send(r, v, shas, USERS * (SIZE + 50), 64, 0);
    const runs: Record<string, Record<number, Run[]>> = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const depth of DEPTHS) {
        for (const v of variants) {
          const run = await measure(r, v, shas, depth);
          ((runs[v.name] ??= {})[depth] ??= []).push(run);
          console.error(`round ${round + 1} depth ${depth} ${v.name}: ${run.usPerMsg.toFixed(2)} µs/msg`);
        }
      }
    }
    report(variants, runs, { received, seconds: (Date.now() - started) / 1000, memory: info(await r.info("memory"), "used_memory") });
  } finally {
    r.disconnect();
    subscriber.disconnect();
    await server.stop();
  }
}

function report(variants: Variant[], runs: Record<string, Record<number, Run[]>>, extra: Record<string, number>) {
  const summary: Record<string, Record<number, { usPerMsg: number; rounds: number[]; vsFloor: number | null; byCommand: Record<string, number> }>> = {};
  for (const v of variants) {
    for (const depth of DEPTHS) {
      const rs = runs[v.name]![depth]!;
      const cmds = new Set(rs.flatMap((x) => Object.keys(x.byCommand)));
      const floor = runs.floor?.[depth] ? median(runs.floor[depth]!.map((x) => x.usPerMsg)) : null;
      const us = median(rs.map((x) => x.usPerMsg));
      (summary[v.name] ??= {})[depth] = {
        usPerMsg: us,
        rounds: rs.map((x) => x.usPerMsg),
        vsFloor: floor ? us / floor : null,
        byCommand: Object.fromEntries([...cmds].map((c) => [c, median(rs.map((x) => x.byCommand[c] ?? 0))])),
      };
    }
  }
  console.log(`\nRedis CPU per message (µs, median of ${ROUNDS}; ${MSGS} messages per run, ${USERS} users, streams full)\n`);
  console.log(["variant", ...DEPTHS.flatMap((d) => [`depth ${d}`, `× floor`]), "by command (depth " + DEPTHS.at(-1) + ", µs/msg)"].join(" | "));
  for (const v of variants) {
    const cells = DEPTHS.flatMap((d) => [summary[v.name]![d]!.usPerMsg.toFixed(2), summary[v.name]![d]!.vsFloor?.toFixed(2) ?? "-"]);
    const split = Object.entries(summary[v.name]![DEPTHS.at(-1)!]!.byCommand).sort((a, b) => b[1] - a[1]).map(([c, us]) => `${c} ${us.toFixed(2)}`).join(", ");
    console.log([v.name, ...cells, split].join(" | "));
  }
  for (const v of variants) console.log(`  ${v.name}: ${v.what}`);
  mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
  const file = new URL(`./results/history-micro-${new Date().toISOString().replace(/[:.]/g, "-")}.json`, import.meta.url);
  writeFileSync(file, JSON.stringify({ users: USERS, msgs: MSGS, rounds: ROUNDS, depths: DEPTHS, variants: variants.map((v) => ({ name: v.name, what: v.what })), summary, ...extra }, null, 2));
  console.log(`\nwritten ${file.pathname}`);
}

await main();
process.exit(0);
