// Room membership edges: the first local member of a room subscribes it, the user's first local connection in
// it announces a `join`; the reverse on the way out. Shared by the join/leave commands and the close cleanup.
import type { Conn, RoomChange } from "../connections.ts";
import { roomEvent } from "../messages.ts";
import type { GatewayContext } from "./context.ts";

export interface Membership {
  entered(c: Conn, room: string, change: RoomChange): Promise<void>;
  left(user: string, room: string, change: RoomChange): Promise<void>;
}

export function createMembership({ broker, presence, now }: GatewayContext): Membership {
  return {
    async entered(c, room, change) {
      if (change.roomEdge) await broker.subscribeRoom(room);
      if (change.userEdge && (await presence.joinRoom(room, c.user)))
        await broker.publishRoom(room, roomEvent(room, "join", c.user, now()));
    },
    async left(user, room, change) {
      if (change.userEdge && (await presence.leaveRoom(room, user)))
        await broker.publishRoom(room, roomEvent(room, "leave", user, now()));
      if (change.roomEdge) broker.unsubscribeRoom(room);
    },
  };
}
