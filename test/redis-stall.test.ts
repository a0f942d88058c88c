// A Redis that stops answering without closing its sockets (paused, partitioned): sends must not hang
// waiting for it, and must never be acked; once it answers again, traffic resumes.
import { afterAll, expect, test } from "bun:test";
import { connect } from "./helpers/client.ts";
import { startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { startRedis, type RedisServer } from "../harness/redis.ts";
import { mintToken } from "./helpers/token.ts";

let redis: RedisServer | undefined;
let gw: GatewayProc | undefined;
afterAll(async () => {
  if (redis) process.kill(redis.pid(), "SIGCONT");
  await gw?.kill();
  await redis?.stop();
});

test("a stalled Redis turns sends into `unavailable` within seconds, and traffic resumes after", async () => {
  redis = await startRedis();
  gw = await startGateway({ REDIS_URL: redis.url });
  const alice = await connect(`${gw.ws}?token=${await mintToken("alice")}`);
  expect((await alice.request({ type: "send", to: "bob", data: 1 })).type).toBe("ack");

  process.kill(redis.pid(), "SIGSTOP");
  const t0 = Date.now();
  const stalled = await alice.request({ type: "send", to: "bob", data: 2 }, 10_000);
  const waited = Date.now() - t0;
  console.log(`stalled Redis: send answered after ${waited} ms with ${stalled.type}/${stalled.code}`);
  expect(stalled).toMatchObject({ type: "error", code: "unavailable" });
  expect(waited).toBeLessThan(8000);

  process.kill(redis.pid(), "SIGCONT");
  const deadline = Date.now() + 10_000;
  let reply = await alice.request({ type: "send", to: "bob", data: 3 }, 10_000);
  while (reply.type !== "ack" && Date.now() < deadline) {
    await Bun.sleep(200);
    reply = await alice.request({ type: "send", to: "bob", data: 3 }, 10_000);
  }
  expect(reply.type).toBe("ack");
  alice.close();
}, 40_000);
