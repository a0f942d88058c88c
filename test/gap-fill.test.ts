// src/backends/redis/gap-fill.ts without Redis: a fill whose read fails for one user waits for the batch's
// other reads, delivers them, and stays open for that user only; abandon closes what is given up.
import { expect, test } from "bun:test";
import { GapFill } from "../src/backends/redis/gap-fill.ts";
import type { Replay } from "../src/backends/types.ts";

const frames = (...offsets: string[]): Replay => ({ recovered: true, frames: offsets.map((offset) => ({ offset, frame: `f${offset}` })) });

function rig() {
  const g = new GapFill();
  const delivered: string[] = [];
  const reads: string[] = [];
  const deliver = (user: string, _frame: string, offset: string) => void delivered.push(`${user} ${offset}`);
  return { g, delivered, reads, deliver };
}

test("one user's failed read: the batch's other reads are waited for and delivered, the gap stays open for that user only", async () => {
  const { g, delivered, reads, deliver } = rig();
  g.note("a", "e:1");
  g.note("b", "e:1");
  g.begin();
  const down = new Error("MOVED 1 127.0.0.1:1");
  const first = await g.close(["a", "b"], async (user, since) => {
    reads.push(`${user} ${since}`);
    if (user === "a") throw down;
    await Bun.sleep(20); // slower than a's failure
    return frames("e:2", "e:3");
  }, deliver);
  expect(first).toEqual({ filled: 2, failed: ["a"], error: down });
  expect(delivered).toEqual(["b e:2", "b e:3"]);
  expect(g.open).toBe(true);

  // The retry reads only the user still open, from where it stood before the gap.
  const second = await g.close(["a", "b"], async (user, since) => {
    reads.push(`${user} ${since}`);
    return frames("e:2");
  }, deliver);
  expect(second).toEqual({ filled: 1, failed: [], error: undefined });
  expect(reads).toEqual(["a e:1", "b e:1", "a e:1"]);
  expect(delivered).toEqual(["b e:2", "b e:3", "a e:2"]);
  expect(g.open).toBe(false);
});

test("a new gap while a partly filled one is open takes the filled users back in", async () => {
  const { g, reads, deliver } = rig();
  g.note("a", "e:1");
  g.note("b", "e:1");
  g.begin();
  await g.close(["a", "b"], async (user) => {
    if (user === "a") throw new Error("CLUSTERDOWN");
    return frames("e:2");
  }, deliver);
  g.begin(); // the subscriber went away again: b may miss messages after e:2
  await g.close(["a", "b"], async (user, since) => {
    reads.push(`${user} ${since}`);
    return frames();
  }, deliver);
  expect(reads.sort()).toEqual(["a e:1", "b e:2"]);
  expect(g.open).toBe(false);
});

test("abandon gives up on users; the gap closes once none is left", async () => {
  const { g, deliver } = rig();
  g.note("a", "e:1");
  g.note("b", "e:1");
  g.begin();
  const r = await g.close(["a", "b"], async () => {
    throw new Error("TRYAGAIN");
  }, deliver);
  expect(r.failed.sort()).toEqual(["a", "b"]);
  g.abandon(["a"]);
  expect(g.open).toBe(true);
  g.abandon(["b"]);
  expect(g.open).toBe(false);
});
