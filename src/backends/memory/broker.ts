// Single-node broker: delivery is a function call; history is a bounded ring per user.
import { directHead, offsetPart, tsTail } from "../../protocol/outbound.ts";
import type { Broker, Deliveries, DirectMessage, Replay } from "../types.ts";
import { MemoryHistory } from "./history.ts";

export class MemoryBroker implements Broker {
  private deliver: Deliveries | null = null;
  private readonly history: MemoryHistory | null;

  constructor(opts: { historySize: number; historyTtlS: number; now?: () => number }) {
    this.history = opts.historySize > 0 ? new MemoryHistory(opts.historySize, opts.historyTtlS * 1000, opts.now) : null;
  }

  async start(deliver: Deliveries) {
    this.deliver = deliver;
  }
  async close() {
    this.history?.close();
  }
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
      const head = directHead(msg.fromJson, user, msg.dataJson);
      const offset = this.history.append(user, (off) => head + offsetPart(off) + tail);
      offsets[user] = offset.offset;
      d.user(user, offset.frame, offset.offset);
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
  async replay(user: string, since: string): Promise<Replay> {
    if (!this.history) return { frames: [], recovered: false };
    return this.history.since(user, since);
  }
  state(): "none" | "ready" | "down" {
    return "none";
  }
}
