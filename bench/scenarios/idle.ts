// Idle capacity and presence upkeep: one instance, authenticated idle connections added in steps
// (0, 1k, 10k, 19.9k). At each step: RSS after a settle; at 0, 1k and the top step also the Redis
// commands/s the instance spends (INFO commandstats delta over a window). Connect rate and CPU per
// connect come from the ramps.
import { perKind, sleep, type Ctx } from "../lib/context.ts";
import { Fleet } from "../lib/fleet.ts";
import { cpuOf, foreignLoad, loadSnapshot, rssBytes, tcpOutSegs } from "../lib/procs.ts";
import { Target } from "../lib/target.ts";

interface Point { conns: number; open: number; rss: number; idleCpuPct: number; idleCpuAvgPct?: number; tcpSegsPerS?: number; cmdsPerS?: number; byCommand?: Record<string, number> }
interface Ramp { from: number; to: number; connected: number; failed: number; failures: Record<string, number>; ms: number; perS: number; cpuUsPerConn: number; otherCores: number }

const PER_GEN = 8000; // connections per load-generator process, well under its 20,000 open files
// Idle CPU at the top step is also averaged over a minute: more than two 25 s heartbeat intervals, so a
// heartbeat that pings in bursts is charged for its bursts, and one that spreads them is not flattered.
const IDLE_AVG_S = 60;

function delta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) out[k] = v - (a[k] ?? 0);
  return out;
}

