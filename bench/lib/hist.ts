// Log-linear latency histogram: buckets 1% wide from 1 µs up, so a percentile is within ~1% and
// histograms from several load-generator processes merge by adding counts.
const BASE = Math.log(1.01);
const SIZE = 2200; // 1.01^2200 µs ≈ 3.2e9 µs ≈ 53 min: nothing real falls off the end

export type SparseHist = [number, number][];

export class Hist {
  readonly counts = new Uint32Array(SIZE);
  n = 0;
  max = 0; // ms
  min = Infinity; // ms, may be negative if clocks disagree
  sum = 0; // ms

  /** Records one latency in milliseconds. */
  add(ms: number): void {
    this.n++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
    if (ms < this.min) this.min = ms;
    const us = ms * 1000;
    const i = us <= 1 ? 0 : Math.min(SIZE - 1, Math.floor(Math.log(us) / BASE));
    this.counts[i]!++;
  }

  reset(): void {
    this.counts.fill(0);
    this.n = 0;
    this.max = 0;
    this.min = Infinity;
    this.sum = 0;
  }

  sparse(): SparseHist {
    const out: SparseHist = [];
    for (let i = 0; i < SIZE; i++) if (this.counts[i]) out.push([i, this.counts[i]!]);
    return out;
  }

  merge(s: SparseHist, n: number, max: number, min: number, sum: number): void {
    for (const [i, c] of s) this.counts[i]! += c;
    this.n += n;
    this.sum += sum;
    if (max > this.max) this.max = max;
    if (min < this.min) this.min = min;
  }

  /** p in [0, 1]; milliseconds, the geometric middle of the bucket holding that rank. */
  pct(p: number): number {
    if (this.n === 0) return NaN;
    const rank = Math.max(1, Math.ceil(p * this.n));
    let seen = 0;
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return i === 0 ? 0.001 : Math.min(this.max, Math.exp((i + 0.5) * BASE) / 1000);
    }
    return this.max;
  }

  mean(): number { return this.n ? this.sum / this.n : NaN; }
}
