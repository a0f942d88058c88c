// src/backends/redis/shard-resubscribe.ts without Redis: a fake cluster subscriber whose SSUBSCRIBE fails
// the way ioredis's does while a failover settles (CLUSTERDOWN, MOVED), to pin down when passes run and
// that a failed pass is repeated until every channel is confirmed.
import { expect, test } from "bun:test";
import { EventEmitter } from "node:events";
import { ShardResubscriber } from "../src/backends/redis/shard-resubscribe.ts";
import { createLogger } from "../src/log.ts";

const log = createLogger("error", { test: "shard-resubscribe" });

class FakeSub extends EventEmitter {
  calls: string[] = [];
  failNext = 0;
  refreshes = 0;
  async ssubscribe(ch: string) {
    this.calls.push(ch);
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error("CLUSTERDOWN The cluster is down");
    }
    return 1;
  }
  refreshSlotsCache(cb?: () => void) {
    this.refreshes++;
    cb?.();
  }
}

function setup(wanted = ["wsg:u:{a}", "wsg:u:{b}", "wsg:r:{room}"]) {
  const sub = new FakeSub();
  const events: string[] = [];
  const r = new ShardResubscriber(sub, {
    wanted: () => wanted,
    beforePass: () => events.push("gap"),
    afterPass: async () => void events.push("fill"),
    log,
    debounceMs: 10,
    retryMs: [20, 40],
  });
  r.start();
  return { sub, r, events };
}

test("a burst of topology signals makes one pass over every wanted channel, then the gap is filled", async () => {
  const { sub, r, events } = setup();
  for (let i = 0; i < 20; i++) sub.emit(i % 2 ? "refresh" : "-node");
  await Bun.sleep(60);
  expect(sub.calls.sort()).toEqual(["wsg:r:{room}", "wsg:u:{a}", "wsg:u:{b}"]);
  expect(events).toEqual(["gap", "fill"]);
  expect(r.stats).toEqual({ passes: 1, failedPasses: 0 });
  r.stop();
});

test("a pass with an unconfirmed channel is repeated (slot map refreshed first) until every channel is confirmed", async () => {
  const { sub, r, events } = setup();
  sub.failNext = 4; // the first pass (3 channels) and the first channel of the second fail
  sub.emit("subscribersReady");
  await Bun.sleep(200);
  expect(r.stats).toEqual({ passes: 3, failedPasses: 2 });
  expect(sub.refreshes).toBe(2);
  expect(sub.calls.length).toBe(9);
  expect(events).toEqual(["gap", "gap", "gap", "fill"]);
  r.stop();
});

test("a signal during a pass is not lost: another pass follows it", async () => {
  const { sub, r } = setup();
  let release!: () => void;
  const gate = new Promise<void>((res) => (release = res));
  const orig = sub.ssubscribe.bind(sub);
  sub.ssubscribe = async (ch: string) => {
    await gate;
    return orig(ch);
  };
  sub.emit("refresh");
  await Bun.sleep(30);
  sub.emit("-node"); // arrives while the first pass waits for its replies
  release();
  await Bun.sleep(80);
  expect(r.stats.passes).toBe(2);
  r.stop();
});

test("stopped: no pass runs", async () => {
  const { sub, r } = setup();
  r.stop();
  sub.emit("refresh");
  await Bun.sleep(40);
  expect(sub.calls).toEqual([]);
});
