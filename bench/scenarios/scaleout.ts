// Scale-out (opt-in, --scenario scaleout): ~100k idle connections over five instances sharing one
// Redis, direct messages between random users flowing the whole time; RSS per instance and Redis
// memory. Each process is capped at 20,000 open files, so an instance holds at most 19,900.
import { perKind, sleep, type Ctx } from "../lib/context.ts";
import { Fleet } from "../lib/fleet.ts";
import { cpuOf, rssBytes } from "../lib/procs.ts";
import { Target } from "../lib/target.ts";

const PER_INSTANCE_MAX = 19900;
const PER_GEN = 17000;

export async function scaleout(ctx: Ctx): Promise<void> {
  const n = ctx.opts.gateways;
  const total = Math.min(ctx.opts.conns ?? (ctx.opts.quick ? 10000 : 100000), n * PER_INSTANCE_MAX);
  const rate = ctx.opts.quick ? 500 : 1000;
  const D = ctx.opts.durationS;
  const res = await perKind(ctx, async (kind) => {
    ctx.log(`scaleout: ${kind}, ${total} conns over ${n} instances, random pairs at ${rate}/s`);
    const env = { WSGATE_HEARTBEAT_MS: "25000" };
    const target = await Target.start(kind, n, ctx.opts, env);
    const fleet = await Fleet.spawn(Math.ceil(total / PER_GEN), `${kind}-scale-`);
    try {
      // Interleave instances and loopback addresses so connection k lands on instance k % n.
      const per = target.services.map((_, i) => target.urls(i));
      const urls: string[] = [];
      for (let a = 0; a < per[0]!.length; a++) for (let i = 0; i < n; i++) urls.push(per[i]![a]!);
      const rss0 = await Promise.all(target.services.map((s) => rssBytes(s.pid)));
      const redisMemory0 = await target.redisMemory();
      const c = await fleet.connect({ prefix: "x", from: 0, count: total }, urls, target.auth);
      ctx.log(`  ${kind} connected ${c.connected}/${total} in ${(c.ms / 1000).toFixed(1)} s ${c.failed ? JSON.stringify(c.failures) : ""}`);
      target.assertAlive();
      await sleep(5000);
      // Random pairs: every generator sends from its own users to any of the `total` users.
      await fleet.stats(true);
      const c0 = await cpuOf(target.pids());
      const parts = Fleet.split({ prefix: "x", from: 0, count: total }, fleet.gens.length);
      const sends = await Promise.all(fleet.gens.map((g, i) => g.request({
        cmd: "send", mode: "random", from: parts[i], to: { prefix: "x", from: 0, count: total },
        rate: rate / fleet.gens.length, durationMs: D * 1000,
      }, D * 1000 + 60000)));
      const sent = sends.reduce((s, r) => s + r.sent, 0);
      const m = await fleet.settle((x) => x.direct.n, sent, 2000, 15000);
      const cpu = (await cpuOf(target.pids())) - c0;
      const rss = await Promise.all(target.services.map((s) => rssBytes(s.pid)));
      const redisMemory = await target.redisMemory();
      const out = {
        conns: c.connected, open: m.open, failures: c.failures, connectMs: c.ms,
        rss0, rss, redisMemory0, redisMemory, sent, received: m.direct.n,
        p50: m.direct.pct(0.5), p99: m.direct.pct(0.99), max: m.direct.max,
        cpuUsPerMsg: m.direct.n ? cpu / m.direct.n : NaN, errors: m.errors, closes: m.closes,
      };
      ctx.log(`  ${kind} open ${out.open}, RSS ${rss.map((r) => (r / 2 ** 20).toFixed(0)).join("/")} MB, Redis ${(redisMemory / 2 ** 20).toFixed(1)} MB, sent ${sent} got ${m.direct.n}, p99 ${out.p99.toFixed(2)} ms`);
      return out;
    } finally {
      await fleet.close();
      await fleet.exit();
      await target.stop();
    }
  });
  ctx.detail.scaleout = { instances: n, total, rate, durationS: D, ...res };
  const g = res.wsgate, f = res.floor;
  const mb = (x: number | undefined) => (x === undefined ? null : x / 2 ** 20);
  const label = `${n} instances`;
  ctx.rows.push({ scenario: "scaleout", metric: `${label}: open conns`, unit: "conns", wsgate: g?.open ?? null, floor: f?.open ?? null, ...(g ? { target: `${total.toLocaleString("en-US")} (fd cap)`, ok: g.open >= total } : {}) });
  ctx.rows.push({ scenario: "scaleout", metric: `${label}: RSS per instance (max)`, unit: "MB", wsgate: mb(g ? Math.max(...g.rss) : undefined), floor: mb(f ? Math.max(...f.rss) : undefined) });
  ctx.rows.push({ scenario: "scaleout", metric: `${label}: Redis used_memory`, unit: "MB", wsgate: mb(g?.redisMemory), floor: mb(f?.redisMemory) });
  const perConn = (x: typeof g) => (x && x.open ? (x.redisMemory - x.redisMemory0) / x.open : null);
  ctx.rows.push({ scenario: "scaleout", metric: `${label}: Redis memory per conn`, unit: "bytes", wsgate: perConn(g), floor: perConn(f) });
  const perConnRss = (x: typeof g) => (x && x.open ? x.rss.reduce((a, r, i) => a + r - x.rss0[i]!, 0) / x.open : null);
  ctx.rows.push({ scenario: "scaleout", metric: `${label}: instance RSS per conn`, unit: "bytes", wsgate: perConnRss(g), floor: perConnRss(f) });
  ctx.rows.push({ scenario: "scaleout", metric: `${label}: random pairs @ ${rate}/s p99`, unit: "ms", wsgate: g?.p99 ?? null, floor: f?.p99 ?? null });
  ctx.rows.push({ scenario: "scaleout", metric: `${label}: messages lost`, unit: "msgs", wsgate: g ? g.sent - g.received : null, floor: f ? f.sent - f.received : null });
}