export async function idle(ctx: Ctx): Promise<void> {
  const top = ctx.opts.conns ?? (ctx.opts.quick ? 2000 : 19900);
  const steps = [...new Set([0, Math.min(1000, top), Math.min(10000, top), top])].sort((a, b) => a - b);
  // Presence upkeep is compared between 1k and the top step (at 0 it is the same lease, nothing to show).
  const presenceAt = new Set([Math.min(1000, top), top]);
  const W = ctx.opts.windowS;
  const res = await perKind(ctx, async (kind) => {
    ctx.log(`idle: ${kind}, steps ${steps.join(", ")}`);
    // Default heartbeat (25 s), so idle CPU is what users get; a 15 s presence TTL puts the lease
    // refresh (every min(heartbeat, TTL/3)) at 5 s, several of them inside one measuring window.
    // The floor pings like the protocol's heartbeat too (Bun's native pings after 25 s of silence, see
    // RELAY_IDLE_S in bench/baseline/relay.ts), so idle CPU compares like with like.
    const env = { WSGATE_PRESENCE_TTL_MS: "15000", RELAY_IDLE_S: "41" };
    const target = await Target.start(kind, 1, ctx.opts, env);
    const fleet = await Fleet.spawn(Math.max(1, Math.ceil(top / PER_GEN)), `${kind}-idle-`);
    const points: Point[] = [];
    const ramps: Ramp[] = [];
    const pid = target.services[0]!.pid;
    try {
      await sleep(2000);
      let cur = 0;
      for (const n of steps) {
        if (n > cur) {
          const c0 = await cpuOf([pid]);
          const l0 = await loadSnapshot();
          const r = await fleet.connect({ prefix: "i", from: cur, count: n - cur }, target.urls(0), target.auth);
          const cpu = (await cpuOf([pid])) - c0;
          const { otherCores, stealCores } = foreignLoad(l0, await loadSnapshot());
          ctx.noise.push({ label: `idle ${kind} connect ${cur}→${n}`, otherCores, stealCores });
          ramps.push({ from: cur, to: n, ...r, perS: r.connected / (r.ms / 1000), cpuUsPerConn: cpu / Math.max(1, r.connected), otherCores });
          ctx.log(`  ${kind} ${cur}→${n}: ${r.connected} in ${(r.ms / 1000).toFixed(1)} s (${Math.round(r.connected / (r.ms / 1000))}/s), ${r.failed} failed ${r.failed ? JSON.stringify(r.failures) : ""}, others ${otherCores.toFixed(2)} cores`);
          cur = n;
        }
        target.assertAlive();
        await sleep(2000); // let allocation from the handshakes settle
        // Idle CPU: what heartbeats, timers and presence upkeep cost with nothing to deliver. RSS is
        // sampled meanwhile and the lowest kept: a lazy GC leaves handshake garbage in a single reading.
        const i0 = await cpuOf([pid]);
        let rss = Infinity;
        for (let k = 0; k < 10; k++) { await sleep(500); rss = Math.min(rss, await rssBytes(pid)); }
        const idleCpuPct = ((await cpuOf([pid])) - i0) / 5e6 * 100;
        const p: Point = { conns: n, open: (await fleet.stats()).open, rss, idleCpuPct };
        if (kind === "wsgate" && presenceAt.has(n)) {
          const a = await target.commandstats();
          const t0 = performance.now();
          await sleep(W * 1000);
          const b = await target.commandstats();
          const secs = (performance.now() - t0) / 1000;
          p.byCommand = delta(a, b);
          p.cmdsPerS = Object.values(p.byCommand).reduce((s, v) => s + v, 0) / secs;
          p.rss = Math.min(p.rss, await rssBytes(pid));
        }
        if (n === top) {
          const secs = ctx.opts.quick ? 10 : IDLE_AVG_S;
          const a0 = await cpuOf([pid]);
          const s0 = await tcpOutSegs();
          const t0 = performance.now();
          await sleep(secs * 1000);
          p.idleCpuAvgPct = ((await cpuOf([pid])) - a0) / ((performance.now() - t0) * 1000) * 100;
          // Pings show as segments (ping, pong, the pong's ACK): the check that both sides ping alike.
          p.tcpSegsPerS = ((await tcpOutSegs()) - s0) / ((performance.now() - t0) / 1000);
        }
        ctx.log(`  ${kind} @${n}: open ${p.open}, RSS ${(p.rss / 2 ** 20).toFixed(1)} MB, idle CPU ${p.idleCpuPct.toFixed(1)}%` + (p.idleCpuAvgPct !== undefined ? ` (${p.idleCpuAvgPct.toFixed(2)}% over a minute, ${Math.round(p.tcpSegsPerS ?? 0)} TCP segments/s)` : "") + (p.cmdsPerS !== undefined ? `, Redis ${p.cmdsPerS.toFixed(2)} cmds/s ${JSON.stringify(p.byCommand)}` : ""));
        points.push(p);
      }
      return { points, ramps };
    } finally {
      await fleet.close();
      await fleet.exit();
      await target.stop();
    }
  });
  ctx.detail.idle = { steps, windowS: W, ...res };

  const at = (k: "wsgate" | "floor", n: number) => res[k]?.points.find((p) => p.conns === n) ?? null;
  const mb = (p: Point | null) => (p ? p.rss / 2 ** 20 : null);
  for (const n of steps) ctx.rows.push({ scenario: "idle", metric: `RSS at ${n.toLocaleString("en-US")} conns`, unit: "MB", wsgate: mb(at("wsgate", n)), floor: mb(at("floor", n)) });
  const perConn = (k: "wsgate" | "floor") => {
    const z = at(k, 0), t = at(k, top);
    return z && t && t.open ? (t.rss - z.rss) / t.open : null;
  };
  const g = perConn("wsgate"), f = perConn("floor");
  ctx.rows.push({ scenario: "idle", metric: `RSS per conn at ${top.toLocaleString("en-US")}`, unit: "bytes", wsgate: g, floor: f, ...(g !== null ? { target: "≤ 3 KB", ok: g <= 3072 } : {}) });
  ctx.rows.push({ scenario: "idle", metric: `idle CPU at ${top.toLocaleString("en-US")} conns`, unit: "% core", wsgate: at("wsgate", top)?.idleCpuPct ?? null, floor: at("floor", top)?.idleCpuPct ?? null });
  const avgG = at("wsgate", top)?.idleCpuAvgPct ?? null;
  ctx.rows.push({
    scenario: "idle", metric: `idle CPU at ${top.toLocaleString("en-US")} conns, ${ctx.opts.quick ? 10 : IDLE_AVG_S} s average`, unit: "% core",
    wsgate: avgG, floor: at("floor", top)?.idleCpuAvgPct ?? null, ...(avgG !== null ? { target: "≤ 0.3 % core", ok: avgG <= 0.3 } : {}),
  });
  ctx.rows.push({ scenario: "idle", metric: `TCP segments/s in that window (pings)`, unit: "segs/s", wsgate: at("wsgate", top)?.tcpSegsPerS ?? null, floor: at("floor", top)?.tcpSegsPerS ?? null });
  const open = (k: "wsgate" | "floor") => at(k, top)?.open ?? null;
  ctx.rows.push({ scenario: "idle", metric: `open at ${top.toLocaleString("en-US")}`, unit: "conns", wsgate: open("wsgate"), floor: open("floor") });
  const biggest = (k: "wsgate" | "floor") => res[k]?.ramps.slice().sort((a, b) => b.to - b.from - (a.to - a.from))[0] ?? null;
  const rg = biggest("wsgate"), rf = biggest("floor");
  ctx.rows.push({ scenario: "idle", metric: "connect rate (wsgate: JWT verified)", unit: "conns/s", wsgate: rg?.perS ?? null, floor: rf?.perS ?? null });
  ctx.rows.push({ scenario: "idle", metric: "CPU per connect", unit: "µs", wsgate: rg?.cpuUsPerConn ?? null, floor: rf?.cpuUsPerConn ?? null });

  if (res.wsgate) {
    const pts = res.wsgate.points.filter((p) => p.cmdsPerS !== undefined);
    for (const p of pts) ctx.rows.push({ scenario: "presence", metric: `Redis commands/s, idle at ${p.conns.toLocaleString("en-US")} conns`, unit: "cmds/s", wsgate: p.cmdsPerS!, floor: ctx.opts.compare ? null : 0 });
    const lo = pts.find((p) => p.conns === Math.min(1000, top)), hi = pts.find((p) => p.conns === top);
    if (lo && hi && lo !== hi) {
      // Tolerance: 20 %, plus one lease refresh (its commands) landing on either side of a window edge.
      const perRefresh = lo.byCommand?.evalsha ? Object.values(lo.byCommand).reduce((a, b) => a + b, 0) / lo.byCommand.evalsha : 10;
      const flat = hi.cmdsPerS! <= lo.cmdsPerS! * 1.2 + perRefresh / W;
      ctx.rows.push({ scenario: "presence", metric: `upkeep ${top.toLocaleString("en-US")} vs 1,000 conns`, unit: "×", wsgate: lo.cmdsPerS! ? hi.cmdsPerS! / lo.cmdsPerS! : null, floor: null, target: "flat (≤ 1.2×)", ok: flat });
    }
  }
}
