// Counters of one gateway, read by /stats and /metrics. Plain fields: incremented on the hot path, turned into
// Prometheus metrics only at scrape time.
export class Stats {
  framesIn = 0;
  framesOut = 0;
  /** Frames Bun dropped instead of sending (send returned 0); each closed its connection 4029. */
  framesDropped = 0;
  messagesRouted = 0;
  connectionsOpened = 0;
  replayed = 0;
  /** Error frames and HTTP refusals by code. */
  readonly errors: Record<string, number> = {};
  /** Client frames answered with an error frame, by code. */
  readonly refused: Record<string, number> = {};
  /** Closed connections by close code. */
  readonly closes: Record<number, number> = {};
  /** Message timestamp to local socket write, once per message that reached a local recipient. */
  readonly delivery = new LatencyHistogram();

  error(code: string) {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }

  refusedFrame(code: string) {
    this.refused[code] = (this.refused[code] ?? 0) + 1;
    this.error(code);
  }

  closed(code: number) {
    this.closes[code] = (this.closes[code] ?? 0) + 1;
  }
}

/** Upper bounds in seconds: sub-millisecond on one machine up to seconds across regions under load. */
export const LATENCY_BOUNDS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;

/** A fixed-bucket histogram: one comparison walk and two adds per observation, no allocation. */
export class LatencyHistogram {
  /** counts[i] = observations <= LATENCY_BOUNDS_S[i] and above the previous bound; the last slot is +Inf. */
  readonly counts = new Array<number>(LATENCY_BOUNDS_S.length + 1).fill(0);
  sum = 0;
  count = 0;

  observeMs(ms: number) {
    const s = Math.max(0, ms) / 1000;
    let i = 0;
    while (i < LATENCY_BOUNDS_S.length && s > LATENCY_BOUNDS_S[i]!) i++;
    this.counts[i]!++;
    this.sum += s;
    this.count++;
  }
}
