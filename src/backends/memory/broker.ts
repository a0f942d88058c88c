// Single-node broker: delivery is a function call; history is a bounded ring per user.
import { directHead, tsTail } from "../../protocol/outbound.ts";
import type { Broker, Deliveries, DirectMessage } from "../types.ts";
import type { MemoryHistory } from "./history.ts";

export class MemoryBroker implements Broker {
  private deliver: Deliveries | null = null;

  /** `history`: null with history off. */
  constructor(private readonly history: MemoryHistory | null) {}

  async start(deliver: Deliveries) {
    this.deliver = deliver;
  }
  async close() {}
  async subscribeUser() {}
  unsubscribeUser() {}
  async subscribeRoom() {}
  unsubscribeRoom() {}

  async sendDirect(msg: DirectMessage, to: readonly string[]) {
    const d = this.deliver!;
    const tail = tsTail(msg.ts);
    if (!this.history) {
      for (const user of to) d.user(user, directHead(msg.fromJson, user, msg.dataJson) + tail, undefined);
      return undefined;
    }
    // No prototype: a user named __proto__ must be an ordinary key.
    const offsets: Record<string, string> = Object.create(null);
    for (const user of to) {
      const stored = this.history.appendOne({ user, head: directHead(msg.fromJson, user, msg.dataJson), tail });
      offsets[user] = stored.offset;
      d.user(user, stored.frame, stored.offset);
    }
    return offsets;
  }

  async publishRoom(room: string, frame: string) {
    this.deliver!.room(room, frame);
  }
  async broadcast(frame: string) {
    this.deliver!.broadcast(frame);
  }
  async kick(user: string, exceptConn?: string, session?: string) {
    this.deliver!.kick(user, exceptConn, session);
  }
  private lastClock = 0;
  async sessionClock() {
    // One process: strictly increasing is all the ordering needs.
    this.lastClock = Math.max(this.lastClock + 1, Date.now() * 1000);
    return this.lastClock;
  }
  state(): "none" | "ready" | "down" {
    return "none";
  }
}
