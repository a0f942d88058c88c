// Token `rooms` patterns (PROTOCOL §2, §8.2): `*` matches any run of characters, everything else is literal.
// Matched in time linear in pattern + room: a regex built from `*`→`.*` backtracks exponentially on
// patterns like `a*a*a*a*a*a*b` (9.7 s for one 128-char room, blocking the whole gateway).
//
// With `*` as the only wildcard, greedy matching is exact: the part before the first `*` must be a prefix,
// the part after the last `*` a suffix, and each middle part may take its leftmost occurrence after the
// previous one (a later occurrence never helps). Each middle part is found with KMP, and each search starts
// where the previous match ended, so the whole room is scanned at most once.

export type RoomMatcher = (room: string) => boolean;
export const ALL_ROOMS: RoomMatcher = () => true;
export const NO_ROOMS: RoomMatcher = () => false;

/** Counts character comparisons, so tests can assert linear work without timing anything. */
export interface StepCounter {
  steps: number;
}

interface Segment {
  text: string;
  /** KMP failure table: fail[i] = length of the longest proper border of text[0..i]. */
  fail: Int32Array;
}

interface CompiledGlob {
  prefix: string;
  suffix: string;
  middle: Segment[];
  /** No `*` at all: the pattern is the room name. */
  exact: boolean;
}

export function compileGlob(pattern: string): CompiledGlob {
  const parts = pattern.split("*");
  if (parts.length === 1) return { prefix: pattern, suffix: "", middle: [], exact: true };
  const middle = parts
    .slice(1, -1)
    .filter((t) => t.length > 0)
    .map((text) => ({ text, fail: failureTable(text) }));
  return { prefix: parts[0]!, suffix: parts[parts.length - 1]!, middle, exact: false };
}

function failureTable(t: string): Int32Array {
  const fail = new Int32Array(t.length);
  let k = 0;
  for (let i = 1; i < t.length; i++) {
    while (k > 0 && t.charCodeAt(i) !== t.charCodeAt(k)) k = fail[k - 1]!;
    if (t.charCodeAt(i) === t.charCodeAt(k)) k++;
    fail[i] = k;
  }
  return fail;
}

/** Index just past the leftmost occurrence of seg in s[from..end), or -1. */
function findAfter(s: string, from: number, end: number, seg: Segment, counter?: StepCounter): number {
  const t = seg.text;
  let k = 0;
  for (let i = from; i < end; i++) {
    if (counter) counter.steps++;
    while (k > 0 && s.charCodeAt(i) !== t.charCodeAt(k)) {
      k = seg.fail[k - 1]!;
      if (counter) counter.steps++;
    }
    if (s.charCodeAt(i) === t.charCodeAt(k)) k++;
    if (k === t.length) return i + 1;
  }
  return -1;
}

export function matchGlob(g: CompiledGlob, room: string, counter?: StepCounter): boolean {
  if (g.exact) return room === g.prefix;
  if (room.length < g.prefix.length + g.suffix.length) return false;
  if (!room.startsWith(g.prefix) || !room.endsWith(g.suffix)) return false;
  if (counter) counter.steps += g.prefix.length + g.suffix.length;
  // Middle parts must fit between the prefix and the suffix, without overlapping either.
  let pos = g.prefix.length;
  const end = room.length - g.suffix.length;
  for (const seg of g.middle) {
    pos = findAfter(room, pos, end, seg, counter);
    if (pos < 0) return false;
  }
  return true;
}

export function compileRoomPatterns(patterns: readonly string[]): RoomMatcher {
  if (patterns.length === 0) return NO_ROOMS;
  if (patterns.includes("*")) return ALL_ROOMS;
  const globs = patterns.map(compileGlob);
  return (room) => {
    for (const g of globs) if (matchGlob(g, room)) return true;
    return false;
  };
}
