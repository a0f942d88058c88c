// What every scenario gets: the options, the systems to run against, somewhere to put rows and
// details, and a clock so the whole run stays inside its time bound.
import type { Row } from "./report.ts";
import type { Kind, Options as TargetOptions } from "./target.ts";

export interface RunOptions extends TargetOptions {
  kinds: Kind[];
  conns: number | null; // the scenario's main size, when given on the command line
  rates: number[];
  durationS: number;
  windowS: number; // presence measurement window
  roomUsers: number;
  gateways: number; // scale-out gateway count
  quick: boolean;
  /** regions scenario: region list and round trips (`ord,ams,sin`, `ord-ams=90,...`). */
  regions?: string;
  rtt?: string;
}

export interface Ctx {
  opts: RunOptions;
  rows: Row[];
  detail: Record<string, unknown>;
  log(msg: string): void;
  /** Seconds since the run started. */
  elapsed(): number;
  /** CPU other processes used during each measured step: the shared-machine noise behind the figures. */
  noise: { label: string; otherCores: number; stealCores: number }[];
}

/**
 * Serialises async steps in arrival order. Two searches that each await `run` before every step
 * end up alternating, so wsgate and the floor meet the same background load, step for step.
 */
export class Turns {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn);
    this.tail = p.catch(() => {});
    return p;
  }
}

export const sleep = (ms: number) => Bun.sleep(ms);

/** Runs fn against each requested kind, wsgate first, and collects its result per kind. */
export async function perKind<T>(ctx: Ctx, fn: (kind: Kind) => Promise<T>): Promise<Partial<Record<Kind, T>>> {
  const out: Partial<Record<Kind, T>> = {};
  for (const k of ctx.opts.kinds) out[k] = await fn(k);
  return out;
}
