// A set of load-generator processes, with the fan-out helpers every scenario needs: spread a
// user range over them, merge their latency histograms, wait until deliveries stop arriving.
import { Hist } from "./hist.ts";
import { LoadGen } from "./loadgen-client.ts";

export interface Range { prefix: string; from: number; count: number; mod?: number }
export interface Auth { secret: string; rooms?: string[] }

export interface Merged {
  direct: Hist;
  room: Hist;
  roomLast: number;
  open: number;
  errors: Record<string, number>;
  closes: Record<string, number>;
  roomEvents: number;
  rss: number[];
}

export class Fleet {
  private constructor(readonly gens: LoadGen[]) {}

  static async spawn(n: number, tag = "lg"): Promise<Fleet> {
    const gens = Array.from({ length: n }, (_, i) => new LoadGen(`${tag}${i}`));
    await Promise.all(gens.map((g) => g.request({ cmd: "ping" }, 15000)));
    return new Fleet(gens);
  }

  pids(): number[] { return this.gens.map((g) => g.pid); }

  /** Splits a range into n contiguous parts, in order. */
  static split(r: Range, n: number): Range[] {
    const out: Range[] = [];
    const base = Math.floor(r.count / n);
    let from = r.from;
    for (let i = 0; i < n; i++) {
      const count = base + (i < r.count % n ? 1 : 0);
      out.push({ ...r, from, count });
      from += count;
    }
    return out;
  }

  /**
   * Connects `r` spread over the given load generators (all of them by default): tokens are
   * minted first on every process, then the connect phase alone is timed, wall clock.
   */
  async connect(r: Range, urls: string[], auth: Auth | null, gens: LoadGen[] = this.gens, concurrency = 200) {
    const parts = Fleet.split(r, gens.length);
    if (auth) await Promise.all(gens.map((g, i) => g.request({ cmd: "mint", users: parts[i], secret: auth.secret, rooms: auth.rooms })));
    const t0 = performance.now();
    const res = await Promise.all(gens.map((g, i) => g.request({ cmd: "connect", users: parts[i], urls, auth: !!auth, concurrency })));
    const ms = performance.now() - t0;
    const failures: Record<string, number> = {};
    for (const x of res) for (const [k, v] of Object.entries(x.failures as Record<string, number>)) failures[k] = (failures[k] ?? 0) + v;
    return {
      connected: res.reduce((n, x) => n + x.connected, 0),
      failed: res.reduce((n, x) => n + x.failed, 0),
      failures,
      ms,
    };
  }

  async stats(reset = false, gens: LoadGen[] = this.gens): Promise<Merged> {
    const all = await Promise.all(gens.map((g) => g.request({ cmd: "stats", reset })));
    const m: Merged = { direct: new Hist(), room: new Hist(), roomLast: 0, open: 0, errors: {}, closes: {}, roomEvents: 0, rss: [] };
    for (const s of all) {
      m.direct.merge(s.direct.hist, s.direct.n, s.direct.max, s.direct.n ? s.direct.min : Infinity, s.direct.sum);
      m.room.merge(s.room.hist, s.room.n, s.room.max, s.room.n ? s.room.min : Infinity, s.room.sum);
      m.roomLast = Math.max(m.roomLast, s.room.last);
      m.open += s.open;
      m.roomEvents += s.roomEvents;
      m.rss.push(s.rss);
      for (const [k, v] of Object.entries(s.errors as Record<string, number>)) m.errors[k] = (m.errors[k] ?? 0) + v;
      for (const [k, v] of Object.entries(s.closes as Record<string, number>)) m.closes[k] = (m.closes[k] ?? 0) + v;
    }
    return m;
  }

  /**
   * Polls until `count(stats)` reaches `want` or stops growing for `quietMs` (then whatever is
   * missing is lost), bounded by `maxMs`.
   */
  async settle(count: (m: Merged) => number, want: number, quietMs = 1500, maxMs = 15000): Promise<Merged> {
    const t0 = Date.now();
    let last = -1, lastChange = Date.now();
    for (;;) {
      const m = await this.stats(false);
      const n = count(m);
      if (n >= want) return m;
      if (n !== last) { last = n; lastChange = Date.now(); }
      if (Date.now() - lastChange > quietMs || Date.now() - t0 > maxMs) return m;
      await Bun.sleep(100);
    }
  }

  async close(): Promise<void> { await Promise.all(this.gens.map((g) => g.request({ cmd: "close" }, 60000).catch(() => {}))); }

  async exit(): Promise<void> { await Promise.all(this.gens.map((g) => g.exit())); }
}
