// The wsgate client: one logical session over a succession of WebSocket connections.
// It owns reconnection (backoff + close-code policy), resume by offset, room re-joins,
// request/reply correlation by `id`, idle pings and the bounded queue used while disconnected.
import { CLIENT_ABANDON, CLOSE } from "../protocol/codes.ts";
import { backoffDelay } from "./backoff.ts";
import { Emitter } from "./emitter.ts";
import { UnauthorizedError, WsgateError } from "./errors.ts";
import { OffsetTracker } from "./offsets.ts";
import type {
  AckFrame,
  ClientEvents,
  ClientFrame,
  ClientOptions,
  ClientState,
  DebugEvent,
  IncomingMessage,
  Json,
  OpenInfo,
  PongFrame,
  RoomPresenceFrame,
  ServerFrame,
  UsersPresenceFrame,
  WebSocketCtor,
  WebSocketLike,
  WelcomeFrame,
} from "./types.ts";
import { gatewayUrl, redactUrl } from "./url.ts";

interface Pending {
  id: string;
  frame: ClientFrame & { id: string };
  resolve: (f: any) => void;
  reject: (e: WsgateError) => void;
  timer: ReturnType<typeof setTimeout>;
  /** The connection generation it was written to; 0 while queued. */
  sentOn: number;
}

interface Queued {
  text: string;
  id?: string;
}

// Frames whose repetition is harmless: they are written again after a reconnect instead of failing.
const IDEMPOTENT = new Set(["join", "leave", "presence", "ping"]);

const OPEN = 1;

/**
 * `In` types the `data` of incoming messages (default: any JSON value); what you send is typed
 * per call (`send<T>`), so interfaces are accepted as they are.
 */
export class WsgateClient<In = Json> extends Emitter<ClientEvents<In>> {
  /** Current connection state. */
  state: ClientState = "idle";
  /** The last `welcome` received (null before the first). */
  welcome: WelcomeFrame | null = null;

  private readonly opts: ClientOptions;
  private readonly Ctor: WebSocketCtor;
  private readonly urls: string[];
  private urlIndex = 0;
  private readonly offsets: OffsetTracker;
  private readonly rooms = new Set<string>();
  private readonly pending = new Map<string, Pending>();
  private queue: Queued[] = [];
  private ws: WebSocketLike | null = null;
  /** Bumped for every connection attempt so late events from an abandoned socket are ignored. */
  private generation = 0;
  private attempt = 0;
  /** Attempts since the last `welcome`, for maxAttempts. */
  private attemptsSinceOpen = 0;
  private everOpened = false;
  private stopped = true;
  private askedSince: string | undefined;
  private seq = 0;
  private lastSent = 0;
  private lastReceived = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;

  constructor(opts: ClientOptions) {
    super();
    this.opts = opts;
    const Ctor = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
    if (!Ctor) throw new TypeError("no WebSocket implementation: pass options.WebSocket (e.g. from the `ws` package)");
    this.Ctor = Ctor;
    if (opts.token !== undefined && opts.user !== undefined) throw new TypeError("pass either token or user, not both");
    if (opts.tokenIn === "header" && typeof WebSocket !== "undefined" && typeof document !== "undefined") {
      throw new TypeError('tokenIn "header" is not possible in browsers');
    }
    this.urls = Array.isArray(opts.url) ? [...opts.url] : [opts.url];
    if (this.urls.length === 0) throw new TypeError("url: at least one gateway URL is needed");
    for (const u of this.urls) gatewayUrl(u); // validate now rather than on the first attempt
    this.offsets = new OffsetTracker(opts.dedupeWindow ?? 4096, opts.since);
    // Start on the next microtask so listeners added right after `new` see "connecting" too.
    if (opts.autoConnect !== false) {
      queueMicrotask(() => {
        if (this.state === "idle") this.connect();
      });
    }
  }

  /** Offset of the newest direct message seen: persist it to resume in a later session. */
  get lastOffset(): string | undefined {
    return this.offsets.last;
  }

  /** Rooms this client is in (or will re-join after a reconnect). */
  get joinedRooms(): string[] {
    return [...this.rooms];
  }

  /** Frames waiting for a connection. */
  get queued(): number {
    return this.queue.length;
  }

