// History on vs off: the same cross-gateway load against wsgate with the default history and with
// WSGATE_HISTORY_SIZE=0, beside the floor (which never stores anything). All three systems are up
// at once and measured in turn, twice; figures are the mean of the two rounds.
import type { Ctx } from "../lib/context.ts";
import { PairRig, short, type Step } from "../lib/pairs.ts";
import type { Kind } from "../lib/target.ts";

const ROUNDS = 2;

export async function history(ctx: Ctx): Promise<void> {
  const pairs = ctx.opts.conns ?? (ctx.opts.quick ? 200 : 1000);
  const rate = ctx.opts.quick ? 2000 : Math.max(...ctx.opts.rates);
  const D = ctx.opts.durationS;
  const variants: { name: string; kind: Kind; env: Record<string, string> }[] = [];
  if (ctx.opts.kinds.includes("wsgate")) {
    variants.push({ name: "on", kind: "wsgate", env: { WSGATE_HISTORY_SIZE: "1000" } }); // the default, explicit so --env cannot turn it off
    variants.push({ name: "off", kind: "wsgate", env: { WSGATE_HISTORY_SIZE: "0" } });
  }
  if (ctx.opts.kinds.includes("floor")) variants.push({ name: "floor", kind: "floor", env: {} });
  const rigs = new Map<string, PairRig>();
  const steps: Record<string, Step[]> = {};
  const memory: Record<string, number> = {};
  try {
    for (const v of variants) {
      ctx.log(`history: starting ${v.name}, cross-gateway ${rate}/s over ${pairs} pairs`);
      const rig = await PairRig.start(v.kind, ctx.opts, pairs, v.env);
      rigs.set(v.name, rig);
      await rig.step("cross", 1000, 2);
      steps[v.name] = [];
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, rig] of rigs) {
        const s = await rig.step("cross", rate, D);
        ctx.log(`  ${name} ${short(s)}`);
        ctx.noise.push({ label: `history ${name}`, otherCores: s.otherCores, stealCores: s.stealCores });
        steps[name]!.push(s);
      }
    }
    for (const [name, rig] of rigs) memory[name] = await rig.target.redisMemory();
  } finally {
    for (const rig of rigs.values()) await rig.stop();
  }
  const mean = (name: string, f: (s: Step) => number) => {
    const xs = steps[name];
    return xs && xs.length ? xs.reduce((a, s) => a + f(s), 0) / xs.length : null;
  };
  ctx.detail.history = { pairs, rate, durationS: D, rounds: ROUNDS, steps, redisMemory: memory };
  for (const name of ["on", "off"]) {
    if (!steps[name]) continue;
    const label = `history ${name} @ ${rate.toLocaleString("en-US")}/s cross`;
    const fl = steps.floor ? "floor" : null;
    ctx.rows.push({ scenario: "history", metric: `${label} CPU`, unit: "µs/msg", wsgate: mean(name, (s) => s.cpuUsPerMsg), floor: fl && mean(fl, (s) => s.cpuUsPerMsg) });
    ctx.rows.push({ scenario: "history", metric: `${label} Redis CPU`, unit: "µs/msg", wsgate: mean(name, (s) => s.cpuUsPerMsgBy.redis ?? NaN), floor: fl && mean(fl, (s) => s.cpuUsPerMsgBy.redis ?? NaN) });
    ctx.rows.push({ scenario: "history", metric: `${label} p50`, unit: "ms", wsgate: mean(name, (s) => s.p50), floor: fl && mean(fl, (s) => s.p50) });
    ctx.rows.push({ scenario: "history", metric: `${label} p99`, unit: "ms", wsgate: mean(name, (s) => s.p99), floor: fl && mean(fl, (s) => s.p99) });
    ctx.rows.push({ scenario: "history", metric: `${label} Redis used_memory`, unit: "MB", wsgate: memory[name]! / 2 ** 20, floor: fl ? memory[fl]! / 2 ** 20 : null });
  }
}
