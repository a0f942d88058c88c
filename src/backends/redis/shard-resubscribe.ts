// Sharded subscriptions in a Redis Cluster, kept true by the gateway instead of trusted to ioredis alone.
// ioredis 6 moves SSUBSCRIBEs to a slot's new owner only when a slot-map refresh shows a *changed* map or a
// dead subscriber connection, and its own re-subscribe after such a reset drops any error (debug log only).
// Two ways a channel then stays unsubscribed on a healthy connection for good:
//  1. a node drops the channel itself with a server-sent SUNSUBSCRIBE (it lost the slot: failover, migration,
//     a restarted old primary stepping down); ioredis refreshes the map, and if the node it asks has not heard
//     of the change yet the map is "unchanged" and nothing is re-subscribed (test/redis-cluster.test.ts
//     reproduces it with CLUSTER SETSLOT);
//  2. the re-subscribe on the promoted node meets -CLUSTERDOWN or MOVED while the cluster settles, and is lost.
// Nothing corrects either later: ioredis runs no periodic refresh unless slotsRefreshInterval is set.
// So after every topology signal of the subscriber every wanted sharded channel is SSUBSCRIBEd again through
// the cluster (which follows MOVED and retries CLUSTERDOWN; SSUBSCRIBE of a subscribed channel is a no-op on
// the server), and a pass without a confirmation for every channel is repeated, with back-off, until one has.
import type { Logger } from "../../log.ts";

/** The part of ioredis's Cluster this needs (a fake in tests). */
export interface ShardedSubscriber {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  ssubscribe(channel: string): Promise<unknown>;
  refreshSlotsCache?(callback?: (err?: Error) => void): void;
}

export interface ResubscribeOptions {
  /** The sharded channels this gateway wants now. */
  wanted(): string[];
  /** A pass starts: messages may have been missed since the signal (opens the gap fill). */
  beforePass(): void;
  /** A pass confirmed every channel: fill what the gap missed. */
  afterPass(): Promise<void>;
  log: Logger;
  /** Signals closer together than this make one pass (a failover sends dozens of refreshes). */
  debounceMs?: number;
  /** Waits before the retries of a failed pass; the last one repeats until a pass succeeds. */
  retryMs?: readonly number[];
  /** A channel not confirmed within this counts as failed (a stalled node). */
  timeoutMs?: number;
}

/** What makes a pass: ioredis refreshed its slot map, lost or gained a node, or reset its subscribers. */
const SIGNALS = ["refresh", "-node", "+node", "subscribersReady"] as const;

export class ShardResubscriber {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  /** A signal came during a pass: run another after it. */
  private again = false;
  private failedPasses = 0;
  private stopped = false;
  /** Counters for tests and logs. */
  readonly stats = { passes: 0, failedPasses: 0 };

  constructor(
    private readonly sub: ShardedSubscriber,
    private readonly o: ResubscribeOptions,
  ) {}

  start() {
    for (const ev of SIGNALS) this.sub.on(ev, () => this.signal());
  }

  stop() {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** A topology signal: one pass soon (debounced); during a pass, one more after it. */
  signal() {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.failedPasses = 0;
    this.schedule(this.o.debounceMs ?? 250);
  }

  private schedule(ms: number) {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.pass();
    }, ms);
    (this.timer as { unref?: () => void }).unref?.();
  }

  private async pass() {
    if (this.stopped) return;
    this.running = true;
    this.again = false;
    let failed = 0;
    const t0 = Date.now();
    try {
      this.o.beforePass();
      failed = await this.resubscribeAll();
      this.stats.passes++;
      if (!failed) this.o.log.info("sharded channels re-asserted after a topology change", { channels: this.o.wanted().length, ms: Date.now() - t0 });
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    if (failed) {
      this.stats.failedPasses++;
      const retry = this.o.retryMs ?? [500, 1000, 2000, 5000];
      const wait = retry[Math.min(this.failedPasses++, retry.length - 1)]!;
      this.o.log.warn("sharded channels not re-subscribed yet; retrying", { failed, retryInMs: wait });
      // The map may be what is wrong: ask the cluster again before the retry.
      this.sub.refreshSlotsCache?.(() => {});
      this.schedule(wait);
      return;
    }
    this.failedPasses = 0;
    await this.o.afterPass().catch((err) => this.o.log.warn("gap fill after re-subscribe failed", { err: (err as Error).message }));
    if (this.again) this.signal();
  }

  /** SSUBSCRIBE every wanted channel through the cluster; how many were not confirmed. */
  private async resubscribeAll(): Promise<number> {
    const channels = this.o.wanted();
    const ms = this.o.timeoutMs ?? 5000;
    const results = await Promise.allSettled(channels.map((ch) => withTimeout(this.sub.ssubscribe(ch), ms)));
    dedupeChannels(this.sub);
    return results.filter((r) => r.status === "rejected").length;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error("ssubscribe timed out")), ms)))]).finally(() => clearTimeout(t));
}

/**
 * ioredis's subscriber group appends every SSUBSCRIBE's channels to its per-slot list without checking for
 * repeats (and re-sends the whole list after each reset): without this, every pass would grow it by one copy
 * of each channel. Internal field, so guarded: if a later ioredis renames it, this does nothing.
 */
function dedupeChannels(sub: ShardedSubscriber) {
  const bySlot = (sub as unknown as { shardedSubscribers?: { channels?: unknown } }).shardedSubscribers?.channels;
  if (!(bySlot instanceof Map)) return;
  for (const [slot, list] of bySlot) if (Array.isArray(list)) bySlot.set(slot, [...new Set(list)]);
}
