// Messages published while this gateway's subscriber was away (a primary failover, a slot moving to
// another node) are in their recipients' history but reached no open connection. After the subscriber is
// back, each local recipient's history after the newest offset it had before the gap is read and what
// did not arrive meanwhile is delivered: a failover costs a late message, not a missing one.
import type { Replay } from "../types.ts";

const FILLED_GRACE_MS = 10_000;
/** How long after a subscriber change repeated deliveries are looked for, and how many offsets per user. */
const RECENT_MS = 30_000;
const RECENT_PER_USER = 64;
const seqOf = (offset: string) => Number(offset.slice(offset.lastIndexOf(":") + 1));
const epochOf = (offset: string) => offset.slice(0, offset.lastIndexOf(":"));

export class GapFill {
  /** Newest offset delivered per user (by seq within an epoch; a new epoch replaces it). */
  private readonly newest = new Map<string, string>();
  /** Open gap: where each user stood when it began, and what arrived since. */
  private gap: { from: Map<string, string>; seen: Map<string, Set<string>> } | null = null;
  /** Offsets filled in, for a while after: the same message may still arrive live (its publish raced the read). */
  private filled: { until: number; offsets: Map<string, Set<string>> } | null = null;

  /**
   * Every direct message about to be handed to the gateway passes here (hot path: a compare and a map
   * write). False: it was already delivered by a fill, drop it.
   */
  note(user: string, offset: string): boolean {
    if (this.recentUntil) {
      // A topology change can leave two subscriber connections on one channel for a moment (ioredis
      // re-subscribing on the new owner while the old one still delivers): same message twice. For a while
      // after each change, the last few offsets per user are remembered and repeats dropped.
      if (Date.now() > this.recentUntil) {
        this.recentUntil = 0;
        this.recent.clear();
      } else {
        const ring = this.recent.get(user);
        if (ring?.includes(offset)) return false;
        if (ring) {
          ring.push(offset);
          if (ring.length > RECENT_PER_USER) ring.shift();
        } else this.recent.set(user, [offset]);
      }
    }
    if (this.filled) {
      if (Date.now() > this.filled.until) this.filled = null;
      else if (this.filled.offsets.get(user)?.has(offset)) return false;
    }
    const prev = this.newest.get(user);
    if (prev === undefined || epochOf(prev) !== epochOf(offset) || seqOf(offset) > seqOf(prev)) this.newest.set(user, offset);
    if (this.gap?.from.has(user)) {
      const s = this.gap.seen.get(user);
      if (s) s.add(offset);
      else this.gap.seen.set(user, new Set([offset]));
    }
    return true;
  }

  /** No longer subscribed here: a later subscription starts afresh (its connections resume by offset). */
  forget(user: string) {
    this.newest.delete(user);
    this.gap?.from.delete(user);
    this.gap?.seen.delete(user);
  }

  private recentUntil = 0;
  private readonly recent = new Map<string, string[]>();

  /**
   * The subscriber went away; a gap already open stays the earlier one for the users still in it, and takes in
   * those a partial fill had closed (they may miss messages again).
   */
  begin() {
    this.recentUntil = Date.now() + RECENT_MS;
    if (!this.gap) this.gap = { from: new Map(this.newest), seen: new Map() };
    else for (const [user, offset] of this.newest) if (!this.gap.from.has(user)) this.gap.from.set(user, offset);
  }

  /** Gave up on these users: their gap is not filled here (the broker has their clients resume instead). */
  abandon(users: readonly string[]) {
    const gap = this.gap;
    if (!gap) return;
    for (const user of users) {
      gap.from.delete(user);
      gap.seen.delete(user);
    }
    if (gap.from.size === 0) this.gap = null;
  }

  get open(): boolean {
    return this.gap !== null;
  }

  /**
   * Subscriptions are back: reads each user's history after its pre-gap offset and delivers what was not
   * seen. Users that had no message before the gap have no offset to read from and are skipped (their
   * client's resume covers them). Every read of a batch is waited for, failed or not: a user leaves the gap
   * only once its history was read, so the gap closes only when every read succeeded. Returns how many
   * messages were filled in, and the users whose read failed (still in the gap) with the first error.
   */
  async close(
    users: Iterable<string>,
    replay: (user: string, since: string) => Promise<Replay>,
    deliver: (user: string, frame: string, offset: string) => void,
  ): Promise<{ filled: number; failed: string[]; error?: unknown }> {
    const gap = this.gap;
    if (!gap) return { filled: 0, failed: [] };
    let filled = 0;
    const failed: string[] = [];
    let error: unknown;
    // Blocks live copies of what this fill delivers from the first delivery on (their publish raced the read).
    const offsets = this.filled?.offsets ?? new Map<string, Set<string>>();
    this.filled = { until: Number.POSITIVE_INFINITY, offsets };
    const todo = [...users].filter((u) => gap.from.has(u));
    try {
      for (let i = 0; i < todo.length; i += 100) {
        const batch = todo.slice(i, i + 100);
        const results = await Promise.allSettled(
          batch.map(async (user) => {
            const r = await replay(user, gap.from.get(user)!);
            for (const f of r.frames) {
              if (gap.seen.get(user)?.has(f.offset) || !this.note(user, f.offset)) continue;
              (offsets.get(user) ?? offsets.set(user, new Set()).get(user)!).add(f.offset);
              deliver(user, f.frame, f.offset);
              filled++;
            }
          }),
        );
        results.forEach((r, k) => {
          const user = batch[k]!;
          if (r.status === "fulfilled") {
            gap.from.delete(user);
            gap.seen.delete(user);
          } else {
            failed.push(user);
            error ??= r.reason;
          }
        });
      }
    } finally {
      this.filled = { until: Date.now() + FILLED_GRACE_MS, offsets };
    }
    // Empty already when a fill running alongside this one read the users this one failed on.
    if (this.gap === gap && (failed.length === 0 || gap.from.size === 0)) this.gap = null;
    return { filled, failed, error };
  }
}
