// `bun run bench`: starts its own redis-server, gateways (or floor relays) and load-generator
// processes per scenario, prints a table (wsgate, floor, ratio, target) and writes
// bench/results/<timestamp>.json. See docs/PERFORMANCE.md for every option.
import { parseArgs } from "node:util";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import type { Ctx, RunOptions } from "./lib/context.ts";
import { prepareCompare } from "./lib/compare.ts";
import { foreignLoad, loadSnapshot, ROOT } from "./lib/procs.ts";
import { table, ratio, type Row } from "./lib/report.ts";
import type { Kind } from "./lib/target.ts";
import { idle } from "./scenarios/idle.ts";
import { latency } from "./scenarios/latency.ts";
import { throughput } from "./scenarios/throughput.ts";
import { rooms } from "./scenarios/rooms.ts";
import { history } from "./scenarios/history.ts";
import { scaleout } from "./scenarios/scaleout.ts";
import { redisCluster } from "./scenarios/redis-cluster.ts";
import { regions, DEFAULT_RTT } from "./scenarios/regions.ts";

const SCENARIOS: Record<string, (ctx: Ctx) => Promise<void>> = { idle, latency, throughput, rooms, history, scaleout, regions, "redis-cluster": redisCluster };
const ALIASES: Record<string, string> = { presence: "idle", cpu: "latency", capacity: "idle" };
const DEFAULT = ["idle", "latency", "throughput", "rooms", "history"];
// Scenarios whose floor is "the same load on another system": the history floors are relays by design.
const COMPARABLE = ["idle", "latency", "throughput", "rooms"];

const HELP = `usage: bun run bench [options]
  --scenario LIST   comma list of: ${Object.keys(SCENARIOS).join(", ")} (aliases: presence=idle, cpu=latency);
                    "all" adds the opt-in scaleout and regions. Default: ${DEFAULT.join(",")}
  --redis cluster   run the redis-cluster scenario (one Redis vs a 6-node Redis Cluster, per-primary CPU and
                    spread) instead of the default list
  --target T        wsgate | floor | both (default both)
  --conns N         main size of the chosen scenario: idle top step (19900), latency/throughput/history
                    pairs (1000), rooms members (10000), scaleout total connections (100000)
  --rates LIST      latency rates in msgs/s (default 1000,10000)
  --duration S      seconds per measured step (default 8)
  --window S        presence measuring window in seconds (default 20)
  --room-users N    distinct users among the room members (default 100)
  --gateways N      instances for scaleout (default 5)
  --regions LIST    regions scenario: regions, the first holds the Redis primary (default ord,ams,sin)
  --rtt LIST        regions scenario: round trip per pair in ms (default ${DEFAULT_RTT})
  --host H          listen address of gateways/relays (default 0.0.0.0; clients spread over 127.0.0.2…)
  --spread N        loopback addresses clients spread over (default 8)
  --quick           small sizes, for checking the harness itself
  --cpu-prof        run wsgate with --cpu-prof(-md); profiles land in bench/results/prof-<timestamp>/
  --env K=V,...     extra environment for every wsgate gateway, e.g. --env WSGATE_HISTORY_SIZE=0
  --compare REV     the floor column becomes wsgate at git revision REV (a detached worktree in the temp dir),
                    measured alternately with this checkout: before/after of a change in one run. OLD..NEW
                    runs NEW (also a worktree) in the wsgate column instead of this checkout. Scenarios:
                    ${COMPARABLE.join(", ")}; --env applies to both
  --budget S        skip scenarios that would start after S seconds (default 570)
  --out FILE        result file (default bench/results/<timestamp>.json)`;

