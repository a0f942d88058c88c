// Counters of one gateway, read by /stats and /metrics. Plain fields: incremented on the hot path.
export class Stats {
  framesIn = 0;
  framesOut = 0;
  messagesRouted = 0;
  connectionsOpened = 0;
  replayed = 0;
  readonly errors: Record<string, number> = {};

  error(code: string) {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }
}
