// Regions with distance: `bun run cluster` with round trips between regions (delay proxies) and two
// gateways per region. For every ordered region pair — same gateway, same region on the other
// gateway, and each cross-region pair — at 200 msgs/s: delivery, ack, presence-query and resume
// latency, each beside its floor from the configured delays alone:
//   delivery  sender→primary + primary→recipient's subscription (the primary, or its region's replica)
//   ack       the sender's round trip to the primary (the send script runs there)
//   presence  0: presence reads go to the region's own replica (or the primary in its region)
//   resume    one round trip to the primary: the history read (the replay cannot come from a replica)
// Target: p50 ≤ floor + 2 ms, p99 ≤ floor + 10 ms.
import { spawn } from "bun";
import type { Ctx } from "../lib/context.ts";
import { Hist } from "../lib/hist.ts";
import { foreignLoad, loadSnapshot, ROOT } from "../lib/procs.ts";
import { readLines } from "../../harness/lines.ts";
import { freePort } from "../../harness/ports.ts";
import { deliveryFloorMs, parseRegions, parseRtt, type RttTable } from "../../harness/regions.ts";
import { mintDevToken } from "../../harness/tokens.ts";

export const DEFAULT_RTT = "ord-ams=90,ord-sin=220,ams-sin=160";
const RATE = 200; // msgs/s per path
const RESUMES = 5; // per path
const PRESENCE_QUERIES = 40; // per path, one after another
const SECRET = "bench-regions-secret-long-enough-for-hs256";

interface Gw { id: string; region: string; ws: string }
interface Ready { regions: string[]; primaryRegion: string; gateways: Gw[] }

/** A WebSocket that answers requests by id and hands every message to a callback. */
class Client {
  ws!: WebSocket;
  private waiting = new Map<string, (f: any) => void>();
  private seq = 0;
  onMessage: (f: any, at: number) => void = () => {};
  lastOffset: string | undefined;
  welcome: any = null;
  private constructor() {}

