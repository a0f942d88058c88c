// Periodic jobs share wake-ups (src/ticks.ts): one timer per gateway, jobs whose periods divide one another run in
// the same wake-up, on the wall-clock grid, without drift.
import { expect, test } from "bun:test";
import { createTicks, gridPeriod } from "../src/ticks.ts";

test("jobs of 250, 500 and 1000 ms fire on the grid, the longer ones in the same turns as the shortest", async () => {
  const fired: Record<number, number[]> = { 250: [], 500: [], 1000: [] };
  // A wake-up counter: bumped once the current pass over due timers is over (setImmediate runs after it), so jobs
  // run in one wake-up see the same value and jobs in different wake-ups do not.
  let turn = 0;
  let armed = false;
  const mark = () => {
    if (!armed) {
      armed = true;
      setImmediate(() => {
        turn++;
        armed = false;
      });
    }
    return turn;
  };
  const clock = createTicks();
  const ticks = [250, 500, 1000].map((p) => clock.every(p, () => fired[p]!.push(mark())));
  const at: number[] = [];
  const probe = clock.every(250, () => at.push(Date.now() % 250));
  await Bun.sleep(2100);
  // A stopped job no longer runs; the others go on.
  ticks[1]!.stop();
  const [n250, n500] = [fired[250]!.length, fired[500]!.length];
  await Bun.sleep(600);
  expect(fired[500]!.length).toBe(n500);
  expect(fired[250]!.length).toBeGreaterThan(n250);
  for (const t of [...ticks, probe]) t.stop();
  expect(fired[250]!.length).toBeGreaterThanOrEqual(7);
  expect(fired[500]!.length).toBeGreaterThanOrEqual(3);
  expect(fired[1000]!.length).toBeGreaterThanOrEqual(1);
  // Every 500 and 1000 ms firing happened in a turn the 250 ms job also ran in.
  for (const t of [...fired[500]!, ...fired[1000]!]) expect(fired[250]).toContain(t);
  // On the grid (a little late at most), so they do not drift apart over time.
  for (const ms of at) expect(ms).toBeLessThan(60);
});

test("stop() ends a job; periods under 100 ms run on their own interval; gridPeriod snaps to shared periods", async () => {
  let n = 0;
  const t = createTicks().every(10, () => n++);
  await Bun.sleep(60);
  t.stop();
  const seen = n;
  expect(seen).toBeGreaterThan(2);
  await Bun.sleep(40);
  expect(n).toBe(seen);
  expect([gridPeriod(625), gridPeriod(1250), gridPeriod(5000), gridPeriod(130), gridPeriod(5)]).toEqual([500, 1000, 5000, 125, 5]);
});
