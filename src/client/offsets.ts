// Tracks the offsets of direct messages seen, to resume from the newest and drop replays.
// Offsets are `<epoch>:<seq>` (PROTOCOL.md §5). Messages from different senders may arrive out of
// seq order, so duplicates are found by membership in a bounded window, not by "seq <= last".

export function parseOffset(offset: string): { epoch: string; seq: bigint } | null {
  const i = offset.lastIndexOf(":");
  if (i <= 0) return null;
  const seqText = offset.slice(i + 1);
  if (!/^\d+$/.test(seqText)) return null;
  return { epoch: offset.slice(0, i), seq: BigInt(seqText) };
}

export class OffsetTracker {
  private seen = new Set<string>();
  private order: string[] = [];
  private head = 0;
  private newest: { epoch: string; seq: bigint; text: string } | null = null;

  private readonly window: number;

  // No parameter properties anywhere in the SDK: Node's type stripping cannot run them.
  constructor(window = 4096, since?: string) {
    this.window = window;
    if (since) this.advance(since);
  }

  /** The offset to pass as `?since=` on the next connection, if any. */
  get last(): string | undefined {
    return this.newest?.text;
  }

  /** Records an offset; returns false when it was already seen (a duplicate to drop). */
  record(offset: string): boolean {
    if (this.seen.has(offset)) return false;
    this.seen.add(offset);
    this.order.push(offset);
    if (this.order.length - this.head > this.window) {
      this.seen.delete(this.order[this.head]!);
      this.head++;
      // Compact now and then instead of shifting on every message.
      if (this.head > this.window) {
        this.order = this.order.slice(this.head);
        this.head = 0;
      }
    }
    this.advance(offset);
    return true;
  }

  private advance(offset: string): void {
    const p = parseOffset(offset);
    if (!p) return;
    // A new epoch means the gateway lost that history: its offsets restart, so follow the new epoch.
    if (!this.newest || this.newest.epoch !== p.epoch || p.seq > this.newest.seq) {
      this.newest = { ...p, text: offset };
    }
  }
}