function parse(): { opts: RunOptions; scenarios: string[]; compareRev: string | undefined; budget: number; out: string; profDir: string | null } {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      scenario: { type: "string" }, target: { type: "string" }, conns: { type: "string" }, rates: { type: "string" },
      duration: { type: "string" }, window: { type: "string" }, "room-users": { type: "string" }, gateways: { type: "string" },
      regions: { type: "string" }, rtt: { type: "string" },
      host: { type: "string" }, spread: { type: "string" }, quick: { type: "boolean" }, "cpu-prof": { type: "boolean" },
      budget: { type: "string" }, out: { type: "string" }, redis: { type: "string" }, env: { type: "string" }, compare: { type: "string" }, help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) { console.log(HELP); process.exit(0); }
  const num = (v: string | undefined, d: number, name: string) => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) { console.error(`--${name}: not a positive number: ${v}\n\n${HELP}`); process.exit(2); }
    return n;
  };
  if (values.redis !== undefined && values.redis !== "cluster") { console.error(`--redis: only "cluster" is a scenario (got ${values.redis})\n\n${HELP}`); process.exit(2); }
  let names = (values.scenario ?? (values.redis ? "redis-cluster" : DEFAULT.join(","))).split(",").map((s) => s.trim()).filter(Boolean);
  if (names.includes("all")) names = [...DEFAULT, "scaleout", "regions"];
  names = [...new Set(names.map((n) => ALIASES[n] ?? n))];
  for (const n of names) if (!SCENARIOS[n]) { console.error(`unknown scenario ${n}\n\n${HELP}`); process.exit(2); }
  if (values.compare !== undefined) {
    if (values.scenario === undefined) names = COMPARABLE;
    const bad = names.filter((n) => !COMPARABLE.includes(n));
    if (bad.length) { console.error(`--compare: ${bad.join(", ")} cannot compare two wsgates (only ${COMPARABLE.join(", ")})`); process.exit(2); }
  }
  const t = values.target ?? "both";
  const kinds: Kind[] = t === "both" ? ["wsgate", "floor"] : t === "wsgate" || t === "floor" ? [t] : (console.error(`--target: ${t}?`), process.exit(2));
  const quick = !!values.quick;
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const profDir = values["cpu-prof"] ? `${ROOT}bench/results/prof-${stamp}` : null;
  const opts: RunOptions = {
    kinds,
    conns: values.conns ? num(values.conns, 0, "conns") : null,
    rates: (values.rates ?? (quick ? "1000,2000" : "1000,10000")).split(",").map((r) => num(r, 0, "rates")),
    durationS: num(values.duration, quick ? 3 : 8, "duration"),
    windowS: num(values.window, quick ? 6 : 20, "window"),
    roomUsers: num(values["room-users"], 100, "room-users"),
    gateways: num(values.gateways, 5, "gateways"),
    regions: values.regions,
    rtt: values.rtt,
    host: values.host ?? "0.0.0.0",
    spread: num(values.spread, 8, "spread"),
    quick,
    cpuProf: profDir,
    gatewayEnv: Object.fromEntries((values.env ?? "").split(",").filter(Boolean).map((kv) => {
      const i = kv.indexOf("=");
      if (i <= 0) { console.error(`--env: expected KEY=VALUE, got ${kv}`); process.exit(2); }
      return [kv.slice(0, i), kv.slice(i + 1)];
    })),
    reap: new Set(),
    compare: null,
    subject: null,
  };
  return { opts, scenarios: names, compareRev: values.compare, budget: num(values.budget, 570, "budget"), out: values.out ?? `${ROOT}bench/results/${stamp}.json`, profDir };
}

async function machine() {
  const cpu = os.cpus();
  const sh = async (cmd: string[]) => { try { return (await new Response(Bun.spawn(cmd, { stdout: "pipe", stderr: "ignore" }).stdout).text()).trim(); } catch { return "?"; } };
  return {
    cpu: cpu[0]?.model ?? "?",
    cores: cpu.length,
    memoryGB: +(os.totalmem() / 2 ** 30).toFixed(1),
    kernel: os.release(),
    bun: Bun.version,
    redis: (await sh(["redis-server", "--version"])).replace(/^Redis server /, ""),
    openFiles: await sh(["sh", "-c", "ulimit -n"]),
    // Which wsgate was measured: the commit, and whether src/ had uncommitted changes.
    commit: await sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
    srcDirty: (await sh(["git", "-C", ROOT, "status", "--porcelain", "src"])).length > 0,
  };
}

