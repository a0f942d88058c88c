// A TCP proxy that adds distance: a one-way delay per direction (with optional jitter), and a
// partition switch. This kernel has no netem, so tests, the bench and `bun run cluster` put one of
// these between a region and the Redis primary.
//
// Bytes keep their order: a chunk is released no earlier than the chunk before it, so jitter delays
// but never reorders (TCP would not reorder either). A "stall" partition holds bytes and opens no new
// upstream connection until heal(), like a link that drops packets while TCP keeps retransmitting;
// a "reset" partition closes every link and refuses new ones until heal().
import type { Socket, TCPSocketListener } from "bun";

export interface DelayProxyOptions {
  target: { host: string; port: number };
  /** Listen address; port 0 (default) picks a free one. */
  host?: string;
  port?: number;
  /** One-way delay client→target, ms (fractions allowed; below ~1 ms timers round up). */
  upMs?: number;
  /** One-way delay target→client, ms. */
  downMs?: number;
  /** Extra delay per chunk drawn uniformly from [0, jitterMs). */
  jitterMs?: number;
  /** Random source for jitter (tests pass a seeded one). */
  random?: () => number;
}

export type PartitionMode = "stall" | "reset";

export interface DelaySettings { upMs: number; downMs: number; jitterMs: number }

export interface DelayProxy {
  readonly host: string;
  readonly port: number;
  readonly target: { host: string; port: number };
  settings(): DelaySettings;
  /** Changes delays for bytes that arrive from now on (bytes already queued keep theirs). */
  set(s: Partial<DelaySettings>): void;
  partition(mode: PartitionMode): void;
  heal(): void;
  state(): "open" | PartitionMode;
  /** Open client connections. */
  connections(): number;
  /** Bytes forwarded so far, per direction. */
  bytes(): { up: number; down: number };
  close(): void;
}

interface Chunk { due: number; data: Uint8Array }

/** One direction of one link: a queue released in order at each chunk's due time. */
class Lane {
  private q: Chunk[] = [];
  private head = 0;
  private lastDue = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private out: Uint8Array[] = []; // accepted by us, not yet by the kernel (backpressure)
  sink: Socket<unknown> | null = null;
  forwarded = 0;

  constructor(private readonly delay: () => number, private readonly held: () => boolean) {}

  push(data: Uint8Array): void {
    // Bun reuses the buffer it hands to data(): copy before queueing.
    const due = Math.max(performance.now() + this.delay(), this.lastDue);
    this.lastDue = due;
    this.q.push({ due, data: new Uint8Array(data) });
    this.pump();
  }

  pump = (): void => {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    if (this.held() || !this.sink) return;
    const now = performance.now();
    while (this.head < this.q.length && this.q[this.head]!.due <= now) {
      this.write(this.q[this.head]!.data);
      this.q[this.head++] = undefined as unknown as Chunk;
    }
    if (this.head === this.q.length) { this.q = []; this.head = 0; return; }
    if (this.head > 1024) { this.q = this.q.slice(this.head); this.head = 0; }
    this.timer = setTimeout(this.pump, Math.max(0, this.q[this.head]!.due - now));
  };

  private write(data: Uint8Array): void {
    this.forwarded += data.length;
    if (this.out.length) { this.out.push(data); return; }
    const n = this.sink!.write(data);
    if (n < data.length) this.out.push(data.subarray(Math.max(0, n)));
  }

