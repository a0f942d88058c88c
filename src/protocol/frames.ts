// Wire types of PROTOCOL.md §3: every frame the gateway and its clients exchange, for server and SDK alike.

/**
 * Any JSON value. Incoming `data` is typed `Json` unless the client is given a payload type
 * (`new WsgateClient<Chat>(…)`); outgoing `data` takes any serialisable value, interfaces included.
 */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface WelcomeFrame {
  type: "welcome";
  user: string;
  conn: string;
  gateway: string;
  region: string;
  heartbeat: number;
  recovered?: boolean;
  replayed?: number;
}

export interface DirectMessage<D = Json> {
  type: "message";
  from: string | null;
  to: string;
  data: D;
  offset?: string;
  ts: number;
}

export interface RoomMessage<D = Json> {
  type: "message";
  from: string | null;
  room: string;
  data: D;
  ts: number;
}

export interface BroadcastMessage<D = Json> {
  type: "message";
  from: null;
  broadcast: true;
  data: D;
  ts: number;
}

export type IncomingMessage<D = Json> = DirectMessage<D> | RoomMessage<D> | BroadcastMessage<D>;

export interface RoomEvent {
  type: "room";
  room: string;
  event: "join" | "leave";
  user: string;
  ts: number;
}

export interface UserPresence {
  online: boolean;
  connections: number;
  regions: string[];
}

export interface UsersPresenceFrame {
  type: "presence";
  id?: string;
  users: Record<string, UserPresence>;
}

export interface RoomPresenceFrame {
  type: "presence";
  id?: string;
  room: string;
  users: string[];
}

export type PresenceFrame = UsersPresenceFrame | RoomPresenceFrame;

export interface AckFrame {
  type: "ack";
  id: string;
  offsets?: Record<string, string>;
}

export interface PongFrame {
  type: "pong";
  id?: string;
}

export interface ErrorFrame {
  type: "error";
  id?: string;
  code: string;
  message: string;
}

export type ServerFrame<D = Json> =
  | WelcomeFrame
  | IncomingMessage<D>
  | RoomEvent
  | PresenceFrame
  | AckFrame
  | PongFrame
  | ErrorFrame;

/** Frames a client may send; `id` is filled in by the SDK for requests. */
export type ClientFrame =
  | { type: "send"; to: string | string[]; data: unknown; id?: string }
  | { type: "join"; room: string; id?: string }
  | { type: "leave"; room: string; id?: string }
  | { type: "publish"; room: string; data: unknown; id?: string }
  | { type: "presence"; users: string[]; id?: string }
  | { type: "presence"; room: string; id?: string }
  | { type: "ping"; id?: string };