  /** Starts connecting; a no-op while already connecting or connected. */
  connect(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.attemptsSinceOpen = 0;
    void this.startAttempt();
  }

  /** Closes for good: no reconnect, every waiting request fails with `closed`. */
  close(code = 1000, reason = "client closed"): void {
    if (this.stopped && this.state !== "open") {
      this.failAll("closed", "client closed");
      this.setState("closed");
      return;
    }
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    this.generation++;
    if (ws) {
      try {
        ws.close(code, reason);
      } catch {}
    }
    this.failAll("closed", "client closed");
    this.setState("closed");
    this.emit("closed", { code, reason });
  }

  /** Resolves at the next `open` (at once if open now). */
  waitOpen(timeoutMs = 10_000): Promise<OpenInfo | null> {
    if (this.state === "open") return Promise.resolve(null);
    if (this.state === "closed") return Promise.reject(new WsgateError("closed", "client is closed"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        offClosed();
        reject(new WsgateError("timeout", `not connected within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.once("open", (info) => {
        clearTimeout(timer);
        offClosed();
        resolve(info);
      });
      const offClosed = this.once("closed", (c) => {
        clearTimeout(timer);
        off();
        reject(new WsgateError("closed", `closed (${c.code} ${c.reason})`));
      });
    });
  }

  // ---- requests -------------------------------------------------------------------------------

  /** Direct message to one or more users; the ack carries their offsets when history is on. */
  send<T>(to: string | string[], data: T): Promise<AckFrame> {
    return this.request<AckFrame>({ type: "send", to, data });
  }

  /** Joins a room; it is joined again automatically after every reconnect. */
  join(room: string): Promise<AckFrame> {
    this.rooms.add(room);
    return this.request<AckFrame>({ type: "join", room }).catch((err: WsgateError) => {
      // The gateway said no: stop re-joining it. Local failures (timeout, …) keep the intent.
      if (!["timeout", "queue_full", "closed", "disconnected"].includes(err.code)) this.rooms.delete(room);
      throw err;
    });
  }

  leave(room: string): Promise<AckFrame> {
    this.rooms.delete(room);
    return this.request<AckFrame>({ type: "leave", room });
  }

  publish<T>(room: string, data: T): Promise<AckFrame> {
    return this.request<AckFrame>({ type: "publish", room, data });
  }

  /** Who of these users is online, on which regions. */
  presence(users: string | string[]): Promise<UsersPresenceFrame> {
    return this.request<UsersPresenceFrame>({ type: "presence", users: Array.isArray(users) ? users : [users] });
  }

  /** Who is in a room (the caller must be allowed that room). */
  roomPresence(room: string): Promise<RoomPresenceFrame> {
    return this.request<RoomPresenceFrame>({ type: "presence", room });
  }

  ping(): Promise<PongFrame> {
    return this.request<PongFrame>({ type: "ping" });
  }

  /** Sends any client frame with a fresh `id`; settles on its reply, its error, or a timeout. */
  request<T = ServerFrame<In>>(frame: ClientFrame, timeoutMs = this.opts.requestTimeoutMs ?? 10_000): Promise<T> {
    if (this.stopped && this.state === "closed") {
      return Promise.reject(new WsgateError("closed", "client is closed"));
    }
    const id = `c${++this.seq}`;
    const full = { ...frame, id } as ClientFrame & { id: string };
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.queue = this.queue.filter((q) => q.id !== id);
        reject(new WsgateError("timeout", `no reply to ${frame.type} within ${timeoutMs} ms`, id));
      }, timeoutMs);
      const p: Pending = { id, frame: full, resolve, reject, timer, sentOn: 0 };
      const how = this.write(JSON.stringify(full), id);
      if (how === "full") {
        clearTimeout(timer);
        reject(new WsgateError("queue_full", `send queue full (${this.maxQueue} frames waiting for a connection)`, id));
        return;
      }
      if (how === "sent") p.sentOn = this.generation;
      this.pending.set(id, p);
    });
  }

  /** Fire and forget (no `id`, no ack). Throws `queue_full` when it cannot even be queued. */
  sendFrame(frame: ClientFrame): void {
    if (this.stopped && this.state === "closed") throw new WsgateError("closed", "client is closed");
    if (this.write(JSON.stringify(frame)) === "full") {
      throw new WsgateError("queue_full", `send queue full (${this.maxQueue} frames waiting for a connection)`);
    }
  }

  // ---- connection lifecycle ---------------------------------------------------------------------

  private get maxQueue(): number {
    return this.opts.maxQueue ?? 1000;
  }

  private isOpen(): boolean {
    return this.state === "open" && this.ws !== null && this.ws.readyState === OPEN;
  }

  /** Writes now when open, else queues (bounded). */
  private write(text: string, id?: string): "sent" | "queued" | "full" {
    if (this.isOpen()) {
      try {
        this.ws!.send(text);
        this.lastSent = Date.now();
        this.trace({ type: "out", text });
        return "sent";
      } catch {
        // The socket is going down; its close event will follow. Keep the frame for the next one.
      }
    }
    if (this.queue.length >= this.maxQueue) return "full";
    this.queue.push(id === undefined ? { text } : { text, id });
    return "queued";
  }

  private trace(event: DebugEvent): void {
    if (!this.opts.debug) return;
    try {
      this.opts.debug(event);
    } catch {}
  }

  private setState(next: ClientState): void {
    const prev = this.state;
    if (prev === next) return;
    this.state = next;
    this.emit("state", next, prev);
  }

  private async startAttempt(): Promise<void> {
    const gen = ++this.generation;
    this.attemptsSinceOpen++;
    this.setState(this.everOpened || this.attempt > 0 ? "reconnecting" : "connecting");
    let token: string | undefined;
    try {
      token = typeof this.opts.token === "function" ? await this.opts.token() : this.opts.token;
    } catch (err) {
      if (gen !== this.generation || this.stopped) return;
      if (err instanceof UnauthorizedError) {
        // The application says this user may not connect: retrying cannot help.
        this.emit("error", err);
        this.ws = null;
        this.generation++;
        this.recoverInFlight(gen);
        this.stopFor(1008, `unauthorized: ${err.message}`);
        return;
      }
      this.emit("error", new WsgateError("token", `token function failed: ${(err as Error)?.message ?? err}`));
      this.afterClose(1006, "token function failed", gen);
      return;
    }
    if (gen !== this.generation || this.stopped) return;

    this.askedSince = this.offsets.last;
    const header = this.opts.tokenIn === "header" && token !== undefined;
    let ws: WebSocketLike;
    try {
      const url = gatewayUrl(this.urls[this.urlIndex % this.urls.length]!, {
        ...(token !== undefined && !header ? { token } : {}),
        ...(this.opts.user !== undefined ? { user: this.opts.user } : {}),
        ...(this.askedSince !== undefined ? { since: this.askedSince } : {}),
      });
      this.trace({ type: "connect", url: redactUrl(url), attempt: this.attemptsSinceOpen });
      ws = header ? new this.Ctor(url, { headers: { authorization: `Bearer ${token}` } }) : new this.Ctor(url);
    } catch (err) {
      this.emit("error", new WsgateError("connect", `cannot open WebSocket: ${(err as Error)?.message ?? err}`));
      this.afterClose(1006, "cannot open WebSocket", gen);
      return;
    }
    this.ws = ws;
    this.connectTimer = setTimeout(() => {
      this.abandon(gen, 1006, `no welcome within ${this.opts.connectTimeoutMs ?? 10_000} ms`);
    }, this.opts.connectTimeoutMs ?? 10_000);

    ws.onmessage = (ev) => {
      if (gen !== this.generation) return;
      this.lastReceived = Date.now();
      if (typeof ev.data !== "string") return;
      let frame: ServerFrame<In>;
      try {
        frame = JSON.parse(ev.data) as ServerFrame<In>;
      } catch {
        this.emit("error", new WsgateError("bad_frame", "gateway sent a frame that is not JSON"));
        return;
      }
      this.trace({ type: "in", frame });
      this.onFrame(frame, gen);
    };
    ws.onclose = (ev) => {
      if (gen !== this.generation) return;
      this.afterClose(ev.code, ev.reason, gen);
    };
    ws.onerror = () => {
      // A close event always follows; the decision is made there.
    };
  }

  /** Drops a socket we no longer trust and handles it as a close with the given code. */
  private abandon(gen: number, code: number, reason: string): void {
    if (gen !== this.generation) return;
    const ws = this.ws;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(CLIENT_ABANDON, reason.slice(0, 120));
      } catch {}
    }
    this.afterClose(code, reason, gen);
  }

  private onFrame(frame: ServerFrame<In>, gen: number): void {
    this.emit("frame", frame);
    switch (frame.type) {
      case "welcome":
        this.onWelcome(frame, gen);
        return;
      case "message":
        this.onMessage(frame);
        return;
      case "room":
        this.emit("room", frame);
        return;
      case "presence":
        this.settle(frame.id, frame);
        this.emit("presence", frame);
        return;
      case "ack":
      case "pong":
        this.settle(frame.id, frame);
        return;
      case "error": {
        const p = frame.id !== undefined ? this.pending.get(frame.id) : undefined;
        const err = new WsgateError(frame.code, frame.message, frame.id);
        if (p) {
          this.pending.delete(p.id);
          clearTimeout(p.timer);
          p.reject(err);
        } else this.emit("error", err);
        return;
      }
    }
  }

  private onWelcome(w: WelcomeFrame, gen: number): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    const reconnected = this.everOpened;
    this.everOpened = true;
    this.attempt = 0;
    this.attemptsSinceOpen = 0;
    this.trace({ type: "open", gateway: w.gateway, region: w.region });
    this.welcome = w;
    this.lastSent = this.lastReceived = Date.now();
    this.setState("open");
    this.startPings(w.heartbeat, gen);

    // Re-join first so room traffic resumes before queued frames go out. Rooms whose join is
    // already queued (called while offline, or in flight when the last connection dropped) are skipped.
    const queuedJoins = new Set<string>();
    for (const q of this.queue) {
      const p = q.id !== undefined ? this.pending.get(q.id) : undefined;
      if (p && p.frame.type === "join") queuedJoins.add(p.frame.room);
    }
    if (reconnected) {
      for (const room of this.rooms) {
        if (queuedJoins.has(room)) continue;
        this.request<AckFrame>({ type: "join", room }).catch((err: WsgateError) => {
          if (err.code !== "timeout" && err.code !== "disconnected" && err.code !== "closed") this.rooms.delete(room);
          this.emit("error", new WsgateError(err.code, `re-join of ${room} failed: ${err.message}`, err.id));
        });
      }
    }
    this.flush(gen);
    this.emit("open", {
      welcome: w,
      reconnected,
      recovered: this.askedSince !== undefined ? w.recovered === true : undefined,
      replayed: w.replayed ?? 0,
    });
  }

  private flush(gen: number): void {
    const items = this.queue;
    this.queue = [];
    for (let i = 0; i < items.length; i++) {
      const q = items[i]!;
      if (!this.isOpen() || gen !== this.generation) {
        this.queue = items.slice(i).concat(this.queue);
        return;
      }
      this.ws!.send(q.text);
      this.lastSent = Date.now();
      this.trace({ type: "out", text: q.text });
      if (q.id !== undefined) {
        const p = this.pending.get(q.id);
        if (p) p.sentOn = gen;
      }
    }
  }

  private onMessage(m: IncomingMessage<In>): void {
    // Direct messages carry offsets; a replayed one we already have is dropped here.
    if ("to" in m && typeof m.offset === "string" && !this.offsets.record(m.offset)) return;
    this.emit("message", m);
  }

  private settle(id: string | undefined, frame: ServerFrame<In>): void {
    if (id === undefined) return;
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(frame);
  }

  private startPings(heartbeat: number, gen: number): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    const interval = this.opts.pingIntervalMs ?? (heartbeat > 0 ? heartbeat : 25_000);
    // Tick at half the interval so the gateway never sees us silent for a whole heartbeat.
    this.pingTimer = setInterval(() => {
      if (gen !== this.generation || !this.isOpen()) return;
      const now = Date.now();
      if (now - this.lastReceived > 2 * interval + 1000) {
        this.abandon(gen, CLOSE.heartbeat, "no traffic from the gateway");
        return;
      }
      if (now - this.lastSent >= interval / 2) {
        try {
          this.ws!.send('{"type":"ping"}');
          this.trace({ type: "out", text: '{"type":"ping"}' });
          this.lastSent = now;
        } catch {}
      }
    }, Math.max(50, Math.floor(interval / 2)));
  }

  private clearTimers(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.connectTimer) clearTimeout(this.connectTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.reconnectTimer = this.connectTimer = this.pingTimer = null;
  }

  /** Requests in flight on the lost connection: idempotent ones go out again, the others fail. */
  private recoverInFlight(gen: number): void {
    const again: Queued[] = [];
    for (const p of this.pending.values()) {
      if (p.sentOn !== gen) continue;
      p.sentOn = 0;
      if (IDEMPOTENT.has(p.frame.type)) {
        again.push({ text: JSON.stringify(p.frame), id: p.id });
      } else {
        this.pending.delete(p.id);
        clearTimeout(p.timer);
        p.reject(new WsgateError("disconnected", `connection lost before the ${p.frame.type} was acknowledged; it may or may not have been delivered`, p.id));
      }
    }
    this.queue = again.concat(this.queue);
  }

  private failAll(code: string, message: string): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new WsgateError(code, message, p.id));
    }
    this.pending.clear();
    this.queue = [];
  }

  private afterClose(code: number, reason: string, gen: number): void {
    if (gen !== this.generation) return;
    this.clearTimers();
    this.ws = null;
    this.generation++; // anything still arriving from that socket is now stale
    this.urlIndex++; // with several gateways, try the next one
    this.recoverInFlight(gen);
    this.trace({ type: "close", code, reason });
    if (this.stopped) return;

    const { delay, stop } = this.policy(code);
    if (stop) {
      this.emit("disconnect", { code, reason, willReconnect: false });
      this.stopFor(code, reason);
      return;
    }
    const cap = this.opts.maxAttempts;
    if (cap !== undefined && this.attemptsSinceOpen >= cap) {
      this.emit("disconnect", { code, reason, willReconnect: false });
      this.emit("error", new WsgateError("max_attempts", `gave up after ${cap} failed connection attempts (last close ${code}${reason ? ` ${reason}` : ""})`));
      this.stopFor(code, reason);
      return;
    }
    this.emit("disconnect", { code, reason, willReconnect: true });
    this.setState("reconnecting");
    this.emit("reconnecting", { attempt: this.attempt, delayMs: delay, code });
    this.trace({ type: "reconnect", attempt: this.attempt, delayMs: delay, code });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.startAttempt();
    }, delay);
  }

  /** Stops for good after a close the client will not retry. */
  private stopFor(code: number, reason: string): void {
    this.stopped = true;
    this.clearTimers();
    this.trace({ type: "stop", code, reason });
    this.failAll("closed", `connection closed (${code}${reason ? ` ${reason}` : ""})`);
    this.setState("closed");
    this.emit("closed", { code, reason });
  }

  /** No delay for the first retry after an open; back off if that one fails too (no tight loops). */
  private atOnce(): { delay: number; stop: boolean } {
    const delay = this.attempt === 0 ? 0 : backoffDelay(this.attempt, this.opts.backoff);
    this.attempt++;
    return { delay, stop: false };
  }

  /** What a close code means for us (PROTOCOL.md §3 close codes). */
  private policy(code: number): { delay: number; stop: boolean } {
    if (this.opts.reconnect === false) return { delay: 0, stop: true };
    // Replaced by a newer session or kicked: coming back would just fight it.
    if (code === CLOSE.replaced) return { delay: 0, stop: true };
    // Token expired: only worth retrying when we can get a new one.
    if (code === CLOSE.tokenExpired) {
      if (typeof this.opts.token !== "function") {
        this.emit("error", new WsgateError("token_expired", "token expired and no token function to renew it"));
        return { delay: 0, stop: true };
      }
      return this.atOnce();
    }
    // The gateway is draining. Its closes are already spread over the drain window; a random wait on
    // top keeps the clients closed in one tick from arriving together, and gives a proxy that has
    // not yet seen the drain one more check interval. A second failure backs off as usual.
    if (code === CLOSE.goingAway) {
      if (this.attempt > 0) return this.atOnce();
      this.attempt++;
      return { delay: Math.floor(Math.random() * (this.opts.goingAwayJitterMs ?? 2000)), stop: false };
    }
    const delay = backoffDelay(this.attempt, this.opts.backoff);
    this.attempt++;
    return { delay, stop: false };
  }
}

/** Creates a client and starts connecting (unless `autoConnect: false`). */
export function createClient<In = Json>(opts: ClientOptions): WsgateClient<In> {
  return new WsgateClient<In>(opts);
}
