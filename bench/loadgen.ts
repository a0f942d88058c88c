// One load-generator process: holds up to ~19k client WebSockets (the per-process open-file cap is
// 20,000), sends on a fixed open-loop schedule and records delivery latency from the timestamp
// each message carries. Driven by bench/run.ts: one JSON command per stdin line, one JSON reply
// per stdout line, matched by `id`. Works unchanged against wsgate and against the floor relay.
import { SignJWT } from "jose";
import { Hist } from "./lib/hist.ts";

// Wall-clock milliseconds with sub-ms precision that agree across processes on one machine.
const now = () => performance.timeOrigin + performance.now();

interface Range { prefix: string; from: number; count: number; mod?: number }
interface Conn { ws: WebSocket; user: string; open: boolean; waitId: string | null; waiter: ((ok: boolean) => void) | null }

// `mod` lets many connections share few user ids (rooms: 10k connections of 100 users).
const users = (r: Range) => Array.from({ length: r.count }, (_, i) => r.prefix + (r.mod ? (r.from + i) % r.mod : r.from + i));
const reply = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + "\n");

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

function sendFrame(to: string) { return `{"type":"send","to":${JSON.stringify(to)},"data":{"t":`; }

function waitAck(c: Conn, id: string, frame: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (!c.open) return resolve(false);
    const t = setTimeout(() => { c.waiter = null; resolve(false); }, timeoutMs);
    c.waitId = id;
    c.waiter = (ok) => { clearTimeout(t); resolve(ok); };
    c.ws.send(frame);
  });
}

/** All of one process's connections and what they have received. */
class Generator {
  private readonly conns: Conn[] = [];
  private readonly byUser = new Map<string, Conn>();
  private readonly tokens = new Map<string, string>();
  private readonly direct = new Hist();
  private readonly room = new Hist();
  private roomLast = 0; // when the latest room message arrived (ms, wall clock)
  private readonly errors: Record<string, number> = {};
  private readonly closes: Record<string, number> = {};
  private roomEvents = 0;
  private other = 0;

  onFrame(c: Conn, s: string): void {
    // Fast paths by substring so the load generator spends as little CPU per message as it can.
    let i = s.indexOf('{"t":');
    if (i >= 0) { this.direct.add(now() - parseFloat(s.slice(i + 5, i + 40))); return; }
    i = s.indexOf('{"r":');
    if (i >= 0) { const t = now(); this.room.add(t - parseFloat(s.slice(i + 5, i + 40))); this.roomLast = t; return; }
    let f: any;
    try { f = JSON.parse(s); } catch { this.other++; return; }
    if (f.type === "ack" || f.type === "error") {
      if (f.type === "error") this.errors[f.code] = (this.errors[f.code] ?? 0) + 1;
      if (c.waiter && f.id === c.waitId) { const w = c.waiter; c.waiter = null; c.waitId = null; w(f.type === "ack"); }
    } else if (f.type === "room") this.roomEvents++;
    else this.other++;
  }

  openOne(url: string, user: string, timeoutMs: number): Promise<string | null> {
    return new Promise((resolve) => {
      let done = false;
      const ws = new WebSocket(url);
      const c: Conn = { ws, user, open: false, waitId: null, waiter: null };
      const finish = (err: string | null) => { if (done) return; done = true; clearTimeout(t); resolve(err); };
      const t = setTimeout(() => { finish("timeout"); try { ws.close(); } catch {} }, timeoutMs);
      ws.onmessage = (ev) => {
        const s = typeof ev.data === "string" ? ev.data : "";
        if (!c.open) {
          if (s.includes('"welcome"')) {
            c.open = true;
            this.conns.push(c);
            this.byUser.set(user, c);
            finish(null);
          } else finish("no welcome: " + s.slice(0, 120));
          return;
        }
        this.onFrame(c, s);
      };
      ws.onclose = (ev) => {
        if (c.open) { this.closes[ev.code] = (this.closes[ev.code] ?? 0) + 1; c.open = false; }
        if (c.waiter) { const w = c.waiter; c.waiter = null; w(false); }
        finish(`closed ${ev.code}`);
      };
      ws.onerror = () => finish("error");
    });
  }

  /** Mints one HS256 token per user ahead of connecting, so connect timing is the gateway's, not ours. */
  async mint(cmd: any) {
    const t0 = now();
    const key = new TextEncoder().encode(cmd.secret);
    const iat = Math.floor(Date.now() / 1000);
    const list = [...new Set(users(cmd.users as Range))].filter((u) => !this.tokens.has(u));
    const signed = await Promise.all(list.map((u) => {
      const claims: Record<string, unknown> = { sub: u };
      if (cmd.rooms) claims.rooms = cmd.rooms;
      return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt(iat).setExpirationTime(iat + 7200).sign(key);
    }));
    list.forEach((u, i) => this.tokens.set(u, signed[i]!));
    return { minted: list.length, ms: now() - t0 };
  }

  async connect(cmd: any) {
    const range = cmd.users as Range;
    const list = users(range);
    const urls = cmd.urls as string[];
    const t1 = now();
    const failures: Record<string, number> = {};
    let ok = 0;
    const idx = list.map((_, i) => i);
    await pool(idx, cmd.concurrency ?? 200, async (i) => {
      const u = list[i]!;
      let q = "user=" + encodeURIComponent(u);
      if (cmd.auth) {
        const tok = this.tokens.get(u);
        if (!tok) { failures["no token"] = (failures["no token"] ?? 0) + 1; return; }
        q = "token=" + tok;
      }
      const base = urls[(range.from + i) % urls.length]!;
      const err = await this.openOne(base + (base.includes("?") ? "&" : "?") + q, u, cmd.timeoutMs ?? 20000);
      if (err === null) ok++;
      else { const k = err.slice(0, 60); failures[k] = (failures[k] ?? 0) + 1; }
    });
    return { connected: ok, failed: list.length - ok, failures, connectMs: now() - t1 };
  }

