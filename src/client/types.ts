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
import type { ClientFrame, IncomingMessage, PresenceFrame, RoomEvent, ServerFrame, WelcomeFrame } from "../protocol/frames.ts";

export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** A token, or a function asked for a fresh one before every connection attempt. */
export type TokenSource = string | (() => string | Promise<string>);

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

export interface ClientEvents {
  message: (m: IncomingMessage) => void;
  room: (e: RoomEvent) => void;
  presence: (p: PresenceFrame) => void;
  state: (state: ClientState, previous: ClientState) => void;
  open: (info: OpenInfo) => void;
  disconnect: (info: DisconnectInfo) => void;
  reconnecting: (info: ReconnectInfo) => void;
  closed: (info: { code: number; reason: string }) => void;
  /** Every frame the gateway sends, before the SDK handles it (debugging, logging, the CLI). */
  frame: (f: ServerFrame) => void;
  /** Errors not tied to a request: gateway `error` frames without id, token function failures, … */
  error: (err: Error) => void;
}
