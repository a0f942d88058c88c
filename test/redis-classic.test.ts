// PROTOCOL §8.3 / DEPLOY.md "Upstash": REDIS_URL mode on a Redis 6.2 command set, classic Pub/Sub only. Only
// redis-server 7 is installed here, so 6.2 is simulated: every command Redis 7.0 added that a client could
// reach for (sharded Pub/Sub, functions, read-only scripts, the *MPOP/SINTERCARD family, EXPIRETIME) is
// renamed away. A gateway pair on it names the classic mode in its one start-up line and does a small round
// trip: direct send across gateways, room join/publish with events, presence, resume on the other gateway.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeAll, connectUser, isDirect, waitFor } from "./helpers/cluster.ts";
import type { TestClient } from "./helpers/client.ts";
import { startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { startRedis, type RedisServer } from "../harness/redis.ts";
import { redisCli } from "../harness/redis-cli.ts";

/** Redis 7.0's additions over 6.2 (top-level commands; subcommands cannot be renamed). */
const REDIS_7_ONLY = ["SPUBLISH", "SSUBSCRIBE", "SUNSUBSCRIBE", "FUNCTION", "FCALL", "FCALL_RO", "EVAL_RO", "EVALSHA_RO", "SINTERCARD", "LMPOP", "BLMPOP", "ZMPOP", "BZMPOP", "EXPIRETIME", "PEXPIRETIME"];

describe("Redis 6.2 command set (simulated): classic Pub/Sub only", () => {
  let redis: RedisServer;
  const gws: GatewayProc[] = [];
  const clients: TestClient[] = [];
  const user = async (gw: GatewayProc, name: string, since?: string) => {
    const c = await connectUser(gw, name, since);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    redis = await startRedis({ args: REDIS_7_ONLY.flatMap((c) => ["--rename-command", c, ""]) });
    gws.push(
      ...(await Promise.all(
        ["ord", "ams"].map((region, i) => startGateway({ REDIS_URL: redis.url, WSGATE_REGION: region, WSGATE_GATEWAY_ID: `classic-${i}`, LOG_LEVEL: "info" })),
      )),
    );
  }, 30_000);
  afterAll(async () => {
    closeAll(clients);
    await Promise.all(gws.map((g) => g.kill("SIGKILL")));
    await redis?.stop();
  });

  test("the server really lacks sharded Pub/Sub, and each gateway says so in one start-up line", async () => {
    expect(await redisCli(redis.port, ["SPUBLISH", "x", "y"]).catch((e) => String(e))).toMatch(/unknown command/i);
    for (const g of gws) {
      const lines = g.output().split("\n").filter((l) => l.includes("redis mode:"));
      expect(lines.length).toBe(1);
      expect(lines[0]).toContain("redis mode: single, Redis 7");
      expect(lines[0]).toContain("classic Pub/Sub only (no SPUBLISH/SSUBSCRIBE on this server: Redis 6.2 command set");
    }
  });

  test("send across gateways, room events and publish, presence, resume on the other gateway", async () => {
    const [a, b] = [await user(gws[0]!, "cl-a"), await user(gws[1]!, "cl-b")];
    const ack = await a.request({ type: "send", to: "cl-b", data: "hello" });
    expect(ack.type).toBe("ack");
    const got = await b.next((f) => isDirect(f) && f.data === "hello", 5000);
    expect(got.offset).toBe(ack.offsets["cl-b"]);

    const room = "classic-room";
    expect(await a.request({ type: "join", room })).toMatchObject({ type: "ack" });
    expect(await b.request({ type: "join", room })).toMatchObject({ type: "ack" });
    await a.next((f) => f.type === "room" && f.room === room && f.event === "join" && f.user === "cl-b", 5000);
    expect(await b.request({ type: "publish", room, data: "to-room" })).toMatchObject({ type: "ack" });
    await a.next((f) => f.type === "message" && f.room === room && f.data === "to-room", 5000);

    const p = await b.request({ type: "presence", users: ["cl-a", "cl-nobody"] });
    expect(p.users).toEqual({ "cl-a": { online: true, connections: 1, regions: ["ord"] }, "cl-nobody": { online: false, connections: 0, regions: [] } });
    expect((await a.request({ type: "presence", room })).users).toEqual(["cl-a", "cl-b"]);

    // b goes away, two more messages are acked for it, it resumes on the other gateway from its last offset.
    b.close();
    await b.waitClose();
    const later = [await a.request({ type: "send", to: "cl-b", data: 1 }), await a.request({ type: "send", to: "cl-b", data: 2 })];
    const resumed = await user(gws[0]!, "cl-b", got.offset as string);
    expect(resumed.welcome).toMatchObject({ recovered: true, replayed: 2 });
    await waitFor("replay", () => resumed.frames.filter(isDirect).length >= 2, 5000);
    expect(resumed.frames.filter(isDirect).map((f) => f.offset)).toEqual(later.map((x) => x.offsets["cl-b"]));
  });
});
