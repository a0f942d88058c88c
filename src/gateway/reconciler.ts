// One owner per key (issue 9): a room's subscription, a user's subscription, a user's presence in a room and a
// connection's presence entry each move between two states (on/off) through awaited backend calls. Without
// ordering, the late step of an older operation undoes a newer one (leave-then-join left rooms deaf; a join
// racing its connection's close left a ghost member). Here every key has one serial queue, and each step
// reads the key's *current* desired state from the local registry before acting, so whatever ran last
// reflects the newest state, and a step that failed is retried until the backend agrees.

export interface ReconcilerOptions {
  /** The state the local registry wants for this key now. */
  desired(key: string): boolean;
  /** Moves the backend to `to`. May throw: the state is then unknown and re-applied on the next sync. */
  apply(key: string, to: boolean): Promise<void>;
  /** Called when a background retry fails (logging). */
  onError?(key: string, err: unknown): void;
  /**
   * A number the backend bumps whenever it may have changed keys behind the reconciler's back (Redis presence:
   * a re-assert under a new incarnation, whose reap of the old one removes what the old one wrote). A step
   * skips its call only if the backend state it remembers was written in the current epoch; with an epoch, a
   * key seen for the first time is always applied once (a re-assert may have written it before any step did).
   */
  epoch?(): number;
}

interface Entry {
  /** What the backend is known to hold; null = unknown (a call failed midway). */
  actual: boolean | null;
  /** The backend epoch in which `actual` was written (-1: unknown). */
  epoch: number;
  tail: Promise<void>;
  pending: number;
}

const DONE: Promise<void> = Promise.resolve();

export class Reconciler {
  /** Keys with a step queued or running, or whose backend state is unknown (a failed step). */
  private readonly entries = new Map<string, Entry>();
  /**
   * Idle keys that are on, with the epoch their state was written in; idle keys that are off are not kept. Every
   * idle connection keeps its presence entry and its user's subscription on, so this holds about two keys per
   * connection: a Map entry costs ~170 heap bytes in Bun (an Entry with its promise ~90 more), a property of
   * a null-prototype object ~45 (a user or room named __proto__ is an ordinary key there). Kept as Entries in
   * a Map, they were ~1.5 KB of RSS per idle connection in the idle bench.
   */
  private readonly idleOn: Record<string, number> = Object.create(null);
  private idleOnCount = 0;
  /** Keys whose last step failed: retried by retryFailed(). */
  private readonly failed = new Set<string>();

  constructor(private readonly o: ReconcilerOptions) {}

  /**
   * Brings the key's backend state to what the registry wants at the time the step runs (after every step
   * queued before it). Rejects when that step failed; the key is then retried by retryFailed().
   */
  sync(key: string): Promise<void> {
    let entry = this.entries.get(key);
    if (!entry) {
      // Nothing queued for the key: a fresh entry starts from what the backend is known to hold.
      const on = this.idleOn[key];
      if (on !== undefined) {
        delete this.idleOn[key];
        this.idleOnCount--;
      }
      entry = { actual: on !== undefined, epoch: on ?? (this.o.epoch ? -1 : 0), tail: DONE, pending: 0 };
      this.entries.set(key, entry);
    }
    entry.pending++;
    const run = entry.tail.then(() => this.step(key, entry));
    entry.tail = run.then(
      () => this.settle(key, entry),
      () => this.settle(key, entry),
    );
    return run;
  }

  private async step(key: string, e: Entry) {
    const want = this.o.desired(key);
    // Read before the call: a bump during the call makes the next step call again.
    const epoch = this.o.epoch?.() ?? 0;
    if (e.actual === want && e.epoch === epoch) return;
    try {
      await this.o.apply(key, want);
      e.actual = want;
      e.epoch = epoch;
      this.failed.delete(key);
    } catch (err) {
      e.actual = null;
      this.failed.add(key);
      throw err;
    }
  }

  private settle(key: string, e: Entry) {
    if (--e.pending !== 0 || this.entries.get(key) !== e) return;
    // Idle keys whose backend state is off are forgotten (nothing to remember, the map stays bounded); those
    // that are on keep only their epoch. An unknown state (a failed step) keeps its entry for the retry.
    if (e.actual === null) return;
    this.entries.delete(key);
    if (e.actual) {
      this.idleOn[key] = e.epoch;
      this.idleOnCount++;
    }
  }

  /** Re-runs every key whose last step failed (call on a timer and after the store is back). */
  retryFailed() {
    for (const key of [...this.failed]) this.sync(key).catch((err) => this.o.onError?.(key, err));
  }

  /** Waits until every queued step is done (drain). */
  async idle() {
    await Promise.allSettled([...this.entries.values()].map((e) => e.tail));
  }

  /** Keys currently tracked (for tests: bounded, nothing left behind). */
  get size() {
    return this.entries.size + this.idleOnCount;
  }

  get failures() {
    return this.failed.size;
  }
}
