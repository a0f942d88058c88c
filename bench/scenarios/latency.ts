// Latency and CPU per delivered message: fixed open-loop rates over `pairs` sender/receiver
// pairs, same gateway and across gateways. wsgate and the floor are both up for the whole
// scenario and measured alternately, step by step, so both meet the same background load.
import type { Ctx } from "../lib/context.ts";
import { PairRig, short, type Step, type Topo } from "../lib/pairs.ts";
import type { Kind } from "../lib/target.ts";

export async function latency(ctx: Ctx): Promise<void> {
  const pairs = ctx.opts.conns ?? (ctx.opts.quick ? 200 : 1000);
  const D = ctx.opts.durationS;
  const topos: Topo[] = ["same", "cross"];
  const rigs = new Map<Kind, PairRig>();
  const res: Partial<Record<Kind, Record<string, Step>>> = {};
  try {
    for (const kind of ctx.opts.kinds) {
      ctx.log(`latency: starting ${kind}, ${pairs} pairs`);
      rigs.set(kind, await PairRig.start(kind, ctx.opts, pairs));
      res[kind] = {};
    }
    // JIT warm-up on both paths; numbers discarded.
    for (const rig of rigs.values()) { await rig.step("same", 1000, 2); await rig.step("cross", 1000, 2); }
    for (const rate of ctx.opts.rates) {
      for (const topo of topos) {
        for (const [kind, rig] of rigs) {
          const s = await rig.step(topo, rate, D);
          ctx.log(`  ${kind} ${short(s)}`);
          ctx.noise.push({ label: `latency ${kind} ${topo}@${rate}`, otherCores: s.otherCores, stealCores: s.stealCores });
          res[kind]![`${topo}@${rate}`] = s;
        }
      }
    }
  } finally {
    for (const rig of rigs.values()) await rig.stop();
  }
  ctx.detail.latency = { pairs, durationS: D, ...res };

  const get = (k: Kind, key: string) => res[k]?.[key] ?? null;
  for (const rate of ctx.opts.rates) {
    for (const topo of topos) {
      const key = `${topo}@${rate}`;
      const g = get("wsgate", key), f = get("floor", key);
      const name = `${topo === "same" ? "same gateway" : "cross-gateway"} @ ${rate.toLocaleString("en-US")}/s`;
      const p99Ok = g && f && topo === "cross" && rate === 1000 ? g.p99 <= 1.5 * f.p99 : null;
      const p50Ok = g && topo === "cross" && rate === 1000 ? g.p50 <= 0.5 : null;
      ctx.rows.push({ scenario: "latency", metric: `${name} p50`, unit: "ms", wsgate: g?.p50 ?? null, floor: f?.p50 ?? null, ...(p50Ok !== null ? { target: "≤ 0.5 ms", ok: p50Ok } : {}) });
      ctx.rows.push({ scenario: "latency", metric: `${name} p99`, unit: "ms", wsgate: g?.p99 ?? null, floor: f?.p99 ?? null, ...(p99Ok !== null ? { target: "≤ 1.5× floor", ok: p99Ok } : {}) });
      ctx.rows.push({ scenario: "latency", metric: `${name} p999`, unit: "ms", wsgate: g?.p999 ?? null, floor: f?.p999 ?? null });
      const lostG = g ? g.lost : null, lostF = f ? f.lost : null;
      if (lostG || lostF) ctx.rows.push({ scenario: "latency", metric: `${name} lost`, unit: "msgs", wsgate: lostG, floor: lostF });
    }
  }
  // Where the CPU goes at the highest rate, across gateways: instance 0 sends, instance 1 receives.
  const top = `cross@${Math.max(...ctx.opts.rates)}`;
  const part = (k: Kind, i: number) => { const s = get(k, top); return s ? Object.values(s.cpuUsPerMsgBy)[i] ?? null : null; };
  ctx.rows.push({ scenario: "cpu", metric: `${top}: sending instance`, unit: "µs/msg", wsgate: part("wsgate", 0), floor: part("floor", 0) });
  ctx.rows.push({ scenario: "cpu", metric: `${top}: receiving instance`, unit: "µs/msg", wsgate: part("wsgate", 1), floor: part("floor", 1) });
  ctx.rows.push({ scenario: "cpu", metric: `${top}: Redis`, unit: "µs/msg", wsgate: part("wsgate", 2), floor: part("floor", 2) });
  for (const rate of ctx.opts.rates) {
    for (const topo of topos) {
      const key = `${topo}@${rate}`;
      const g = get("wsgate", key), f = get("floor", key);
      const judged = topo === "cross" && rate === Math.max(...ctx.opts.rates);
      const ok = judged && g && f ? g.cpuUsPerMsg <= 1.5 * f.cpuUsPerMsg : null;
      ctx.rows.push({
        scenario: "cpu",
        metric: `${topo === "same" ? "same gateway" : "cross-gateway"} @ ${rate.toLocaleString("en-US")}/s`,
        unit: "µs/msg",
        wsgate: g?.cpuUsPerMsg ?? null,
        floor: f?.cpuUsPerMsg ?? null,
        ...(ok !== null ? { target: "≤ 1.5× floor", ok } : {}),
      });
    }
  }
}
