// Exponential backoff with full jitter: delay = random(0, min(max, initial * factor^attempt)).
// Full jitter spreads a crowd of clients that lost the same gateway over the whole window,
// so the survivors are not hit by one synchronised wave.
import type { BackoffOptions } from "./types.ts";

export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = opts.initialMs ?? 250;
  const max = opts.maxMs ?? 15_000;
  const factor = opts.factor ?? 2;
  // Cap the exponent so a long outage cannot overflow to Infinity.
  const ceiling = Math.min(max, initial * Math.pow(factor, Math.min(attempt, 32)));
  return Math.floor(random() * ceiling);
}
