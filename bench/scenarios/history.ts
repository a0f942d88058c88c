// The price of history: the same cross-gateway load against wsgate with the default history
// ("on") and with WSGATE_HISTORY_SIZE=0 ("off"), beside two floors: the PUBLISH-only relay (what
// "off" is compared with) and the plain-XADD relay (RELAY_STORE=1: XADD with an exact MAXLEN 1000,
// PEXPIRE, PUBLISH, auto-pipelined, no Lua; what "on" is compared with). All four are up at once and
// measured in turn, at 1k msgs/s and at the top rate, ROUNDS times; figures are medians of the rounds.
// Redis's own time is split by command (INFO commandstats usec deltas), per delivered message.
import type { Ctx } from "../lib/context.ts";
import { PairRig, short, type Step } from "../lib/pairs.ts";
import type { Kind } from "../lib/target.ts";

const ROUNDS = 3;

interface Variant { name: string; kind: Kind; env: Record<string, string>; floor: string }

function median(xs: number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

export async function history(ctx: Ctx): Promise<void> {
  const pairs = ctx.opts.conns ?? (ctx.opts.quick ? 200 : 1000);
  // 5k/s, not the latency scenario's 10k: on the shared 2-core machine the floors themselves fall behind at 10k.
  const top = ctx.opts.quick ? 2000 : 5000;
  const rates = [...new Set([1000, top])];
  const D = ctx.opts.durationS;
  const variants: Variant[] = [];
  if (ctx.opts.kinds.includes("wsgate")) {
    // The default, explicit so --env cannot turn it off.
    variants.push({ name: "on", kind: "wsgate", env: { WSGATE_HISTORY_SIZE: "1000" }, floor: "xadd floor" });
    variants.push({ name: "off", kind: "wsgate", env: { WSGATE_HISTORY_SIZE: "0" }, floor: "floor" });
    // BENCH_HISTORY_BATCH=0,2: "on" again with those WSGATE_REDIS_BATCH_MS (default 1), in the same run.
    for (const b of (process.env.BENCH_HISTORY_BATCH ?? "").split(",").filter(Boolean))
      variants.push({ name: `on batch ${b} ms`, kind: "wsgate", env: { WSGATE_HISTORY_SIZE: "1000", WSGATE_REDIS_BATCH_MS: b }, floor: "xadd floor" });
  }
  if (ctx.opts.kinds.includes("floor")) {
    variants.push({ name: "floor", kind: "floor", env: {}, floor: "" });
    variants.push({ name: "xadd floor", kind: "floor", env: { RELAY_STORE: "1", RELAY_HISTORY_SIZE: "1000" }, floor: "" });
  }
  const rigs = new Map<string, PairRig>();
  const steps: Record<string, Record<number, Step[]>> = {};
  const memory: Record<string, number> = {};
  try {
    for (const v of variants) {
      ctx.log(`history: starting ${v.name}, cross-gateway ${rates.join(" and ")}/s over ${pairs} pairs`);
      const rig = await PairRig.start(v.kind, ctx.opts, pairs, v.env);
      rigs.set(v.name, rig);
      await rig.step("cross", 1000, 2);
      steps[v.name] = Object.fromEntries(rates.map((r) => [r, []]));
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const rate of rates) {
        for (const [name, rig] of rigs) {
          const s = await rig.step("cross", rate, D);
          ctx.log(`  ${name} ${short(s)}`);
          ctx.noise.push({ label: `history ${name} ${rate}`, otherCores: s.otherCores, stealCores: s.stealCores });
          steps[name]![rate]!.push(s);
        }
      }
    }
    for (const [name, rig] of rigs) memory[name] = await rig.target.redisMemory();
  } finally {
    for (const rig of rigs.values()) await rig.stop();
  }
  const med = (name: string, rate: number, f: (s: Step) => number) => (steps[name] ? median(steps[name]![rate]!.map(f)) : null);
  const byCommand = (name: string, rate: number) => {
    const out: Record<string, number | null> = {};
    const cmds = new Set((steps[name]?.[rate] ?? []).flatMap((s) => Object.keys(s.redis)));
    for (const c of cmds) out[c] = med(name, rate, (s) => (s.redis[c] ? s.redis[c]!.perMsg * s.redis[c]!.usecPerCall : 0));
    return out;
  };
  ctx.detail.history = {
    pairs, rates, durationS: D, rounds: ROUNDS, steps, redisMemory: memory,
    redisUsecPerMsgByCommand: Object.fromEntries(variants.map((v) => [v.name, Object.fromEntries(rates.map((r) => [r, byCommand(v.name, r)]))])),
  };
  for (const v of variants.filter((x) => x.kind === "wsgate")) {
    const fl = steps[v.floor] ? v.floor : null;
    const fmed = (rate: number, f: (s: Step) => number) => (fl ? med(fl, rate, f) : null);
    const vs = fl ? ` (floor: ${fl})` : "";
    for (const rate of rates) {
      const label = `history ${v.name} @ ${rate.toLocaleString("en-US")}/s cross`;
      const redisG = med(v.name, rate, (s) => s.cpuUsPerMsgBy.redis ?? NaN), redisF = fmed(rate, (s) => s.cpuUsPerMsgBy.redis ?? NaN);
      const p99G = med(v.name, rate, (s) => s.p99), p99F = fmed(rate, (s) => s.p99);
      const judged = v.name === "on" && redisG !== null && redisF !== null;
      ctx.rows.push({ scenario: "history", metric: `${label} CPU${vs}`, unit: "µs/msg", wsgate: med(v.name, rate, (s) => s.cpuUsPerMsg), floor: fmed(rate, (s) => s.cpuUsPerMsg) });
      ctx.rows.push({
        scenario: "history", metric: `${label} Redis CPU${vs}`, unit: "µs/msg", wsgate: redisG, floor: redisF,
        ...(judged && rate === top ? { target: "≤ 1.3× xadd floor", ok: redisG! <= 1.3 * redisF! } : {}),
      });
      ctx.rows.push({ scenario: "history", metric: `${label} p50${vs}`, unit: "ms", wsgate: med(v.name, rate, (s) => s.p50), floor: fmed(rate, (s) => s.p50) });
      ctx.rows.push({
        scenario: "history", metric: `${label} p99${vs}`, unit: "ms", wsgate: p99G, floor: p99F,
        ...(v.name === "on" && rate === 1000 && p99G !== null && p99F !== null ? { target: "≤ 1.5× xadd floor", ok: p99G <= 1.5 * p99F } : {}),
      });
    }
    if (v.name === "on") {
      // Redis's own time per command, per delivered message (a script's time includes the commands it calls).
      const g = byCommand(v.name, top), f = fl ? byCommand(fl, top) : {};
      for (const c of [...new Set([...Object.keys(g), ...Object.keys(f)])].sort()) {
        if ((g[c] ?? 0)! < 0.01 && (f[c] ?? 0)! < 0.01) continue;
        ctx.rows.push({ scenario: "history", metric: `on @ ${top.toLocaleString("en-US")}/s: Redis ${c}${vs}`, unit: "µs/msg", wsgate: g[c] ?? 0, floor: fl ? (f[c] ?? 0) : null });
      }
    }
    ctx.rows.push({ scenario: "history", metric: `history ${v.name} Redis used_memory${vs}`, unit: "MB", wsgate: memory[v.name]! / 2 ** 20, floor: fl ? memory[fl]! / 2 ** 20 : null });
  }
}
