// Throughput: the highest cross-gateway rate sustained with p99 under 50 ms, nothing lost and the
// load generators keeping up; stepped up ×1.5 until a step fails, then bisected twice. The wsgate
// and floor searches run side by side and take turns step by step (same background load).
import { Turns, type Ctx } from "../lib/context.ts";
import { PairRig, short, type Step } from "../lib/pairs.ts";
import type { Kind } from "../lib/target.ts";

const P99_MS = 50;

function passes(s: Step): boolean {
  return s.lost === 0 && s.p99 < P99_MS && s.achieved >= 0.95 * s.rate && Object.keys(s.closes).length === 0;
}

interface Search { best: number; bestStep: Step | null; steps: Step[] }

export async function throughput(ctx: Ctx): Promise<void> {
  const pairs = ctx.opts.conns ?? (ctx.opts.quick ? 200 : 1000);
  const D = Math.min(ctx.opts.durationS, 5);
  const start = ctx.opts.quick ? 2000 : 5000;
  const rigs = new Map<Kind, PairRig>();
  const turns = new Turns();
  const res: Partial<Record<Kind, Search>> = {};
  const search = async (kind: Kind, rig: PairRig): Promise<Search> => {
    const steps: Step[] = [];
    const once = (rate: number) => turns.run(async () => {
      const s = await rig.step("cross", Math.round(rate), D);
      ctx.log(`  ${kind} ${short(s)} ${passes(s) ? "pass" : "FAIL"}`);
      ctx.noise.push({ label: `throughput ${kind} ${s.rate}`, otherCores: s.otherCores, stealCores: s.stealCores });
      steps.push(s);
      await Bun.sleep(1000); // let a backlog from a failed step drain before the next
      return passes(s);
    });
    // A failed step gets one retry: on a shared machine one burst of someone else's load can sink
    // a single 5 s step, and the search would stop there for good.
    const run = async (rate: number) => (await once(rate)) || (await once(rate));
    let good = 0, bad = 0, rate = start;
    for (let i = 0; i < 12; i++) {
      if (await run(rate)) { good = rate; rate *= 1.5; } else { bad = rate; break; }
    }
    for (let i = 0; bad && i < 2; i++) {
      const mid = Math.round((good + bad) / 2);
      if (await run(mid)) good = mid; else bad = mid;
    }
    const bestStep = steps.filter(passes).sort((a, b) => b.rate - a.rate)[0] ?? null;
    return { best: good, bestStep, steps };
  };
  try {
    for (const kind of ctx.opts.kinds) {
      ctx.log(`throughput: starting ${kind}, ${pairs} pairs, ${D} s steps`);
      // Two sender processes: one alone tops out before a fast floor does.
      const rig = await PairRig.start(kind, ctx.opts, pairs, {}, 2);
      rigs.set(kind, rig);
      await rig.step("cross", 1000, 2); // warm-up
    }
    const found = await Promise.all([...rigs].map(async ([kind, rig]) => [kind, await search(kind, rig)] as const));
    for (const [kind, s] of found) res[kind] = s;
  } finally {
    for (const rig of rigs.values()) await rig.stop();
  }
  ctx.detail.throughput = { pairs, stepS: D, p99LimitMs: P99_MS, ...res };
  const g = res.wsgate?.best ?? null, f = res.floor?.best ?? null;
  ctx.rows.push({
    scenario: "throughput",
    metric: `cross-gateway, p99 < ${P99_MS} ms, 0 lost`,
    unit: "msgs/s",
    wsgate: g,
    floor: f,
    ...(g !== null && f !== null ? { target: "≥ 0.8× floor", ok: g >= 0.8 * f } : {}),
  });
  const gs = res.wsgate?.bestStep, fs = res.floor?.bestStep;
  ctx.rows.push({ scenario: "throughput", metric: "p99 at that rate", unit: "ms", wsgate: gs?.p99 ?? null, floor: fs?.p99 ?? null });
  ctx.rows.push({ scenario: "throughput", metric: "CPU at that rate", unit: "µs/msg", wsgate: gs?.cpuUsPerMsg ?? null, floor: fs?.cpuUsPerMsg ?? null });
}
