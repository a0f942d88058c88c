// The narrow seam between the gateway and its backends. The in-memory versions are single-node mode;
// the Redis versions are cluster mode. Both pass the same contract suite (test/backends.test.ts).
import type { UserPresence } from "../protocol/frames.ts";

export type { UserPresence };

export interface GatewayInfo {
  id: string;
  region: string;
  connections: number;
  users: number;
  started: number;
  last_seen: number;
  /** Package version and build id of the gateway (absent from gateways that predate them). */
  version?: string;
  build?: string;
}
export interface ConnInfo {
  conn: string;
  gateway: string;
  region: string;
  since: number;
}
export interface ConnRef {
  conn: string;
  user: string;
  since: number;
}

/** What the backends hand to the gateway. Frames arrive serialised; the gateway only forwards them. */
export interface Deliveries {
  /** A direct message for every local connection of `user`; `offset` is set when history is on. */
  user(user: string, frame: string, offset: string | undefined): void;
  room(room: string, frame: string): void;
  broadcast(frame: string): void;
  /**
   * Close the user's local connections with 4009, except `exceptConn`. With `session` (single-session mode),
   * close only those whose session stamp is older than it: the newest connection wins everywhere.
   */
  kick(user: string, exceptConn: string | undefined, session?: string): void;
  /** Messages for `user` may have missed its local connections (a gap fill gave up): close them so they resume. */
  resume(user: string): void;
}

export interface DirectMessage {
  /** JSON of the sender: `"alice"` or `null` for the admin API. */
  fromJson: string;
  dataJson: string;
  ts: number;
}

/** One stored direct message, as a resume replays it. */
export interface StoredFrame {
  offset: string;
  frame: string;
}

/** A whole replay at once (the broker's gap fill after a subscriber outage; clients get a ReplayCursor). */
export interface Replay {
  frames: StoredFrame[];
  recovered: boolean;
}

/** A resume in progress: what the welcome says, then the retained messages page by page, oldest first. */
export interface ReplayCursor {
  /** False when something after the offset is no longer retained (trimmed, expired, lost), or it is ahead. */
  recovered: boolean;
  /** How many messages the pages carry (welcome.replayed). */
  count: number;
  /** The next page; an empty one once the replay is complete. */
  next(): Promise<StoredFrame[]>;
}

/** One recipient's copy of a direct message: its frame is `head` + `,"offset":"…"` + `tail`. */
export interface HistoryItem {
  user: string;
  head: string;
  tail: string;
}

/**
 * Per-user direct-message history (PROTOCOL §5, §8.2): the last `size` messages within `maxBytes` (oldest
 * dropped first, the newest always kept), offsets `<epoch>:<seq>`. Exact as a resume observes it.
 */
export interface History {
  /** Stores each copy; resolves once all are stored. The Redis one also publishes each copy in the same script. */
  append(items: readonly HistoryItem[]): Promise<StoredFrame[]>;
  /** `since` is a valid offset (parseOffset). */
  replay(user: string, since: string): Promise<ReplayCursor>;
  close(): void;
}

/** Carries messages between gateways; direct messages are stored through the History first when it is on. */
export interface Broker {
  start(deliver: Deliveries): Promise<void>;
  close(): Promise<void>;
  /** Interest of this gateway: resolves once messages for it will arrive here. */
  subscribeUser(user: string): Promise<void>;
  unsubscribeUser(user: string): void;
  subscribeRoom(room: string): Promise<void>;
  unsubscribeRoom(room: string): void;
  /** Stores (history on) and routes to every gateway holding a recipient. Offsets per user when history is on. */
  sendDirect(msg: DirectMessage, to: readonly string[]): Promise<Record<string, string> | undefined>;
  publishRoom(room: string, frame: string): Promise<void>;
  broadcast(frame: string): Promise<void>;
  kick(user: string, exceptConn?: string, session?: string): Promise<void>;
  /** A clock every gateway reads the same (Redis TIME), in µs: orders simultaneous single sessions. */
  sessionClock(): Promise<number>;
  /** "none" in single-node mode. */
  state(): "none" | "ready" | "down";
}

/** This gateway's own state, read by the presence backend for its lease and for re-asserting. */
export interface LocalState {
  counts(): { connections: number; users: number };
  connections(): Iterable<ConnRef>;
  /** [room, user] pairs with at least one local connection. */
  rooms(): Iterable<[string, string]>;
}

/** Who is online where. Writes are per gateway; the upkeep is one lease per gateway. */
export interface Presence {
  /**
   * `local` lets the backend re-assert this gateway's state after the store lost it. `onRoomEvent` is how the
   * backend announces room changes nobody's frame caused: a `leave` on exactly one surviving gateway for each
   * user a dead gateway held in a room, and a `join` when a gateway that was given up for dead comes back.
   */
  start(local: LocalState, onRoomEvent: (room: string, user: string, event: "join" | "leave") => void): Promise<void>;
  /** Graceful exit: this gateway's entries are removed. */
  stop(): Promise<void>;
  connect(c: ConnRef): Promise<void>;
  disconnect(c: ConnRef): Promise<void>;
  /**
   * Orders this gateway's room decisions. Take a ticket synchronously when the local state of a (room, user)
   * changes and pass it to joinRoom/leaveRoom: the store refuses a write older than one it already applied for
   * that (room, user), so a join that reaches it after the leave decided later never lands (and a late leave
   * never removes a newer join). Without a ticket, a call is ordered by the moment it is made.
   */
  ticket(): number;
  /**
   * True when the backend publishes room `join`/`leave` events itself, atomically with the write that decides
   * them (Redis: from the script), so events of one room are ordered across gateways; else the caller publishes
   * them when joinRoom/leaveRoom return true, and for onRoomEvent.
   */
  readonly announces: boolean;
  /**
   * Bumped whenever the backend changed this gateway's holdings on its own (Redis: a re-assert under a new
   * incarnation, then the reap of the old one): a (room, user) the gateway wrote before may be gone, so the
   * next joinRoom/leaveRoom for it must be made even if the gateway thinks the store already agrees.
   */
  readonly generation?: number;
  /** Called when the user's first local connection joins; true when they are now in the room for the first time cluster-wide. */
  joinRoom(room: string, user: string, ticket?: number): Promise<boolean>;
  /** Called when the user's last local connection leaves; true when they left the room cluster-wide. */
  leaveRoom(room: string, user: string, ticket?: number): Promise<boolean>;
  users(users: readonly string[]): Promise<Record<string, UserPresence>>;
  roomUsers(room: string): Promise<string[]>;
  connections(user: string): Promise<ConnInfo[]>;
  gateways(): Promise<GatewayInfo[]>;
}

export interface Backends {
  broker: Broker;
  presence: Presence;
  /** null with WSGATE_HISTORY_SIZE=0. */
  history: History | null;
  /** Redis only: counters the metrics read (WAIT timeouts). */
  redisCounters?: { waitTimeouts: number };
}
