// A test WebSocket client that queues every frame so tests can await the one they want.
export type Frame = Record<string, any>;

export class TestClient {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  closed: { code: number; reason: string } | null = null;
  private closeWaiters: ((c: { code: number; reason: string }) => void)[] = [];
  welcome: Frame | null = null;

  constructor(url: string, init?: { headers?: Record<string, string> }) {
    this.ws = new WebSocket(url, init as any);
    this.ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return;
      const f = JSON.parse(ev.data) as Frame;
      if (f.type === "welcome" && !this.welcome) this.welcome = f;
      const i = this.waiters.findIndex((w) => w.pred(f));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        w!.resolve(f);
      } else this.frames.push(f);
    };
    this.ws.onclose = (ev) => {
      this.closed = { code: ev.code, reason: ev.reason };
      for (const w of this.closeWaiters.splice(0)) w(this.closed);
    };
  }

  /** Resolves with the first queued or future frame matching pred. */
  next(pred: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    const i = this.frames.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.frames.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (f: Frame) => { clearTimeout(t); resolve(f); } };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timeout waiting for frame; queued: ${JSON.stringify(this.frames).slice(0, 500)}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  nextType(type: string, timeoutMs?: number) { return this.next((f) => f.type === type, timeoutMs); }

  /** Sends a frame with a fresh id and waits for the ack/error/reply carrying it. */
  private seq = 0;
  async request(frame: Frame, timeoutMs?: number): Promise<Frame> {
    const id = frame.id ?? `r${++this.seq}`;
    this.send({ ...frame, id });
    return this.next((f) => f.id === id && f.type !== "message", timeoutMs);
  }

  send(frame: Frame | string) { this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)); }

  waitClose(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("timeout waiting for close")), timeoutMs);
      this.closeWaiters.push((c) => { clearTimeout(t); resolve(c); });
    });
  }

  close() { try { this.ws.close(); } catch {} }
}

/** Opens a client and waits for its welcome frame (or its close, on refusal). */
export async function connect(url: string, init?: { headers?: Record<string, string> }, timeoutMs = 5000): Promise<TestClient> {
  const c = new TestClient(url, init);
  // A refused upgrade closes at once: say so then, not after the whole timeout.
  let welcomed = false;
  const refused = c.waitClose(timeoutMs + 1000).then(
    (e) => (welcomed ? new Promise<never>(() => {}) : Promise.reject(new Error(`closed before welcome: ${e.code} ${e.reason}`))),
    () => new Promise<never>(() => {}),
  );
  refused.catch(() => {});
  await Promise.race([c.nextType("welcome", timeoutMs).then(() => { welcomed = true; }), refused]);
  return c;
}