  /** The sink can take more (its drain event). */
  drain(): void {
    while (this.out.length && this.sink) {
      const d = this.out[0]!;
      const n = this.sink.write(d);
      if (n < d.length) { this.out[0] = d.subarray(Math.max(0, n)); return; }
      this.out.shift();
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.q = [];
    this.out = [];
  }
}

interface Link { client: Socket<Link>; upstream: Socket<Link> | null; up: Lane; down: Lane; closed: boolean }

export function startDelayProxy(opts: DelayProxyOptions): DelayProxy {
  const s: DelaySettings = { upMs: opts.upMs ?? 0, downMs: opts.downMs ?? 0, jitterMs: opts.jitterMs ?? 0 };
  const random = opts.random ?? Math.random;
  let mode: "open" | PartitionMode = "open";
  const links = new Set<Link>();
  const totals = { up: 0, down: 0 };
  const jitter = () => (s.jitterMs > 0 ? random() * s.jitterMs : 0);
  const held = () => mode === "stall";

  const closeLink = (l: Link) => {
    if (l.closed) return;
    l.closed = true;
    links.delete(l);
    totals.up += l.up.forwarded;
    totals.down += l.down.forwarded;
    l.up.stop();
    l.down.stop();
    l.client.end();
    l.upstream?.end();
  };

  const dial = (l: Link) => {
    Bun.connect<Link>({
      hostname: opts.target.host,
      port: opts.target.port,
      data: l,
      socket: {
        open(sock) {
          if (l.closed) { sock.end(); return; }
          l.upstream = sock;
          l.up.sink = sock;
          l.up.pump();
        },
        data(_sock, d) { l.down.push(d); },
        drain() { l.up.drain(); },
        close() { closeLink(l); },
        error() { closeLink(l); },
        connectError() { closeLink(l); },
      },
    }).catch(() => closeLink(l));
  };

  const listener: TCPSocketListener<Link> = Bun.listen<Link>({
    hostname: opts.host ?? "127.0.0.1",
    port: opts.port ?? 0,
    socket: {
      open(client) {
        if (mode === "reset") { client.end(); return; }
        const l: Link = {
          client,
          upstream: null,
          up: new Lane(() => s.upMs + jitter(), held),
          down: new Lane(() => s.downMs + jitter(), held),
          closed: false,
        };
        l.down.sink = client as Socket<unknown>;
        client.data = l;
        links.add(l);
        // During a stall the SYN "is lost": the upstream connection is made at heal().
        if (mode === "open") dial(l);
      },
      data(client, d) { if (client.data) client.data.up.push(d); },
      drain(client) { client.data?.down.drain(); },
      close(client) { if (client.data) closeLink(client.data); },
      error(client) { if (client.data) closeLink(client.data); },
    },
  });

  return {
    host: listener.hostname,
    port: listener.port,
    target: opts.target,
    settings: () => ({ ...s }),
    set(next) {
      for (const k of ["upMs", "downMs", "jitterMs"] as const) {
        const v = next[k];
        if (v === undefined) continue;
        if (!Number.isFinite(v) || v < 0) throw new RangeError(`${k} must be a number ≥ 0, got ${v}`);
        s[k] = v;
      }
    },
    partition(m) {
      mode = m;
      if (m === "reset") for (const l of [...links]) closeLink(l);
    },
    heal() {
      if (mode === "open") return;
      const was = mode;
      mode = "open";
      if (was !== "stall") return;
      for (const l of links) {
        if (!l.upstream) dial(l);
        l.up.pump();
        l.down.pump();
      }
    },
    state: () => mode,
    connections: () => links.size,
    bytes() {
      let up = totals.up, down = totals.down;
      for (const l of links) { up += l.up.forwarded; down += l.down.forwarded; }
      return { up, down };
    },
    close() {
      for (const l of [...links]) closeLink(l);
      listener.stop(true);
    },
  };
}

/** `bun harness/delay-proxy.ts --target host:port [--port N] [--up ms] [--down ms] [--jitter ms]`. */
async function main(argv: string[]): Promise<void> {
  const get = (f: string) => { const i = argv.indexOf(f); return i >= 0 ? argv[i + 1] : undefined; };
  const target = get("--target");
  const m = target ? /^(.+):(\d+)$/.exec(target) : null;
  if (!m) {
    console.error("usage: bun harness/delay-proxy.ts --target host:port [--port N] [--up ms] [--down ms] [--jitter ms]");
    process.exit(2);
  }
  const num = (f: string) => (get(f) === undefined ? undefined : Number(get(f)));
  const p = startDelayProxy({ target: { host: m[1]!, port: Number(m[2]) }, port: num("--port"), upMs: num("--up"), downMs: num("--down"), jitterMs: num("--jitter") });
  console.log(JSON.stringify({ event: "ready", host: p.host, port: p.port, target: p.target, ...p.settings() }));
  // Control on stdin, one word per line: stall | reset | heal | up=MS | down=MS | jitter=MS.
  for await (const line of console) {
    const cmd = line.trim();
    const kv = /^(up|down|jitter)=([\d.]+)$/.exec(cmd);
    if (cmd === "stall" || cmd === "reset") p.partition(cmd);
    else if (cmd === "heal") p.heal();
    else if (kv) p.set({ [`${kv[1]}Ms`]: Number(kv[2]) });
    else { console.error(`unknown command ${cmd}`); continue; }
    console.log(JSON.stringify({ event: "state", state: p.state(), ...p.settings() }));
  }
  p.close();
}

if (import.meta.main) await main(process.argv.slice(2));
