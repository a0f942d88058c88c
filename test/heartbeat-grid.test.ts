// The heartbeat on the gateway's shared timer (src/ticks.ts), in a real gateway: with the default-like setting the
// sweep's steps run on the grid (4 s heartbeat: 100 ms steps), not on an interval of their own. A silent client is
// pinged after one interval and closed 4002 after two; one that answers stays. (test/single-node.test.ts covers a
// 200 ms heartbeat, whose 5 ms steps keep their own interval.)
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { rawConnect } from "./helpers/rawws.ts";
import { mintToken } from "./helpers/token.ts";

const HB = 4000;
let gw: GatewayProc;

beforeAll(async () => {
  gw = await startGateway({ WSGATE_HEARTBEAT_MS: String(HB) });
});
afterAll(async () => {
  await gw?.kill();
});

test("steps on the shared grid: a silent client is pinged after an interval and closed 4002 after two; a ponger stays", async () => {
  const silent = await rawConnect(gw.port, `/ws?token=${await mintToken("grid-silent")}`, { autoPong: false });
  const ponger = await rawConnect(gw.port, `/ws?token=${await mintToken("grid-ponger")}`, { autoPong: true });
  await silent.nextJson((f) => f.type === "welcome");
  const t0 = Date.now();
  const closed = await silent.waitClose(3 * HB);
  const after = Date.now() - t0;
  expect(closed).toEqual({ code: 4002, reason: expect.any(String) });
  expect(silent.pings).toBeGreaterThanOrEqual(1);
  // Two intervals of silence, and a whole interval since the ping: 2 to 2.5 intervals, with a little slack.
  expect(after).toBeGreaterThanOrEqual(2 * HB - 200);
  expect(after).toBeLessThan(2.5 * HB + 1000);
  expect(ponger.pings).toBeGreaterThanOrEqual(1);
  expect(ponger.closeFrame).toBeNull();
  ponger.end();
}, 20_000);

test("connections opened behind a pass begun with few are pinged within an interval and a quarter of falling silent", async () => {
  const anchor = await rawConnect(gw.port, `/ws?token=${await mintToken("grid-anchor")}`, { autoPong: true });
  await anchor.nextJson((f) => f.type === "welcome");
  // Let a pass begin while the anchor is (nearly) alone, then open many behind it.
  await Bun.sleep(300);
  const tokens = await Promise.all(Array.from({ length: 300 }, (_, i) => mintToken(`grid-late-${i}`)));
  const late = await Promise.all(tokens.map((t) => rawConnect(gw.port, `/ws?token=${t}`, { autoPong: true })));
  await Promise.all(late.map((c) => c.nextJson((f) => f.type === "welcome")));
  // Silent for an interval, then visited within a quarter of one (one pass: 10 steps of 100 ms); slack for load.
  await Bun.sleep(1.25 * HB + 1000);
  const unpinged = late.filter((c) => c.pings === 0).length;
  expect(unpinged).toBe(0);
  for (const c of [anchor, ...late]) c.end();
}, 20_000);
