// Periodic jobs on one shared wall-clock grid. An idle gateway's CPU is mostly wake-ups (~0.1–0.2 ms each on a
// small VM, issue 12), not the jobs themselves: five setIntervals on five phases wake it five times where one
// would do. A job every `periodMs` runs at the multiples of periodMs since the epoch, and one timer serves every
// job of a gateway, so jobs whose periods divide one another (250, 500, 1000, 5000 ms) run in the same wake-up.
// Drift-free (each job aims at its next grid point, not "now + period"); the timer is unref'd.

export interface Tick {
  stop(): void;
}

export interface Ticks {
  /** Runs `fn` at every multiple of `periodMs` (its first run at the next one). */
  every(periodMs: number, fn: () => void): Tick;
}

/** Periods below this get their own interval (tests run 5 ms heartbeat steps): sharing buys them nothing. */
const SHARED_MIN_MS = 100;
/** Jobs due this close after the earliest one run in its wake-up rather than in one of their own. */
const SLACK_MS = 2;

interface Job {
  period: number;
  due: number;
  fn: () => void;
}

export function createTicks(now: () => number = Date.now): Ticks {
  const jobs = new Set<Job>();
  let timer: ReturnType<typeof setTimeout> | null = null;
  let armedFor = Infinity;

  const nextGrid = (period: number, t: number) => (Math.floor(t / period) + 1) * period;

  function arm() {
    let earliest = Infinity;
    for (const j of jobs) earliest = Math.min(earliest, j.due);
    if (earliest === armedFor) return;
    if (timer) clearTimeout(timer);
    timer = null;
    armedFor = earliest;
    if (earliest === Infinity) return;
    timer = setTimeout(fire, Math.max(0, earliest - now()));
    timer.unref?.();
  }

  function fire() {
    timer = null;
    armedFor = Infinity;
    const t = now();
    const due = [...jobs].filter((j) => j.due <= t + SLACK_MS);
    for (const j of due) j.due = nextGrid(j.period, Math.max(t, j.due));
    arm();
    for (const j of due) if (jobs.has(j)) j.fn();
  }

  return {
    every(periodMs, fn) {
      const period = Math.max(1, Math.round(periodMs));
      if (period < SHARED_MIN_MS) {
        const t = setInterval(fn, period);
        t.unref?.();
        return { stop: () => clearInterval(t) };
      }
      const job: Job = { period, due: nextGrid(period, now()), fn };
      jobs.add(job);
      arm();
      return {
        stop() {
          jobs.delete(job);
          arm();
        },
      };
    },
  };
}

/**
 * The largest grid-friendly period (a divisor or multiple of one second) not above `ms`, so a job derived from a
 * setting (a heartbeat / 40) still shares its wake-ups. Below SHARED_MIN_MS, `ms` itself.
 */
export function gridPeriod(ms: number): number {
  if (ms < SHARED_MIN_MS) return Math.max(1, Math.floor(ms));
  if (ms >= 1000) return Math.floor(ms / 1000) * 1000;
  for (const p of [500, 250, 200, 125, 100]) if (p <= ms) return p;
  return ms;
}
