// Per-user history in memory: the last `size` direct messages within `maxBytes` (oldest dropped first, the
// newest always kept), with an epoch that changes whenever a user's history is dropped.
import { isRecovered, parseOffset } from "../../offsets.ts";
import { offsetPart } from "../../protocol/outbound.ts";
import type { History, HistoryItem, ReplayCursor, StoredFrame } from "../types.ts";

interface UserHistory {
  epoch: string;
  seq: number;
  /** Retained frames, oldest first; frames[i] has seq `seq - frames.length + 1 + i`. */
  frames: string[];
  /** Index of the oldest retained frame in `frames` (dropped ones are sliced off in bulk). */
  head: number;
  bytes: number;
  lastWrite: number;
}

/** Bytes per page of a replay (at least one frame): the memory one has no round trips to save, only a socket to let drain. */
const PAGE_BYTES = 128 * 1024;

export class MemoryHistory implements History {
  private readonly users = new Map<string, UserHistory>();
  private readonly sweeper: ReturnType<typeof setInterval>;
  private epochCounter = 0;
  private readonly epochBase = Date.now().toString(36);

  constructor(
    private readonly opts: { size: number; ttlMs: number; maxBytes: number },
    private readonly now: () => number = Date.now,
  ) {
    // Expired histories are dropped lazily on access too; the sweep only bounds memory for idle users.
    this.sweeper = setInterval(() => this.sweep(), Math.min(opts.ttlMs, 60_000));
    this.sweeper.unref?.();
  }

  close() {
    clearInterval(this.sweeper);
  }

  private get(user: string): UserHistory | undefined {
    const h = this.users.get(user);
    if (h && this.now() - h.lastWrite > this.opts.ttlMs) {
      this.users.delete(user);
      return undefined;
    }
    return h;
  }

  appendOne(item: HistoryItem): StoredFrame {
    let h = this.get(item.user);
    if (!h) {
      h = { epoch: `${this.epochBase}${(this.epochCounter++).toString(36)}`, seq: 0, frames: [], head: 0, bytes: 0, lastWrite: 0 };
      this.users.set(item.user, h);
    }
    const seq = ++h.seq;
    const offset = `${h.epoch}:${seq}`;
    const frame = item.head + offsetPart(offset) + item.tail;
    h.frames.push(frame);
    h.bytes += frame.length;
    // Oldest first, never the newest.
    while (h.frames.length - h.head > 1 && (h.frames.length - h.head > this.opts.size || h.bytes > this.opts.maxBytes)) {
      h.bytes -= h.frames[h.head]!.length;
      h.head++;
    }
    if (h.head > 64 && h.head * 2 > h.frames.length) {
      h.frames = h.frames.slice(h.head);
      h.head = 0;
    }
    h.lastWrite = this.now();
    return { offset, frame };
  }

  async append(items: readonly HistoryItem[]): Promise<StoredFrame[]> {
    return items.map((i) => this.appendOne(i));
  }

  async replay(user: string, sinceStr: string): Promise<ReplayCursor> {
    const since = parseOffset(sinceStr)!;
    const h = this.get(user);
    if (!h) return { recovered: false, count: 0, next: async () => [] };
    const retained = h.frames.length - h.head;
    const first = h.seq - retained + 1;
    let from = first;
    if (h.epoch === since.epoch) from = since.seq >= h.seq ? h.seq + 1 : Math.max(first, since.seq + 1);
    // A snapshot: frames appended during the replay arrive live (and are de-duplicated by offset).
    const frames: StoredFrame[] = [];
    for (let s = from; s <= h.seq; s++) frames.push({ offset: `${h.epoch}:${s}`, frame: h.frames[h.head + s - first]! });
    let at = 0;
    return {
      recovered: isRecovered(since, h.epoch, h.seq, retained > 0 ? first : null),
      count: frames.length,
      async next() {
        const from = at;
        for (let bytes = 0; at < frames.length && (at === from || bytes + frames[at]!.frame.length <= PAGE_BYTES); at++) bytes += frames[at]!.frame.length;
        return frames.slice(from, at);
      },
    };
  }

  private sweep() {
    const now = this.now();
    for (const [user, h] of this.users) if (now - h.lastWrite > this.opts.ttlMs) this.users.delete(user);
  }
}
