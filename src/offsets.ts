// History offsets `<epoch>:<seq>` (PROTOCOL §5) and the one rule that decides what a resume gets.
export const OFFSET_RE = /^[^:\s]{1,64}:\d{1,16}$/;

export interface Offset {
  epoch: string;
  seq: number;
}

/** null when malformed, including a seq above 2^53 - 1 (PROTOCOL §8.2: it could not be compared exactly). */
export function parseOffset(s: string): Offset | null {
  if (!OFFSET_RE.test(s)) return null;
  const i = s.indexOf(":");
  const seq = Number(s.slice(i + 1));
  // Above 2^53-1 a seq is no longer exact as a number (§8.2: may be refused as malformed).
  if (!Number.isSafeInteger(seq)) return null;
  return { epoch: s.slice(0, i), seq };
}

/** Is `offset` (same epoch) at or before `last`? Offsets from another epoch are never duplicates. */
export function seenBefore(offset: string, last: Offset): boolean {
  const o = parseOffset(offset);
  return o !== null && o.epoch === last.epoch && o.seq <= last.seq;
}

/**
 * Given the store's current epoch/seq and the retained entries after `since` (same epoch) or all retained
 * entries (other epoch), says whether the client missed nothing.
 */
export function isRecovered(since: Offset, epoch: string | null, currentSeq: number, firstRetainedSeq: number | null): boolean {
  if (epoch === null || epoch !== since.epoch) return false;
  if (since.seq > currentSeq) return false;
  if (firstRetainedSeq === null) return currentSeq === since.seq;
  return firstRetainedSeq <= since.seq + 1;
}