  async send(cmd: any) {
    const from = users(cmd.from as Range);
    const to = users(cmd.to as Range);
    const senders: Conn[] = [];
    const heads: string[] = [];
    if (cmd.mode === "random") {
      for (const u of from) { const c = this.byUser.get(u); if (c) senders.push(c); }
      for (const u of to) heads.push(sendFrame(u));
    } else {
      from.forEach((u, i) => { const c = this.byUser.get(u); if (c && to[i]) { senders.push(c); heads.push(sendFrame(to[i]!)); } });
    }
    if (senders.length === 0) return { sent: 0, error: "no senders" };
    const rate = cmd.rate as number;
    const total = Math.round((rate * cmd.durationMs) / 1000);
    let sent = 0, skipped = 0, maxBehind = 0, k = 0;
    const start = now();
    await new Promise<void>((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor(((now() - start) * rate) / 1000));
        if (due - sent > maxBehind) maxBehind = due - sent;
        while (sent < due) {
          let c: Conn, head: string;
          if (cmd.mode === "random") {
            c = senders[(Math.random() * senders.length) | 0]!;
            head = heads[(Math.random() * heads.length) | 0]!;
          } else { c = senders[k]!; head = heads[k]!; k = (k + 1) % senders.length; }
          sent++;
          if (!c.open) { skipped++; continue; }
          c.ws.send(head + now() + "}}");
        }
        if (sent >= total) { clearInterval(timer); resolve(); }
      };
      const timer = setInterval(tick, 1);
    });
    const elapsed = now() - start;
    return { sent: sent - skipped, skipped, elapsedMs: elapsed, maxBehind };
  }

  async join(cmd: any) {
    // By user prefix, not by id: several connections may share one user id.
    const list = this.conns.filter((c) => c.open && c.user.startsWith(cmd.prefix));
    const t0 = now();
    let ok = 0;
    const frame = (id: string) => JSON.stringify({ type: "join", room: cmd.room, id });
    await pool(list, cmd.concurrency ?? 100, async (c) => {
      if (await waitAck(c, "j", frame("j"), cmd.timeoutMs ?? 30000)) ok++;
    });
    return { joined: ok, failed: list.length - ok, ms: now() - t0 };
  }

  stats(cmd: any) {
    const out = {
      open: this.conns.reduce((n, c) => n + (c.open ? 1 : 0), 0),
      direct: { hist: this.direct.sparse(), n: this.direct.n, max: this.direct.max, min: this.direct.n ? this.direct.min : 0, sum: this.direct.sum },
      room: { hist: this.room.sparse(), n: this.room.n, max: this.room.max, min: this.room.n ? this.room.min : 0, sum: this.room.sum, last: this.roomLast },
      errors: { ...this.errors },
      closes: { ...this.closes },
      roomEvents: this.roomEvents,
      other: this.other,
      rss: process.memoryUsage().rss,
    };
    if (cmd.reset) {
      this.direct.reset();
      this.room.reset();
      this.roomLast = 0;
      this.roomEvents = 0;
      this.other = 0;
      for (const k of Object.keys(this.errors)) delete this.errors[k];
    }
    return out;
  }

  async closeAll() {
    const open = this.conns.filter((c) => c.open);
    await Promise.race([
      Promise.all(open.map((c) => new Promise<void>((resolve) => {
        const prev = c.ws.onclose;
        c.ws.onclose = (ev) => { (prev as any)?.call(c.ws, ev); resolve(); };
        try { c.ws.close(1000); } catch { resolve(); }
      }))),
      Bun.sleep(15000),
    ]);
    const stillOpen = this.conns.filter((c) => c.open).length;
    this.conns.length = 0;
    this.byUser.clear();
    for (const k of Object.keys(this.closes)) delete this.closes[k];
    return { closed: open.length - stillOpen, stillOpen };
  }

  async handle(cmd: any): Promise<Record<string, unknown>> {
    switch (cmd.cmd) {
      case "mint": return this.mint(cmd);
      case "connect": return this.connect(cmd);
      case "send": return this.send(cmd);
      case "join": return this.join(cmd);
      case "publish": {
        const c = this.byUser.get(cmd.user);
        if (!c?.open) return { error: "no such connection " + cmd.user };
        const t = now();
        c.ws.send(`{"type":"publish","room":${JSON.stringify(cmd.room)},"data":{"r":${t}}}`);
        return { t };
      }
      case "stats": return this.stats(cmd);
      case "close": return this.closeAll();
      case "ping": return { pong: true };
      case "exit": setTimeout(() => process.exit(0), 10); return {};
      default: return { error: "unknown command " + cmd.cmd };
    }
  }
}

const gen = new Generator();
for await (const line of console) {
  if (!line.trim()) continue;
  let cmd: any;
  try { cmd = JSON.parse(line); } catch { reply({ error: "bad json" }); continue; }
  gen.handle(cmd).then(
    (r) => reply({ id: cmd.id, ...r }),
    (e) => reply({ id: cmd.id, error: String(e?.stack ?? e) }),
  );
}
// stdin closed: the orchestrator is gone, so nothing will ever stop us but ourselves.
process.exit(0);
