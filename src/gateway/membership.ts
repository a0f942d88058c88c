// Room membership, room subscriptions, user subscriptions and connection presence, each owned per key by a
// Reconciler: the local registry (conns) is the truth, and each key's backend calls run one at a time and
// re-read that truth, so a leave-then-join, a reconnect that re-joins, or a join racing its connection's
// close always ends with the backend matching the registry. Failed steps are retried on the heartbeat.
import type { ConnRef } from "../backends/types.ts";
import type { Conn } from "../connections.ts";
import { roomEvent } from "../protocol/outbound.ts";
import { connRef, type GatewayContext } from "./context.ts";
import { Reconciler } from "./reconciler.ts";

/** A room event whose publish fails is retried this often, this far apart (covers a Redis stall or restart). */
const ANNOUNCE_ATTEMPTS = 8;
const ANNOUNCE_RETRY_MS = 1000;

export interface Membership {
  /** Joins (idempotently) and resolves once the room is subscribed and the user's room presence written. */
  join(c: Conn, room: string): Promise<void>;
  /** Leaves; the backend calls run even if one of them fails (a failed one is retried). */
  leave(c: Conn, room: string): Promise<void>;
  /** After the connection is registered: its user's channel subscribed, its presence entry written. */
  connected(c: Conn): Promise<void>;
  /** After the connection left the registry (conns.remove): everything it held is undone, in order. */
  disconnected(c: Conn, rooms: string[]): Promise<void>;
  /** Re-runs every failed step (called on the heartbeat). */
  retry(): void;
  /** Waits for every queued step (drain). */
  idle(): Promise<void>;
  /** Keys tracked, for tests and stats. */
  tracked(): number;
}

// User ids and room names never contain a newline (their grammars exclude it).
const pairKey = (room: string, user: string) => `${room}\n${user}`;
const splitPair = (key: string) => {
  const i = key.indexOf("\n");
  return [key.slice(0, i), key.slice(i + 1)] as const;
};

/**
 * Published before the step ends (so before the join's ack: whoever joins after it does not hear it). The
 * presence write that decided the event has landed, so the event is owed: retried through a short outage
 * (a stalled Redis fails commands within seconds), inside the key's queue so events stay in order.
 */
async function announce({ broker, log, now }: GatewayContext, room: string, user: string, event: "join" | "leave") {
  const frame = roomEvent(room, event, user, now());
  for (let attempt = 0; ; attempt++) {
    try {
      return await broker.publishRoom(room, frame);
    } catch (err) {
      if (attempt >= ANNOUNCE_ATTEMPTS) return log.warn("room event not sent", { room, user, event, err });
      await Bun.sleep(ANNOUNCE_RETRY_MS);
    }
  }
}

type OnError = (what: string) => (key: string, err: unknown) => void;

/** Room and user channel subscriptions: wanted while any local connection is in the room / of the user. */
function subscriptions({ broker, conns }: GatewayContext, onError: OnError) {
  const roomSubs = new Reconciler({
    desired: (room) => conns.byRoom.has(room),
    apply: async (room, on) => (on ? broker.subscribeRoom(room) : broker.unsubscribeRoom(room)),
    onError: onError("room subscription"),
  });
  const userSubs = new Reconciler({
    desired: (user) => conns.byUser.has(user),
    apply: async (user, on) => (on ? broker.subscribeUser(user) : broker.unsubscribeUser(user)),
    onError: onError("user subscription"),
  });
  return { roomSubs, userSubs };
}

