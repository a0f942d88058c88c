// Local registry: conn ↔ user ↔ room, every index O(1) both ways, nothing left behind after close.
import type { ServerWebSocket } from "bun";
import type { RoomMatcher } from "./auth.ts";
import type { Offset } from "./offsets.ts";

/** Per-connection state, stored as Bun's ws.data: kept flat and small (bytes per idle connection matter). */
export interface Conn {
  id: string;
  user: string;
  rooms: RoomMatcher;
  expiresAt: number | undefined;
  since: number;
  /** Offset the client resumes from, until the replay is done. */
  resumeFrom: string | undefined;
  ws: ServerWebSocket<Conn> | null;
  joined: Set<string> | null;
  tokens: number;
  refilledAt: number;
  floodStart: number;
  floodCount: number;
  lastSeen: number;
  /** When the heartbeat last pinged it: one ping per silent interval, until it answers. */
  pingedAt: number;
  /**
   * Last offset a resume replayed: live copies of replayed messages can still arrive after the welcome (the
   * replay is read on the command connection, live frames come on the subscriber one, or from a local
   * sender's script reply, in either order), so any live message at or before it is dropped.
   */
  replayedTo: Offset | null;
  /** Outbound frames held until the welcome (and replay) went out; null once live. */
  pending: { frame: string; offset: string | undefined }[] | null;
  /** Set while a replay waits for the socket to drain; called by the drain handler and on close. */
  drained: (() => void) | null;
  closed: boolean;
}

export interface RoomChange {
  /** The user's first (join) or last (leave) connection here for this room: presence must hear of it. */
  userEdge: boolean;
  /** The first or last connection here in this room at all: (un)subscribe the room. */
  roomEdge: boolean;
}

export class Connections {
  readonly byId = new Map<string, Conn>();
  readonly byUser = new Map<string, Set<Conn>>();
  readonly byRoom = new Map<string, Set<Conn>>();
  /** room → user → number of that user's local connections in the room. */
  private readonly roomUsers = new Map<string, Map<string, number>>();

  get size() {
    return this.byId.size;
  }
  get users() {
    return this.byUser.size;
  }
  get rooms() {
    return this.byRoom.size;
  }

  /** True when this is the user's first local connection. */
  add(c: Conn): boolean {
    this.byId.set(c.id, c);
    const set = this.byUser.get(c.user);
    if (set) {
      set.add(c);
      return false;
    }
    this.byUser.set(c.user, new Set([c]));
    return true;
  }

  /** Removes the connection and all its room memberships; reports each room edge and whether it was the user's last. */
  remove(c: Conn): { lastForUser: boolean; rooms: [string, RoomChange][] } {
    const changes: [string, RoomChange][] = [];
    if (c.joined) for (const room of c.joined) changes.push([room, this.unindexRoom(c, room)]);
    c.joined = null;
    this.byId.delete(c.id);
    const set = this.byUser.get(c.user);
    let lastForUser = false;
    if (set && set.delete(c) && set.size === 0) {
      this.byUser.delete(c.user);
      lastForUser = true;
    }
    return { lastForUser, rooms: changes };
  }

  /** null when already joined. */
  join(c: Conn, room: string): RoomChange | null {
    if (c.joined?.has(room)) return null;
    (c.joined ??= new Set()).add(room);
    let conns = this.byRoom.get(room);
    const roomEdge = !conns;
    if (!conns) this.byRoom.set(room, (conns = new Set()));
    conns.add(c);
    let users = this.roomUsers.get(room);
    if (!users) this.roomUsers.set(room, (users = new Map()));
    const n = (users.get(c.user) ?? 0) + 1;
    users.set(c.user, n);
    return { userEdge: n === 1, roomEdge };
  }

  /** null when not joined. */
  leave(c: Conn, room: string): RoomChange | null {
    if (!c.joined?.delete(room)) return null;
    if (c.joined.size === 0) c.joined = null;
    return this.unindexRoom(c, room);
  }

  private unindexRoom(c: Conn, room: string): RoomChange {
    const conns = this.byRoom.get(room)!;
    conns.delete(c);
    const roomEdge = conns.size === 0;
    if (roomEdge) this.byRoom.delete(room);
    const users = this.roomUsers.get(room)!;
    const n = users.get(c.user)! - 1;
    if (n === 0) {
      users.delete(c.user);
      if (users.size === 0) this.roomUsers.delete(room);
    } else users.set(c.user, n);
    return { userEdge: n === 0, roomEdge };
  }

  /** Whether any local connection of `user` is in `room`. */
  inRoom(room: string, user: string): boolean {
    return this.roomUsers.get(room)?.has(user) ?? false;
  }

  /** [room, user] pairs held here, for re-asserting room presence. */
  *roomMemberships(): Iterable<[string, string]> {
    for (const [room, users] of this.roomUsers) for (const user of users.keys()) yield [room, user];
  }

  /** Index sizes, for the "nothing left behind" test. */
  indexSizes() {
    return { byId: this.byId.size, byUser: this.byUser.size, byRoom: this.byRoom.size, roomUsers: this.roomUsers.size };
  }
}
