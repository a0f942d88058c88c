// §8.4 Losing Redis for long: a gateway cut from its primary (through a delay proxy) for
// WSGATE_REDIS_LOST_DRAIN_MS turns not-ready and closes its clients with 1001 spread over
// WSGATE_DRAIN_MS; once Redis answers it is ready and accepts connections. With 0 it never closes.
import { afterAll, expect, test } from "bun:test";
import { startDelayProxy, type DelayProxy } from "../harness/delay-proxy.ts";
import { startRedis, type RedisServer } from "../harness/redis.ts";
import { connect, type TestClient } from "./helpers/client.ts";
import { startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { mintToken } from "./helpers/token.ts";

let redis: RedisServer | undefined;
const proxies: DelayProxy[] = [];
const gateways: GatewayProc[] = [];
const clients: TestClient[] = [];
afterAll(async () => {
  for (const c of clients) c.close();
  for (const g of gateways) await g.kill();
  for (const p of proxies) p.close();
  await redis?.stop();
});

async function readyStatus(gw: GatewayProc): Promise<number> {
  try {
    return (await fetch(`${gw.http}/ready`, { signal: AbortSignal.timeout(2000) })).status;
  } catch {
    return 0;
  }
}

async function until(what: string, ok: () => Promise<boolean>, ms: number): Promise<number> {
  const t0 = Date.now();
  for (let i = 0; i < 10_000 && Date.now() - t0 < ms; i++) {
    if (await ok()) return Date.now() - t0;
    await Bun.sleep(50);
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

async function cutGateway(lostMs: number) {
  redis ??= await startRedis();
  const link = startDelayProxy({ target: { host: "127.0.0.1", port: redis.port } });
  proxies.push(link);
  const gw = await startGateway({ REDIS_URL: `redis://127.0.0.1:${link.port}`, WSGATE_REDIS_LOST_DRAIN_MS: String(lostMs), WSGATE_DRAIN_MS: "400" });
  gateways.push(gw);
  const users = await Promise.all(["u1", "u2", "u3", "u4"].map(async (u) => connect(`${gw.ws}?token=${await mintToken(u)}`)));
  clients.push(...users);
  return { link, gw, users };
}

test("cut from the primary: not-ready, then clients closed 1001 over the drain window; healed: ready and accepting", async () => {
  const { link, gw, users } = await cutGateway(1500);
  expect((await users[0]!.request({ type: "send", to: "u2", data: 1 })).type).toBe("ack");

  const cutAt = Date.now();
  link.partition("stall");
  const notReadyAfter = await until("not ready", async () => (await readyStatus(gw)) === 503, 8000);
  const closes = await Promise.all(users.map((u) => u.waitClose(15_000).then((c) => ({ ...c, at: Date.now() - cutAt }))));
  console.log(`cut: /ready 503 after ${notReadyAfter} ms; closes at ${closes.map((c) => c.at).join(", ")} ms`);
  for (const c of closes) expect(c.code).toBe(1001);
  // Not before the window (detection + WSGATE_REDIS_LOST_DRAIN_MS), and spread rather than all at once.
  expect(Math.min(...closes.map((c) => c.at))).toBeGreaterThanOrEqual(1500);
  expect(Math.max(...closes.map((c) => c.at)) - Math.min(...closes.map((c) => c.at))).toBeGreaterThanOrEqual(150);
  const body = await (await fetch(`${gw.http}/ready`)).json();
  expect(body.status).toMatch(/redis_lost|redis_down/);
  // A new client is refused while the store is away.
  await expect(connect(`${gw.ws}?token=${await mintToken("u5")}`, undefined, 3000)).rejects.toThrow();

  link.heal();
  const readyAfter = await until("ready again", async () => (await readyStatus(gw)) === 200, 15_000);
  console.log(`healed: /ready 200 after ${readyAfter} ms`);
  const back = await connect(`${gw.ws}?token=${await mintToken("u1")}`, undefined, 5000);
  clients.push(back);
  expect((await back.request({ type: "send", to: "u2", data: 2 }, 10_000)).type).toBe("ack");
  // Back for good: no late close from the earlier round.
  await Bun.sleep(1000);
  expect(back.closed).toBeNull();
}, 60_000);

test("WSGATE_REDIS_LOST_DRAIN_MS=0: never closes its clients for a lost Redis", async () => {
  const { link, gw, users } = await cutGateway(0);
  link.partition("reset");
  await until("not ready", async () => (await readyStatus(gw)) === 503, 8000);
  await Bun.sleep(2500);
  for (const u of users) expect(u.closed).toBeNull();
  link.heal();
  await until("ready again", async () => (await readyStatus(gw)) === 200, 15_000);
  expect((await users[0]!.request({ type: "send", to: "u2", data: 3 }, 10_000)).type).toBe("ack");
}, 40_000);
