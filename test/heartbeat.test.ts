// The heartbeat sweep's close rule (src/gateway/timers.ts), on an injected clock: a silent connection is closed
// 4002 only once a whole interval has passed since its ping, and never on the first step after the gateway's
// own loop stalled (its pongs may be unread in the socket). Both cases closed live clients before the fix.
import { expect, test } from "bun:test";
import type { Conn } from "../src/connections.ts";
import { Connections } from "../src/connections.ts";
import type { GatewayContext } from "../src/gateway/context.ts";
import { heartbeatSweep } from "../src/gateway/timers.ts";
import { CLOSE } from "../src/protocol/codes.ts";

const HB = 1000;

function setup(conn: { lastSeen: number; pingedAt: number }) {
  let t = 0;
  const conns = new Connections();
  const pings: number[] = [];
  const c = { id: "c1", user: "u", joined: null, closed: false, ...conn, ws: { ping: () => pings.push(t) } } as unknown as Conn;
  conns.add(c);
  const closes: { at: number; code: number }[] = [];
  const ctx = { config: { heartbeatMs: HB }, conns, now: () => t } as unknown as GatewayContext;
  // As the gateway's close handler does once the socket is gone: the connection leaves the registry.
  const sweep = heartbeatSweep(ctx, (closed, code) => void (closes.push({ at: t, code }), conns.remove(closed)), () => {});
  const stepAt = (at: number) => {
    t = at;
    sweep.step();
  };
  return { c, pings, closes, stepAt, stepMs: sweep.stepMs };
}

test("a connection pinged late still gets a whole interval to answer", () => {
  // Silent for 1.95 intervals and never pinged (the sweep was slow to reach it).
  const s = setup({ lastSeen: -1950, pingedAt: -1950 });
  s.stepAt(20);
  expect(s.pings).toEqual([20]);
  for (let at = 20 + s.stepMs; at < 20 + HB; at += s.stepMs) s.stepAt(at);
  expect(s.closes).toEqual([]); // two intervals of silence passed, but not one since the ping
  for (let at = 20 + HB; at < 20 + HB + 4 * s.stepMs; at += s.stepMs) s.stepAt(at);
  expect(s.closes.map((x) => x.code)).toEqual([CLOSE.heartbeat]);
  expect(s.closes[0]!.at).toBeGreaterThanOrEqual(20 + HB);
});

test("no close on the first step after the gateway stalled; the pong read after it keeps the connection", () => {
  // Silent for five intervals, pinged 3.9 s ago: due, by the clock. But the loop was away 600 ms (24 steps).
  const s = setup({ lastSeen: -5000, pingedAt: -3900 });
  s.stepAt(600);
  expect(s.closes).toEqual([]);
  // The loop reads the socket: the pong was there.
  s.c.lastSeen = 600;
  for (let at = 600 + s.stepMs; at < 600 + HB; at += s.stepMs) s.stepAt(at);
  expect(s.closes).toEqual([]);
});

test("a connection that stays silent is still closed, a step after a stall", () => {
  const s = setup({ lastSeen: -5000, pingedAt: -3900 });
  s.stepAt(600);
  expect(s.closes).toEqual([]);
  for (let at = 600 + s.stepMs; at < 600 + 4 * s.stepMs; at += s.stepMs) s.stepAt(at);
  expect(s.closes.map((x) => x.code)).toEqual([CLOSE.heartbeat]);
});