/** A user's presence in a room, keyed by pairKey(room, user); announces the change when the backend does not. */
function roomPresence(ctx: GatewayContext, onError: OnError) {
  const { presence, conns } = ctx;
  return new Reconciler({
    desired: (key) => conns.inRoom(...splitPair(key)),
    async apply(key, on) {
      const [room, user] = splitPair(key);
      if (on) {
        if ((await presence.joinRoom(room, user)) && !presence.announces) await announce(ctx, room, user, "join");
      } else if ((await presence.leaveRoom(room, user)) && !presence.announces) await announce(ctx, room, user, "leave");
    },
    onError: onError("room presence"),
    // A re-assert snapshots the local registry and then reaps the old incarnation: a (room, user) that was out
    // at the snapshot and back in by now lost its holding without this key's step knowing (seed 2005).
    epoch: () => presence.generation ?? 0,
  });
}

export function createMembership(ctx: GatewayContext): Membership {
  const { presence, conns, log } = ctx;
  const onError: OnError = (what) => (key, err) => log.warn(`${what} retry failed`, { key, err });
  const { roomSubs, userSubs } = subscriptions(ctx, onError);
  const roomUsers = roomPresence(ctx, onError);

  /**
   * Presence refs of closed connections, kept until their entry is known removed (a retry needs the ref). An
   * open connection's ref is built from the registry when its step runs: nothing is kept per idle connection.
   */
  const closedRefs = new Map<string, ConnRef>();
  const connPresence = new Reconciler({
    desired: (id) => conns.byId.has(id),
    async apply(id, on) {
      // On only while the registry holds the connection (desired was read just before this call).
      if (on) return presence.connect(connRef(conns.byId.get(id)!));
      await presence.disconnect(closedRefs.get(id)!);
      closedRefs.delete(id);
    },
    onError: onError("connection presence"),
  });

  /** A generation per (connection, room) frame, so a failed join only undoes itself, never a newer join. */
  const gens = new Map<string, number>();
  let genSeq = 0;
  const genKey = (c: Conn, room: string) => `${c.id}\n${room}`;

  async function settleRoom(room: string, user: string) {
    const results = await Promise.allSettled([roomSubs.sync(room), roomUsers.sync(pairKey(room, user))]);
    for (const r of results) if (r.status === "rejected") throw r.reason;
  }

  return {
    async join(c, room) {
      conns.join(c, room);
      const gen = ++genSeq;
      gens.set(genKey(c, room), gen);
      try {
        // Subscribed before the presence write, so the joiner hears its own join event.
        await roomSubs.sync(room);
        await roomUsers.sync(pairKey(room, c.user));
      } catch (err) {
        // Undo only this join: a later leave or join of the same room owns the membership now.
        if (gens.get(genKey(c, room)) === gen) {
          gens.delete(genKey(c, room));
          if (conns.leave(c, room)) void settleRoom(room, c.user).catch(() => {});
        }
        throw err;
      }
    },
    async leave(c, room) {
      gens.delete(genKey(c, room));
      if (!conns.leave(c, room)) return;
      // The unsubscribe happens even when the presence write fails; that write is retried.
      await Promise.allSettled([roomSubs.sync(room), roomUsers.sync(pairKey(room, c.user))]);
    },
    async connected(c) {
      await Promise.all([userSubs.sync(c.user), connPresence.sync(c.id)]);
    },
    async disconnected(c, rooms) {
      for (const room of rooms) gens.delete(genKey(c, room));
      closedRefs.set(c.id, connRef(c));
      await Promise.allSettled([
        ...rooms.flatMap((room) => [roomSubs.sync(room), roomUsers.sync(pairKey(room, c.user))]),
        // Done when the step succeeded (also one with nothing to remove); a failed one keeps the ref for its retry.
        connPresence.sync(c.id).then(() => closedRefs.delete(c.id)),
        userSubs.sync(c.user),
      ]);
    },
    retry() {
      for (const r of [roomSubs, userSubs, roomUsers, connPresence]) r.retryFailed();
    },
    async idle() {
      await Promise.all([roomSubs, userSubs, roomUsers, connPresence].map((r) => r.idle()));
    },
    tracked: () => roomSubs.size + userSubs.size + roomUsers.size + connPresence.size + closedRefs.size + gens.size,
  };
}
