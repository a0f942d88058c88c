// A rolling deploy behind a proxy that, like Fly.io's, routes new connections by a periodic /ready check.
// With WSGATE_DRAIN_DELAY_MS longer than the check interval, SIGTERM turns /ready to 503 at once while every
// connection stays open; the proxy's next check takes the machine out; only then do the 1001 closes start,
// so no reconnect reaches the draining gateway. The control run (no delay, no client jitter) shows the
// same measurement catching reconnects routed to the draining machine.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { WsgateClient } from "../src/client/index.ts";
import { startRedis, type RedisServer } from "../harness/redis.ts";
import { waitFor } from "./helpers/cluster.ts";
import { startFlyProxy, type FlyProxy } from "./helpers/fly-proxy.ts";
import { startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { mintToken } from "./helpers/token.ts";

const CHECK_MS = 1000;
const N = 10;

let redis: RedisServer;
const procs: GatewayProc[] = [];
const proxies: FlyProxy[] = [];
const clients: WsgateClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const c of clients) c.close();
  for (const p of proxies) p.close();
  for (const g of procs) await g.kill("SIGKILL");
  await redis?.stop();
});

interface Tracked {
  client: WsgateClient;
  gateways: string[];
  disconnects: { t: number; code: number }[];
}

async function scenario(drainDelayMs: number, jitterMs: number) {
  const old = await startGateway({ REDIS_URL: redis.url, WSGATE_DRAIN_DELAY_MS: String(drainDelayMs), WSGATE_DRAIN_MS: "300" });
  const fresh = await startGateway({ REDIS_URL: redis.url });
  procs.push(old, fresh);
  const proxy = await startFlyProxy(
    [
      { name: old.id, port: old.port },
      { name: fresh.id, port: fresh.port },
    ],
    CHECK_MS,
  );
  proxies.push(proxy);
  const tracked: Tracked[] = [];
  for (let i = 0; i < N; i++) {
    const user = `roll-${drainDelayMs}-${i}`;
    const client = new WsgateClient({
      url: `ws://127.0.0.1:${proxy.port}/ws`,
      token: () => mintToken(user),
      goingAwayJitterMs: jitterMs,
      backoff: { initialMs: 50, maxMs: 300 },
    });
    clients.push(client);
    const t: Tracked = { client, gateways: [], disconnects: [] };
    client.on("open", (info) => t.gateways.push(info.welcome.gateway));
    client.on("disconnect", (d) => t.disconnects.push({ t: Date.now(), code: d.code }));
    tracked.push(t);
  }
  await waitFor("every client open", () => tracked.every((t) => t.gateways.length === 1), 10_000);
  const onOld = tracked.filter((t) => t.gateways[0] === old.id);
  expect(onOld.length).toBeGreaterThan(0); // round robin put some on the machine being replaced

  await proxy.checkNow(); // the next check is CHECK_MS from now
  const sigterm = Date.now();
  old.proc.kill("SIGTERM");
  return { old, fresh, proxy, tracked, onOld, sigterm };
}

describe("rolling deploy behind a checking proxy", () => {
  test("drain delay longer than the check interval: /ready fails first, no reconnect lands on the draining gateway", async () => {
    const DELAY = 1800;
    const { old, fresh, proxy, onOld, sigterm } = await scenario(DELAY, 500);

    // /ready fails at once, while the connections are still open and served.
    await waitFor("old /ready 503", async () => (await fetch(`${old.http}/ready`)).status === 503, 1000, 20);
    const health = await fetch(`${old.http}/health`);
    expect(health.status).toBe(200); // still alive: only readiness changed
    await Bun.sleep(Math.max(0, sigterm + CHECK_MS + 200 - Date.now()));
    expect(proxy.healthy()).toEqual([fresh.id]); // the proxy's check has seen it
    for (const t of onOld) expect(t.disconnects).toEqual([]); // nobody closed yet
    expect((await onOld[0]!.client.ping()).type).toBe("pong"); // and they still work

    await waitFor("every moved client open on the new gateway", () => onOld.every((t) => t.gateways.length === 2), 15_000);
    for (const t of onOld) {
      expect(t.disconnects.length).toBe(1);
      expect(t.disconnects[0]!.code).toBe(1001);
      expect(t.disconnects[0]!.t).toBeGreaterThanOrEqual(sigterm + DELAY - 50); // closes only after the delay
      expect(t.gateways[1]).toBe(fresh.id);
    }
    const toOld = proxy.routed.filter((r) => r.t >= sigterm && r.backend === old.id);
    expect(toOld).toEqual([]);
    expect(await old.proc.exited).toBe(0);
  }, 30_000);

  test("control: without the delay, reconnects reach the draining gateway before the proxy notices", async () => {
    const { old, proxy, onOld, sigterm } = await scenario(0, 0);
    await waitFor("every moved client open elsewhere", () => onOld.every((t) => t.gateways.length === 2), 15_000);
    const toOld = proxy.routed.filter((r) => r.t >= sigterm && r.backend === old.id);
    expect(toOld.length).toBeGreaterThan(0); // refused with 503 there, retried: what the delay prevents
    for (const t of onOld) expect(t.gateways[1]).not.toBe(old.id);
  }, 30_000);
});
