// The direct-message rig shared by latency, CPU, throughput and history: `pairs` senders on
// instance A, each with a receiver on A ("ra<i>") and one on B ("rb<i>"), so one set of
// connections measures both same-gateway and cross-gateway delivery.
import { Fleet } from "./fleet.ts";
import { cpuOf, foreignLoad, loadSnapshot } from "./procs.ts";
import { Target, type Kind, type Options } from "./target.ts";
import type { LoadGen } from "./loadgen-client.ts";

export type Topo = "same" | "cross";

export interface Step {
  topo: Topo;
  rate: number; // requested msgs/s
  achieved: number; // msgs/s the load generators actually put on the wire
  sent: number;
  received: number;
  lost: number;
  p50: number; p99: number; p999: number; max: number; mean: number; // ms
  cpuUsPerMsg: number; // gateways + Redis, µs of CPU per delivered message
  cpuShare: number; // gateways + Redis CPU, in cores, over the step
  loadgenCpuShare: number;
  errors: Record<string, number>;
  closes: Record<string, number>;
  maxBehind: number; // largest backlog (messages) a sender saw: >> rate/1000 means the sender lagged
  cpuUsPerMsgBy: Record<string, number>; // the same split by process: instance names and "redis"
  /** Per Redis command during the step: calls per delivered message and Redis-internal µs per call. */
  redis: Record<string, { perMsg: number; usecPerCall: number }>;
  otherCores: number; // CPU used by processes outside this benchmark during the step (shared machine)
  stealCores: number;
}

export class PairRig {
  private constructor(readonly target: Target, readonly fleet: Fleet, readonly senders: LoadGen[], readonly pairs: number) {}

  static async start(kind: Kind, opts: Options, pairs: number, env: Record<string, string> = {}, senderGens = 1): Promise<PairRig> {
    const target = await Target.start(kind, 2, opts, env);
    let fleet: Fleet | null = null;
    try {
      fleet = await Fleet.spawn(senderGens + 1, `${kind}-pairs-`);
      const senders = fleet.gens.slice(0, senderGens);
      const recv = fleet.gens.slice(senderGens);
      const a = await fleet.connect({ prefix: "s", from: 0, count: pairs }, target.urls(0), target.auth, senders);
      const b = await fleet.connect({ prefix: "ra", from: 0, count: pairs }, target.urls(0), target.auth, recv);
      const c = await fleet.connect({ prefix: "rb", from: 0, count: pairs }, target.urls(1), target.auth, recv);
      const bad = a.failed + b.failed + c.failed;
      if (bad) throw new Error(`${kind}: ${bad} of ${3 * pairs} connections failed: ${JSON.stringify({ ...a.failures, ...b.failures, ...c.failures })}`);
      return new PairRig(target, fleet, senders, pairs);
    } catch (e) {
      await fleet?.exit();
      await target.stop();
      throw e;
    }
  }

  async step(topo: Topo, rate: number, durationS: number): Promise<Step> {
    this.target.assertAlive();
    await this.fleet.stats(true);
    const pids = this.target.pids();
    const cpu0 = await cpuOf(pids);
    const each0 = await Promise.all(pids.map((p) => cpuOf([p])));
    const lg0 = await cpuOf(this.fleet.pids());
    const load0 = await loadSnapshot();
    const cs0 = await this.target.commandUsec();
    const t0 = performance.now();
    const parts = Fleet.split({ prefix: "s", from: 0, count: this.pairs }, this.senders.length);
    const res = await Promise.all(this.senders.map((g, i) => g.request({
      cmd: "send",
      mode: "pair",
      from: parts[i],
      to: { prefix: topo === "same" ? "ra" : "rb", from: parts[i]!.from, count: parts[i]!.count },
      rate: rate / this.senders.length,
      durationMs: durationS * 1000,
    }, durationS * 1000 + 60000)));
    const sent = res.reduce((n, r) => n + r.sent, 0);
    const elapsed = Math.max(...res.map((r) => r.elapsedMs));
    const m = await this.fleet.settle((x) => x.direct.n, sent, 1500, 15000);
    const wall = (performance.now() - t0) / 1000;
    const cpu = (await cpuOf(pids)) - cpu0;
    const each = await Promise.all(pids.map((p, i) => cpuOf([p]).then((c) => c - each0[i]!)));
    const names = [...this.target.services.map((s) => s.name), "redis"];
    const lg = (await cpuOf(this.fleet.pids())) - lg0;
    const received = m.direct.n;
    const foreign = foreignLoad(load0, await loadSnapshot());
    const cs1 = await this.target.commandUsec();
    const redis: Step["redis"] = {};
    for (const [k, v] of Object.entries(cs1)) {
      const calls = v.calls - (cs0[k]?.calls ?? 0);
      if (calls > 0) redis[k] = { perMsg: received ? calls / received : NaN, usecPerCall: (v.usec - (cs0[k]?.usec ?? 0)) / calls };
    }
    return {
      topo,
      rate,
      achieved: sent / (elapsed / 1000),
      sent,
      received,
      lost: Math.max(0, sent - received),
      p50: m.direct.pct(0.5),
      p99: m.direct.pct(0.99),
      p999: m.direct.pct(0.999),
      max: m.direct.max,
      mean: m.direct.mean(),
      cpuUsPerMsg: received ? cpu / received : NaN,
      cpuShare: cpu / 1e6 / wall,
      loadgenCpuShare: lg / 1e6 / wall,
      errors: m.errors,
      closes: m.closes,
      maxBehind: Math.max(...res.map((r) => r.maxBehind)),
      cpuUsPerMsgBy: Object.fromEntries(names.map((n, i) => [n, received ? each[i]! / received : NaN])),
      redis,
      ...foreign,
    };
  }

  async stop(): Promise<void> {
    await this.fleet.exit();
    await this.target.stop();
  }
}

export const short = (s: Step) => `${s.topo}@${s.rate}/s: sent ${s.sent} lost ${s.lost} p50 ${s.p50.toFixed(3)} p99 ${s.p99.toFixed(3)} p999 ${s.p999.toFixed(3)} ms, ${s.cpuUsPerMsg.toFixed(1)} µs/msg (${Object.entries(s.cpuUsPerMsgBy).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}; loadgens ${s.loadgenCpuShare.toFixed(2)} cores, others ${s.otherCores.toFixed(2)} cores), achieved ${Math.round(s.achieved)}/s` + (Object.keys(s.errors).length ? ` errors ${JSON.stringify(s.errors)}` : "") + (Object.keys(s.closes).length ? ` closes ${JSON.stringify(s.closes)}` : "");
