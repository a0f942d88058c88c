// Per-key ordering (issue 9): no late step of an older operation undoes a newer one, failures are retried,
// and nothing is kept for keys that are off.
import { expect, test } from "bun:test";
import { Reconciler } from "../src/gateway/reconciler.ts";

/** A backend whose calls finish only when the test says so, in any order. */
function slowBackend() {
  const state = new Map<string, boolean>();
  const calls: { key: string; to: boolean; finish(fail?: boolean): void }[] = [];
  const apply = (key: string, to: boolean) =>
    new Promise<void>((resolve, reject) => {
      calls.push({
        key,
        to,
        finish(fail) {
          if (fail) return reject(new Error("store down"));
          state.set(key, to);
          resolve();
        },
      });
    });
  return { state, calls, apply };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

test("leave then join while the leave's call is in flight: the join wins (rooms no longer go deaf)", async () => {
  const want = new Map<string, boolean>();
  const b = slowBackend();
  const r = new Reconciler({ desired: (k) => want.get(k) ?? false, apply: b.apply });
  want.set("room", true);
  const j1 = r.sync("room");
  await tick();
  b.calls[0]!.finish();
  await j1;
  want.set("room", false);
  const leave = r.sync("room");
  await tick();
  want.set("room", true);
  const join = r.sync("room");
  await tick();
  // Only one call at a time per key: the unsubscribe is in flight, the subscribe waits for it.
  expect(b.calls.map((c) => c.to)).toEqual([true, false]);
  b.calls[1]!.finish();
  await leave;
  await tick();
  expect(b.calls.map((c) => c.to)).toEqual([true, false, true]);
  b.calls[2]!.finish();
  await join;
  expect(b.state.get("room")).toBe(true);
});

test("a join racing the close: the close's step runs after the join's and undoes it (no ghost member)", async () => {
  const want = new Map<string, boolean>();
  const b = slowBackend();
  const r = new Reconciler({ desired: (k) => want.get(k) ?? false, apply: b.apply });
  want.set("room|bob", true);
  const join = r.sync("room|bob");
  await tick();
  want.set("room|bob", false); // the connection closed while joinRoom was in flight
  const close = r.sync("room|bob");
  b.calls[0]!.finish();
  await join;
  await tick();
  expect(b.calls.map((c) => c.to)).toEqual([true, false]);
  b.calls[1]!.finish();
  await close;
  expect(b.state.get("room|bob")).toBe(false);
  expect(r.size).toBe(0);
});

test("steps that find the backend already right make no call", async () => {
  const want = new Map<string, boolean>();
  const b = slowBackend();
  const r = new Reconciler({ desired: (k) => want.get(k) ?? false, apply: b.apply });
  want.set("k", true);
  const a = r.sync("k");
  want.set("k", false);
  const c = r.sync("k");
  want.set("k", true);
  const d = r.sync("k");
  await tick();
  b.calls[0]!.finish();
  await Promise.all([a, c, d]);
  // The second and third steps both read "true": nothing to do.
  expect(b.calls).toHaveLength(1);
});

test("a failed step rejects its caller, and retryFailed brings the key to the desired state", async () => {
  const want = new Map<string, boolean>();
  const b = slowBackend();
  const errors: string[] = [];
  const r = new Reconciler({ desired: (k) => want.get(k) ?? false, apply: b.apply, onError: (k) => errors.push(k) });
  want.set("k", true);
  const a = r.sync("k");
  await tick();
  b.calls[0]!.finish(true);
  await expect(a).rejects.toThrow("store down");
  expect(r.failures).toBe(1);
  // Meanwhile the connection left: the retry must remove what the failed call may have written.
  want.set("k", false);
  r.retryFailed();
  await tick();
  expect(b.calls[1]!.to).toBe(false);
  b.calls[1]!.finish();
  await r.idle();
  expect(r.failures).toBe(0);
  expect(b.state.get("k")).toBe(false);
  expect(r.size).toBe(0);
});

test("40 rooms left and re-joined at once (reconnect + re-join): every room ends subscribed", async () => {
  const want = new Map<string, boolean>();
  const state = new Map<string, boolean>();
  // Unsubscribe answers late, subscribe early: the order that used to leave 39 of 40 rooms deaf.
  const r = new Reconciler({
    desired: (k) => want.get(k) ?? false,
    apply: async (k, to) => {
      await Bun.sleep(to ? 1 : 5);
      state.set(k, to);
    },
  });
  const rooms = Array.from({ length: 40 }, (_, i) => `r${i}`);
  for (const x of rooms) want.set(x, true);
  await Promise.all(rooms.map((x) => r.sync(x)));
  for (const x of rooms) want.set(x, false);
  const leaves = rooms.map((x) => r.sync(x));
  for (const x of rooms) want.set(x, true);
  await Promise.all([...leaves, ...rooms.map((x) => r.sync(x))]);
  expect(rooms.filter((x) => state.get(x) !== true)).toEqual([]);
});
