// Wire types of PROTOCOL.md §3 as the client sees them, plus the SDK's own option and event types.

export type {
  Json,
  WelcomeFrame,
  DirectMessage,
  RoomMessage,
  BroadcastMessage,
  IncomingMessage,
  RoomEvent,
  UserPresence,
  UsersPresenceFrame,
  RoomPresenceFrame,
  PresenceFrame,
  AckFrame,
  PongFrame,
  ErrorFrame,
  ServerFrame,
  ClientFrame,
} from "../protocol/frames.ts";
import type { IncomingMessage, Json, PresenceFrame, RoomEvent, ServerFrame, WelcomeFrame } from "../protocol/frames.ts";

export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/**
 * A token, or a function asked for a fresh one before every connection attempt. A function that
 * throws UnauthorizedError stops the client; any other throw is retried with backoff.
 */
export type TokenSource = string | (() => string | Promise<string>);

/**
 * What the client is doing, for a `debug` hook: connection attempts (token redacted), opens, closes,
 * scheduled reconnects, give-ups, and every frame in and out.
 */
export type DebugEvent =
  | { type: "connect"; url: string; attempt: number }
  | { type: "open"; gateway: string; region: string }
  | { type: "close"; code: number; reason: string }
  | { type: "reconnect"; attempt: number; delayMs: number; code: number }
  | { type: "stop"; code: number; reason: string }
  | { type: "in"; frame: unknown }
  | { type: "out"; text: string };

/** The subset of the standard WebSocket constructor the SDK needs (browsers, Bun, Node 22+, or `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}
export type WebSocketCtor = new (url: string, protocolsOrInit?: any) => WebSocketLike;

export interface BackoffOptions {
  /** First retry delay ceiling, ms (default 250). */
  initialMs?: number;
  /** Ceiling for any retry delay, ms (default 15000). */
  maxMs?: number;
  /** Growth per failed attempt (default 2). */
  factor?: number;
}

export interface ClientOptions {
  /**
   * ws(s)://host/ws; an http(s) URL or a bare origin is turned into the /ws endpoint.
   * Several URLs (gateways without a load balancer in front): each reconnect tries the next one.
   */
  url: string | string[];
  /** JWT, or a function fetching a fresh one before each (re)connect. */
  token?: TokenSource;
  /** Dev mode only (`WSGATE_AUTH=none`): connect as this user via `?user=`. */
  user?: string;
  /**
   * Where the token travels. "query" (default) works everywhere; "header" sends
   * `Authorization: Bearer` and only works where the WebSocket constructor takes headers (Bun, `ws`).
   */
  tokenIn?: "query" | "header";
  /** Resume from this offset on the first connection (e.g. persisted from an earlier session). */
  since?: string;
  /** Reconnect after unexpected closes (default true). */
  reconnect?: boolean;
  backoff?: BackoffOptions;
  /** How long a request waits for its ack/error, ms (default 10000). */
  requestTimeoutMs?: number;
  /** How long to wait for `welcome` after starting a connection, ms (default 10000). */
  connectTimeoutMs?: number;
  /** Idle ping interval, ms; default: the `heartbeat` the gateway announces in `welcome`. */
  pingIntervalMs?: number;
  /** Frames kept while not connected (default 1000); past it, sends fail with `queue_full`. */
  maxQueue?: number;
  /** How many recent offsets to remember for duplicate removal (default 4096). */
  dedupeWindow?: number;
  /** WebSocket implementation; defaults to globalThis.WebSocket. */
  WebSocket?: WebSocketCtor;
  /** Start connecting from the constructor (default true). */
  autoConnect?: boolean;
  /**
   * Connection attempts in a row that may fail before the client gives up (state `closed`, an
   * `error` with code `max_attempts`). An attempt that reaches `welcome` resets the count. Default: no cap.
   */
  maxAttempts?: number;
  /**
   * After a 1001 (the gateway is draining), reconnect after a random delay in [0, this] ms so a
   * drained machine's clients reach the others spread out, not in one wave (default 2000).
   */
  goingAwayJitterMs?: number;
  /** Called for every DebugEvent; must not throw (errors are swallowed). */
  debug?: (event: DebugEvent) => void;
}

export interface OpenInfo {
  welcome: WelcomeFrame;
  /** True when this open followed an earlier one (a reconnect). */
  reconnected: boolean;
  /**
   * On a resume: true when nothing was lost, false when the gateway no longer had every message
   * after our offset (resync application state). Undefined when no resume was asked for.
   */
  recovered: boolean | undefined;
  replayed: number;
}

export interface DisconnectInfo {
  code: number;
  reason: string;
  /** Whether the client will try again. */
  willReconnect: boolean;
}

export interface ReconnectInfo {
  attempt: number;
  delayMs: number;
  /** Close code that caused it (1006 when the connection failed before opening). */
  code: number;
}

export interface ClientEvents<D = Json> {
  message: (m: IncomingMessage<D>) => void;
  room: (e: RoomEvent) => void;
  presence: (p: PresenceFrame) => void;
  state: (state: ClientState, previous: ClientState) => void;
  open: (info: OpenInfo) => void;
  disconnect: (info: DisconnectInfo) => void;
  reconnecting: (info: ReconnectInfo) => void;
  closed: (info: { code: number; reason: string }) => void;
  /** Every frame the gateway sends, before the SDK handles it (debugging, logging, the CLI). */
  frame: (f: ServerFrame<D>) => void;
  /** Errors not tied to a request: gateway `error` frames without id, token function failures, … */
  error: (err: Error) => void;
}
