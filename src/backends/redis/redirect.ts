// History reads on Redis Cluster right after a failover or a slot migration can meet MOVED or ASK (or TRYAGAIN,
// CLUSTERDOWN while the cluster settles). ioredis follows a redirect itself only for a command sent alone or a
// pipeline whose commands all failed alike; the command connection auto-pipelines, so a read that shared its
// pipeline with a command that succeeded gets the redirect as its error, and the slot map stays stale. A resume
// would then say "not recovered" and a gap fill would wait a second for its retry. Reads are idempotent, so
// they refresh the slot map and try again at once.
const REDIRECT = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /;

/** The part of ioredis's Cluster this needs. */
export interface SlotMap {
  refreshSlotsCache(callback?: (err?: Error | null) => void): void;
}

export const isRedirect = (err: unknown): boolean => err instanceof Error && REDIRECT.test(err.message);

export interface RedirectRetry {
  /** Calls in all, the first included. */
  tries?: number;
  /** Wait after the map refresh before try n+1: delayMs × n (a migration's ASK needs a moment to end). */
  delayMs?: number;
}

/** Runs `read`; after a redirect refreshes `cluster`'s slot map and runs it again. `cluster` null: no retry. */
export async function followRedirects<T>(cluster: SlotMap | null, read: () => Promise<T>, { tries = 3, delayMs = 50 }: RedirectRetry = {}): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read();
    } catch (err) {
      if (!cluster || attempt >= tries || !isRedirect(err)) throw err;
      await new Promise<void>((resolve) => cluster.refreshSlotsCache(() => resolve()));
      await new Promise((resolve) => setTimeout(resolve, delayMs * attempt));
    }
  }
}