async function main() {
  const { opts, scenarios, compareRev, budget, out, profDir } = parse();
  if (compareRev !== undefined) {
    const [before, after] = compareRev.split("..");
    opts.compare = await prepareCompare(before!);
    if (after) opts.subject = await prepareCompare(after);
  }
  if (profDir) mkdirSync(profDir, { recursive: true });
  const t0 = performance.now();
  const rows: Row[] = [];
  const detail: Record<string, unknown> = {};
  const ctx: Ctx = {
    opts, rows, detail,
    log: (m) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${m}`),
    elapsed: () => (performance.now() - t0) / 1000,
    noise: [],
  };
  const reapAll = () => { for (const k of opts.reap) k(); };
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => { reapAll(); process.exit(130); });

  const info = await machine();
  ctx.log(`machine: ${info.cpu}, ${info.cores} cores, ${info.memoryGB} GB, Linux ${info.kernel}, Bun ${info.bun}, Redis ${info.redis}`);
  if (opts.compare) ctx.log(`--compare: the floor column is wsgate at ${opts.compare.rev} (${opts.compare.dir})${opts.subject ? `, the wsgate column wsgate at ${opts.subject.rev}` : ""}`);
  {
    const a = await loadSnapshot();
    await Bun.sleep(1000);
    const { otherCores } = foreignLoad(a, await loadSnapshot());
    ctx.log(`load from other processes before starting: ${otherCores.toFixed(2)} cores${otherCores > 0.2 ? " (shared machine is busy: latency figures will be noisy)" : ""}`);
  }
  const done: string[] = [], skipped: string[] = [], failed: Record<string, string> = {};
  for (const name of scenarios) {
    if (ctx.elapsed() > budget) { ctx.log(`skipping ${name}: past the ${budget} s budget`); skipped.push(name); continue; }
    const s0 = ctx.elapsed();
    try {
      await SCENARIOS[name]!(ctx);
      done.push(name);
    } catch (e: any) {
      failed[name] = String(e?.stack ?? e).slice(0, 4000);
      ctx.log(`scenario ${name} failed: ${failed[name]}`);
      reapAll();
    }
    ctx.log(`${name} took ${(ctx.elapsed() - s0).toFixed(0)} s`);
  }
  const other = ctx.noise.map((n) => n.otherCores);
  const noise = other.length ? { steps: other.length, meanOtherCores: other.reduce((a, b) => a + b, 0) / other.length, maxOtherCores: Math.max(...other) } : null;
  const result = {
    noise: noise && { ...noise, perStep: ctx.noise },
    startedAt: new Date(Date.now() - (performance.now() - t0)).toISOString(),
    durationS: +ctx.elapsed().toFixed(1),
    machine: info,
    options: { ...opts, reap: undefined },
    scenarios: { done, skipped, failed },
    rows: rows.map((r) => ({ ...r, ratio: ratio(r) })),
    detail,
  };
  mkdirSync(`${ROOT}bench/results`, { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2));
  console.log(`\nwsgate ${info.commit}${info.srcDirty ? " (+ uncommitted src changes)" : ""} benchmark: ${info.cpu}, ${info.cores} cores, Bun ${info.bun}, Redis ${info.redis.split(" ")[0]}; ${result.durationS} s\n`);
  if (opts.compare) console.log(`"wsgate" = ${opts.subject?.rev ?? info.commit}, "floor" = wsgate at ${opts.compare.rev} (--compare)\n`);
  console.log(table(rows));
  if (noise) console.log(`\nbackground load from other processes during the ${noise.steps} measured steps: mean ${noise.meanOtherCores.toFixed(2)}, max ${noise.maxOtherCores.toFixed(2)} of ${info.cores} cores`);
  if (skipped.length) console.log(`\nskipped (time budget): ${skipped.join(", ")}`);
  if (Object.keys(failed).length) console.log(`\nFAILED: ${Object.keys(failed).join(", ")} (details in the result file)`);
  if (profDir) console.log(`\nCPU profiles: ${profDir}`);
  console.log(`\nresults: ${out}`);
  process.exit(Object.keys(failed).length ? 1 : 0);
}

await main();