  static open(url: string, onMessage?: (f: any, at: number) => void): Promise<Client> {
    const c = new Client();
    if (onMessage) c.onMessage = onMessage;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no welcome from ${url}`)), 15_000);
      c.ws = new WebSocket(url);
      c.ws.onmessage = (e) => {
        const at = performance.now();
        const f = JSON.parse(e.data as string);
        if (f.type === "welcome") { c.welcome = f; clearTimeout(t); resolve(c); return; }
        if (f.type === "message") { if (f.offset) c.lastOffset = f.offset; c.onMessage(f, at); return; }
        const w = f.id !== undefined ? c.waiting.get(f.id) : undefined;
        if (w) { c.waiting.delete(f.id); w({ ...f, at }); }
      };
      c.ws.onerror = () => { clearTimeout(t); reject(new Error(`cannot connect to ${url}`)); };
    });
  }

  request(frame: Record<string, unknown>, timeoutMs = 10_000): Promise<any> {
    const id = `q${++this.seq}`;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.waiting.delete(id); reject(new Error(`no reply to ${frame.type}`)); }, timeoutMs);
      this.waiting.set(id, (f) => { clearTimeout(t); resolve(f); });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  close(): void { try { this.ws.close(); } catch {} }
}

interface Path {
  label: string;
  kind: "same gateway" | "same region" | "cross-region";
  from: Gw;
  to: Gw;
  sender: string;
  recipient: string;
  floor: { delivery: number; ack: number; presence: number; resume: number };
  h: { delivery: Hist; ack: Hist; presence: Hist; resume: Hist };
  lost: number;
  dup: number;
}

function planPaths(ready: Ready, rtt: RttTable): Path[] {
  const P = ready.primaryRegion;
  const paths: Path[] = [];
  const first = (r: string, i = 0) => ready.gateways.filter((g) => g.region === r)[i]!;
  const add = (kind: Path["kind"], from: Gw, to: Gw) => {
    const n = paths.length;
    paths.push({
      label: kind === "cross-region" ? `${from.region}→${to.region}` : `${from.region} ${kind}`,
      kind, from, to,
      sender: `s${n}-${from.region}`, recipient: `r${n}-${to.region}`,
      floor: {
        delivery: deliveryFloorMs({ rtt, primaryRegion: P }, from.region, to.region),
        ack: rtt.rtt(from.region, P),
        presence: 0,
        resume: rtt.rtt(to.region, P),
      },
      h: { delivery: new Hist(), ack: new Hist(), presence: new Hist(), resume: new Hist() },
      lost: 0, dup: 0,
    });
  };
  for (const a of ready.regions) {
    add("same gateway", first(a), first(a));
    if (ready.gateways.filter((g) => g.region === a).length > 1) add("same region", first(a), first(a, 1));
  }
  for (const a of ready.regions) for (const b of ready.regions) if (a !== b) add("cross-region", first(a), first(b));
  return paths;
}

const url = (g: Gw, token: string, since?: string) => `${g.ws}?token=${token}${since ? `&since=${encodeURIComponent(since)}` : ""}`;

/** Senders and recipients of every path, connected once; deliveries timed in this process. */
async function connectPaths(paths: Path[], tokens: Map<string, string>) {
  const seen = paths.map(() => new Set<number>());
  let recording = false;
  const senders = await Promise.all(paths.map((p) => Client.open(url(p.from, tokens.get(p.sender)!))));
  const recipients = await Promise.all(paths.map((p, i) => Client.open(url(p.to, tokens.get(p.recipient)!), (f, at) => {
    const d = f.data as { t: number; i: number };
    if (d.i < 0) return; // resume probes
    if (seen[i]!.has(d.i)) { if (recording) p.dup++; return; }
    seen[i]!.add(d.i);
    if (recording) p.h.delivery.add(at - d.t);
  })));
  return { senders, recipients, seen, record: (on: boolean) => { recording = on; } };
}

/**
 * One path at a time, open loop at RATE for `seconds` (message k leaves at t0 + k/RATE whatever the
 * replies do), so each pair's figures are its own and not the machine's total load.
 */
async function traffic(p: Path, i: number, sender: Client, seen: Set<number>, seconds: number, record: boolean, base: number): Promise<void> {
  const acks: Promise<void>[] = [];
  const t0 = performance.now();
  const total = Math.round(seconds * RATE);
  for (let k = 0; k < total; k++) {
    const wait = t0 + (k * 1000) / RATE - performance.now();
    if (wait > 0) await Bun.sleep(wait);
    const t = performance.now();
    acks.push(sender.request({ type: "send", to: p.recipient, data: { t, i: base + k } }, 15_000).then(
      (a) => { if (record && a.type === "ack") p.h.ack.add(a.at - t); },
      () => {},
    ));
  }
  await Promise.all(acks);
  // Stragglers: until everything arrived or nothing new for 2 s.
  let last = -1;
  for (let n = 0, still = 0; n < 100 && still < 20; n++) {
    const got = [...seen].filter((x) => x >= base).length;
    if (got === total) break;
    still = got === last ? still + 1 : 0;
    last = got;
    await Bun.sleep(100);
  }
  if (record) p.lost += total - [...seen].filter((x) => x >= base).length;
}

async function presence(paths: Path[], senders: Client[]): Promise<void> {
  for (const [i, p] of paths.entries()) await (async () => {
    for (let q = 0; q < PRESENCE_QUERIES; q++) {
      const t = performance.now();
      const r = await senders[i]!.request({ type: "presence", users: [p.recipient] });
      if (r.type !== "error") p.h.presence.add(r.at - t);
    }
  })();
}

/**
 * The recipient goes away, misses three messages, and comes back with `since`: time from the new
 * WebSocket to the last replayed message. It comes back after its old connection's clean-up is done
 * (SETTLE_MS): an immediate reconnect to the same gateway also waits for that clean-up (per-user
 * ordering of presence writes), two more round trips to the primary.
 */
async function resume(paths: Path[], tokens: Map<string, string>, senders: Client[], recipients: Client[], settleMs: number): Promise<void> {
  for (const [i, p] of paths.entries()) await (async () => {
    let rc = recipients[i]!;
    for (let round = 0; round < RESUMES; round++) {
      const since = rc.lastOffset;
      rc.close();
      await Bun.sleep(settleMs);
      for (let m = 0; m < 3; m++) await senders[i]!.request({ type: "send", to: p.recipient, data: { t: 0, i: -1, r: round, m } });
      const t = performance.now();
      let got = 0;
      const done = new Promise<number>((resolve) => {
        void Client.open(url(p.to, tokens.get(p.recipient)!, since), (f, at) => {
          if ((f.data as { r?: number }).r === round && ++got === 3) resolve(at);
        }).then((c) => { rc = c; });
      });
      const at = await Promise.race([done, Bun.sleep(10_000).then(() => NaN)]);
      if (Number.isFinite(at)) p.h.resume.add(at - t);
    }
    recipients[i] = rc;
  })();
}

export async function regions(ctx: Ctx): Promise<void> {
  const rttArg = ctx.opts.rtt ?? DEFAULT_RTT;
  const regionList = parseRegions(ctx.opts.regions ?? "ord,ams,sin");
  const rtt = parseRtt(rttArg, regionList);
  const seconds = ctx.opts.durationS;
  const ports = await Promise.all(regionList.flatMap(() => [freePort(), freePort()]));
  const proc = spawn(
    ["bun", "scripts/cluster.ts", "--json", "--quiet", "--regions", regionList.join(","), "--rtt", rttArg, "--per-region", "2", "--ports", ports.join(","), "--drain-ms", "300"],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", WSGATE_JWT_SECRET: SECRET, WSGATE_RATE: "100000", LOG_LEVEL: "warn", ...ctx.opts.gatewayEnv },
      stdin: "ignore", stdout: "pipe", stderr: "pipe",
    },
  );
  const kill = () => { try { proc.kill("SIGKILL"); } catch {} };
  ctx.opts.reap.add(kill);
  let ready: Ready | null = null;
  let err = "";
  void readLines(proc.stderr as ReadableStream<Uint8Array>, (l) => { err = (err + l + "\n").slice(-4000); });
  const gotReady = new Promise<void>((resolve) => {
    void readLines(proc.stdout as ReadableStream<Uint8Array>, (l) => {
      try { const e = JSON.parse(l); if (e.event === "ready") { ready = e; resolve(); } } catch {}
    }).then(() => resolve());
  });
  const clients: Client[] = [];
  try {
    await Promise.race([gotReady, Bun.sleep(90_000)]);
    if (!ready) throw new Error(`cluster did not start:\n${err}`);
    const r = ready as Ready;
    ctx.log(`regions: ${r.regions.join(", ")} (primary ${r.primaryRegion}), rtt ${rttArg}, ${r.gateways.length} gateways`);
    const paths = planPaths(r, rtt);
    const tokens = new Map<string, string>();
    for (const p of paths) for (const u of [p.sender, p.recipient]) tokens.set(u, await mintDevToken(SECRET, u));

    const { senders, recipients, seen, record } = await connectPaths(paths, tokens);
    clients.push(...senders);
    // Warm-up (JIT, replication buffers) on every path: numbers discarded.
    await Promise.all(paths.map((p, i) => traffic(p, i, senders[i]!, seen[i]!, 0.5, false, 0)));
    ctx.log(`regions: ${paths.length} paths, one after another, ${RATE} msgs/s for ${seconds} s each`);
    record(true);
    for (const [i, p] of paths.entries()) {
      const a = await loadSnapshot();
      await traffic(p, i, senders[i]!, seen[i]!, seconds, true, 1_000_000);
      const { otherCores, stealCores } = foreignLoad(a, await loadSnapshot());
      ctx.noise.push({ label: `regions ${p.label}`, otherCores, stealCores });
      ctx.log(`  ${p.label}: delivery p50 ${p.h.delivery.pct(0.5).toFixed(1)} ms (floor ${p.floor.delivery}), other processes ${otherCores.toFixed(2)} cores`);
    }
    record(false);
    await presence(paths, senders);
    // Long enough for a closed connection's clean-up (two round trips to the primary) to finish.
    const settleMs = 3 * Math.max(...r.regions.map((x) => rtt.rtt(x, r.primaryRegion))) + 100;
    await resume(paths, tokens, senders, recipients, settleMs);
    clients.push(...recipients);
    report(ctx, paths, rttArg);
  } finally {
    for (const c of clients) c.close();
    proc.kill("SIGTERM");
    await Promise.race([proc.exited, Bun.sleep(20_000)]);
    kill();
    ctx.opts.reap.delete(kill);
  }
}

function report(ctx: Ctx, paths: Path[], rttArg: string): void {
  const detail: Record<string, unknown> = { rtt: rttArg, ratePerPath: RATE, durationS: ctx.opts.durationS };
  for (const p of paths) {
    const row = (what: keyof Path["h"], pct: 50 | 99) => {
      const h = p.h[what];
      const v = h.n ? h.pct(pct / 100) : null;
      const floor = p.floor[what];
      const slack = pct === 50 ? 2 : 10;
      ctx.rows.push({
        scenario: "regions",
        metric: `${p.label} ${what} p${pct}`,
        unit: "ms",
        wsgate: v,
        floor,
        target: `≤ floor+${slack}`,
        ok: v === null ? null : v <= floor + slack,
      });
    };
    for (const what of ["delivery", "ack", "presence", "resume"] as const) { row(what, 50); row(what, 99); }
    if (p.lost || p.dup) ctx.rows.push({ scenario: "regions", metric: `${p.label} lost / duplicated`, unit: "msgs", wsgate: p.lost, floor: p.dup });
    detail[p.label] = {
      kind: p.kind, from: p.from.id, to: p.to.id, floor: p.floor, lost: p.lost, dup: p.dup,
      ...Object.fromEntries(Object.entries(p.h).map(([k, h]) => [k, h.n ? { n: h.n, p50: h.pct(0.5), p99: h.pct(0.99), max: h.max } : null])),
    };
  }
  ctx.detail.regions = detail;
}
