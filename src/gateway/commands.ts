// What a client or the admin API can ask of the cluster: send, publish, join, leave, presence, kick, broadcast.
// The WebSocket side (dispatch.ts) and the admin API call the same functions; a sender of `null` is the admin.
import type { Conn } from "../connections.ts";
import { FrameError } from "../protocol/parse.ts";
import type { ConnInfo, GatewayInfo } from "../backends/types.ts";
import type { UserPresence } from "../protocol/frames.ts";
import { broadcastMessage, roomMessage, senderJson } from "../protocol/outbound.ts";
import type { GatewayContext } from "./context.ts";
import type { Membership } from "./membership.ts";

export interface Commands {
  /** Offsets per recipient when history is on. `ts` defaults to now on the gateway's clock. */
  send(from: string | null, to: string[], dataJson: string, ts?: number): Promise<Record<string, string> | undefined>;
  publish(from: string | null, room: string, dataJson: string, ts?: number): Promise<void>;
  broadcast(dataJson: string, ts?: number): Promise<void>;
  join(c: Conn, room: string): Promise<void>;
  leave(c: Conn, room: string): Promise<void>;
  roomPresence(room: string): Promise<string[]>;
  usersPresence(users: string[]): Promise<Record<string, UserPresence>>;
  /** Closes every connection of `user` in the cluster; the number it had. */
  kick(user: string): Promise<number>;
  /** Where `user` is connected, cluster-wide. */
  connections(user: string): Promise<ConnInfo[]>;
  /** Live gateways of the cluster. */
  gateways(): Promise<GatewayInfo[]>;
}

export function createCommands({ config, broker, presence, stats, now }: GatewayContext, membership: Membership): Commands {
  return {
    async send(from, to, dataJson, ts = now()) {
      const offsets = await broker.sendDirect({ fromJson: senderJson(from), dataJson, ts }, to);
      stats.messagesRouted += to.length;
      return offsets;
    },
    async publish(from, room, dataJson, ts = now()) {
      await broker.publishRoom(room, roomMessage(senderJson(from), room, dataJson, ts));
      stats.messagesRouted++;
    },
    async broadcast(dataJson, ts = now()) {
      await broker.broadcast(broadcastMessage(dataJson, ts));
      stats.messagesRouted++;
    },
    async join(c, room) {
      if (!c.joined?.has(room) && (c.joined?.size ?? 0) >= config.maxRooms)
        throw new FrameError("too_many_rooms", `a connection may be in at most ${config.maxRooms} rooms; leave one first`);
      await membership.join(c, room);
    },
    leave: (c, room) => membership.leave(c, room),
    roomPresence: (room) => presence.roomUsers(room),
    usersPresence: (users) => presence.users([...new Set(users)]),
    async kick(user) {
      const n = (await presence.connections(user)).length;
      await broker.kick(user);
      return n;
    },
    connections: (user) => presence.connections(user),
    gateways: () => presence.gateways(),
  };
}
