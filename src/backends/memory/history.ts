// Per-user ring of the last N direct messages, with an epoch that changes whenever a user's history is dropped.
import { isRecovered, parseOffset } from "../../offsets.ts";
import type { Replay } from "../types.ts";

interface UserHistory {
  epoch: string;
  seq: number;
  /** Ring buffer of frames; entry for seq s lives at (s - 1) % size. */
  frames: string[];
  lastWrite: number;
}

export class MemoryHistory {
  private readonly users = new Map<string, UserHistory>();
  private readonly sweeper: ReturnType<typeof setInterval>;
  private epochCounter = 0;
  private readonly epochBase = Date.now().toString(36);

  constructor(
    private readonly size: number,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {
    // Expired histories are dropped lazily on access too; the sweep only bounds memory for idle users.
    this.sweeper = setInterval(() => this.sweep(), Math.min(ttlMs, 60_000));
    this.sweeper.unref?.();
  }

  close() {
    clearInterval(this.sweeper);
  }

  private get(user: string): UserHistory | undefined {
    const h = this.users.get(user);
    if (h && this.now() - h.lastWrite > this.ttlMs) {
      this.users.delete(user);
      return undefined;
    }
    return h;
  }

  append(user: string, build: (offset: string) => string): { offset: string; frame: string } {
    let h = this.get(user);
    if (!h) {
      h = { epoch: `${this.epochBase}${(this.epochCounter++).toString(36)}`, seq: 0, frames: [], lastWrite: 0 };
      this.users.set(user, h);
    }
    const seq = ++h.seq;
    const offset = `${h.epoch}:${seq}`;
    const frame = build(offset);
    h.frames[(seq - 1) % this.size] = frame;
    h.lastWrite = this.now();
    return { offset, frame };
  }

  since(user: string, sinceStr: string): Replay {
    const since = parseOffset(sinceStr)!;
    const h = this.get(user);
    if (!h) return { frames: [], recovered: false };
    const first = Math.max(1, h.seq - this.size + 1);
    const from = h.epoch === since.epoch ? Math.max(first, since.seq + 1) : first;
    const frames: Replay["frames"] = [];
    for (let s = from; s <= h.seq; s++) frames.push({ offset: `${h.epoch}:${s}`, frame: h.frames[(s - 1) % this.size]! });
    return { frames, recovered: isRecovered(since, h.epoch, h.seq, h.seq >= first ? first : null) };
  }

  private sweep() {
    const now = this.now();
    for (const [user, h] of this.users) if (now - h.lastWrite > this.ttlMs) this.users.delete(user);
  }
}
