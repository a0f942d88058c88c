// One client connection as the model sees it: every frame it got, when, and the reply to each request.
export type Frame = Record<string, any>;

export interface Received {
  t: number;
  f: Frame;
}

export interface Reply {
  t: number;
  f: Frame;
}

let seq = 0;

export class ModelConn {
  readonly key: string;
  readonly ws: WebSocket;
  readonly received: Received[] = [];
  welcome: Frame | null = null;
  welcomeT = 0;
  /** Close as the client saw it; `byUs` when the test closed it. */
  closed: { t: number; code: number; byUs: boolean } | null = null;
  closeRequestedT: number | null = null;
  /** Requests in flight: id → resolver. */
  private waiting = new Map<string, (r: Reply | null) => void>();
  private welcomeWaiters: ((ok: boolean) => void)[] = [];
  private reqSeq = 0;

  constructor(
    readonly user: string,
    readonly gateway: number,
    url: string,
    readonly openedT: number,
    readonly since: string | undefined,
  ) {
    this.key = `c${++seq}`;
    this.ws = new WebSocket(url);
    this.ws.onmessage = (ev) => {
      const t = performance.now();
      if (typeof ev.data !== "string") {
        this.received.push({ t, f: { type: "__binary__" } });
        return;
      }
      let f: Frame;
      try {
        f = JSON.parse(ev.data);
      } catch {
        f = { type: "__unparseable__", text: String(ev.data).slice(0, 200) };
      }
      if (f.type === "welcome" && !this.welcome) {
        this.welcome = f;
        this.welcomeT = t;
        for (const w of this.welcomeWaiters.splice(0)) w(true);
      }
      this.received.push({ t, f });
      if (typeof f.id === "string" && f.type !== "message") {
        const w = this.waiting.get(f.id);
        if (w) {
          this.waiting.delete(f.id);
          w({ t, f });
        }
      }
    };
    this.ws.onclose = (ev) => {
      this.closed = { t: performance.now(), code: ev.code, byUs: this.closeRequestedT !== null };
      for (const w of this.welcomeWaiters.splice(0)) w(false);
      for (const w of this.waiting.values()) w(null);
      this.waiting.clear();
    };
  }

  get open(): boolean {
    return this.welcome !== null && this.closed === null && this.closeRequestedT === null;
  }

  /** Resolves true once welcomed, false on close or timeout. */
  welcomed(timeoutMs: number): Promise<boolean> {
    if (this.welcome) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.welcomeWaiters.push((ok) => {
        clearTimeout(t);
        resolve(ok);
      });
    });
  }

  /** Sends a frame with an id; resolves with its reply, or null if the connection closed first or it timed out. */
  request(frame: Frame, timeoutMs: number): { id: string; sentT: number; reply: Promise<Reply | null> } {
    const id = `${this.key}.${++this.reqSeq}`;
    const sentT = performance.now();
    const reply = new Promise<Reply | null>((resolve) => {
      // A request still unanswered after timeoutMs on an open connection is itself a finding: mark it.
      const t = setTimeout(() => {
        if (this.waiting.delete(id)) resolve(this.closed ? null : { t: performance.now(), f: { type: "__timeout__" } });
      }, timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
    });
    try {
      this.ws.send(JSON.stringify({ ...frame, id }));
    } catch {
      // Closed under us: the close handler resolves the request with null.
    }
    return { id, sentT, reply };
  }

  sendRaw(data: string | Uint8Array) {
    try {
      this.ws.send(data);
    } catch {}
  }

  close() {
    if (this.closeRequestedT === null) this.closeRequestedT = performance.now();
    try {
      this.ws.close(1000, "bye");
    } catch {}
  }

  /** Resolves when the close event arrived (bounded). */
  async closedEvent(timeoutMs: number): Promise<boolean> {
    const until = performance.now() + timeoutMs;
    while (!this.closed && performance.now() < until) await Bun.sleep(10);
    return this.closed !== null;
  }
}
