// What an operator sees: version on /health, /stats and /v1/gateways, the new metrics scraped from /metrics
// (build info, closes by code, refused frames by code, Redis up, delivery latency) with label names Fly.io's
// scraper leaves alone, and one audit line per admin action that names the admin token only by a hash.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import pkg from "../package.json";
import { startRedis, type RedisServer } from "../harness/redis.ts";
import { connectUser, waitFor } from "./helpers/cluster.ts";
import { ADMIN_TOKEN, startGateway, type GatewayProc } from "./helpers/gateway.ts";

let redis: RedisServer;
let gw: GatewayProc;

beforeAll(async () => {
  redis = await startRedis();
  gw = await startGateway({ REDIS_URL: redis.url, LOG_LEVEL: "info", WSGATE_BUILD: "test-build-7" });
});
afterAll(async () => {
  await gw?.kill("SIGKILL");
  await redis?.stop();
});

/** Parses Prometheus text into samples: name, labels, value. */
function samples(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

async function scrape() {
  const r = await gw.admin("/metrics");
  expect(r.status).toBe(200);
  return samples(await r.text());
}

const value = (all: ReturnType<typeof samples>, name: string, labels: Record<string, string> = {}) =>
  all.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

describe("version everywhere", () => {
  test("/health, /stats and /v1/gateways carry version and build", async () => {
    const health = await (await fetch(`${gw.http}/health`)).json();
    expect(health).toEqual({ status: "ok", version: pkg.version, build: "test-build-7" });
    const stats = await (await gw.admin("/stats")).json();
    expect(stats).toMatchObject({ id: gw.id, version: pkg.version, build: "test-build-7" });
    const { gateways } = await (await gw.admin("/v1/gateways")).json();
    expect(gateways.find((g: any) => g.id === gw.id)).toMatchObject({ version: pkg.version, build: "test-build-7" });
  });
});

describe("metrics", () => {
  test("new metrics move with traffic; labels are gateway and gateway_region, never region/instance/app", async () => {
    const before = await scrape();
    expect(value(before, "wsgate_build_info", { version: pkg.version, build: "test-build-7" })).toBe(1);
    expect(value(before, "wsgate_redis_up")).toBe(1);

    const alice = await connectUser(gw, "m-alice");
    const bob = await connectUser(gw, "m-bob");
    await bob.request({ type: "join", room: "m-room" });
    for (let i = 0; i < 5; i++) expect((await alice.request({ type: "send", to: "m-bob", data: i })).type).toBe("ack");
    expect((await alice.request({ type: "publish", room: "m-room", data: "x" })).type).toBe("ack"); // a room message to bob
    alice.send("not json");
    await alice.nextType("error");
    expect((await alice.request({ type: "nope" })).code).toBe("bad_request");
    await bob.next((f) => f.type === "message" && f.data === 4);
    expect((await gw.admin("/v1/users/m-bob/connections", { method: "DELETE" })).status).toBe(200);
    expect((await bob.waitClose()).code).toBe(4009);

    const after = await waitFor("closes counted", async () => {
      const s = await scrape();
      return (value(s, "wsgate_closes_total", { code: "4009" }) ?? 0) >= 1 ? s : undefined;
    });
    expect(value(after, "wsgate_frames_refused_total", { code: "bad_request" })!).toBeGreaterThanOrEqual(2);
    const count = value(after, "wsgate_delivery_seconds_count")!;
    expect(count - (value(before, "wsgate_delivery_seconds_count") ?? 0)).toBeGreaterThanOrEqual(5);
    expect(value(after, "wsgate_delivery_seconds_bucket", { le: "+Inf" })).toBe(count);
    expect(value(after, "wsgate_delivery_seconds_sum")!).toBeGreaterThanOrEqual(0);
    // Buckets are cumulative.
    const buckets = after.filter((s) => s.name === "wsgate_delivery_seconds_bucket").map((s) => s.value);
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));

    for (const s of after.filter((x) => x.name.startsWith("wsgate_"))) {
      expect(s.labels.gateway).toBe(gw.id);
      expect(s.labels.gateway_region).toBe("local");
      for (const reserved of ["region", "instance", "app"]) expect(s.labels[reserved]).toBeUndefined();
    }
    alice.close();
  });

  test("wsgate_redis_up turns 0 while Redis is gone and 1 when it is back", async () => {
    await redis.stop();
    await waitFor("redis_up 0", async () => value(await scrape(), "wsgate_redis_up") === 0, 10_000, 100);
    await redis.start();
    await waitFor("redis_up 1", async () => value(await scrape(), "wsgate_redis_up") === 1, 15_000, 100);
  }, 30_000);
});

describe("audit log", () => {
  test("one line per admin send, publish, broadcast and kick: route, target, token hash; never the token", async () => {
    const tag = createHash("sha256").update(ADMIN_TOKEN).digest("hex").slice(0, 8);
    const post = (path: string, body: unknown) => gw.admin(path, { method: "POST", body: JSON.stringify(body) });
    expect((await post("/v1/send", { to: ["a-1", "a-2"], data: 1 })).status).toBe(202);
    expect((await post("/v1/rooms/a-room/publish", { data: 1 })).status).toBe(202);
    expect((await post("/v1/broadcast", { data: 1 })).status).toBe(202);
    expect((await gw.admin("/v1/users/a-3/connections", { method: "DELETE" })).status).toBe(200);
    expect((await gw.admin("/v1/gateways")).status).toBe(200); // a read: not audited

    const lines = await waitFor("four audit lines", () => {
      const l = gw
        .output()
        .split("\n")
        .filter((x) => x.startsWith("{"))
        .map((x) => JSON.parse(x))
        .filter((x) => x.msg === "admin" && ["a-1", "a-room", "*", "a-3"].some((t) => JSON.stringify(x.target).includes(t)));
      return l.length >= 4 ? l : undefined;
    });
    expect(lines.map((l) => [l.route, l.target, l.admin])).toEqual([
      ["POST /v1/send", ["a-1", "a-2"], tag],
      ["POST /v1/rooms/:room/publish", "a-room", tag],
      ["POST /v1/broadcast", "*", tag],
      ["DELETE /v1/users/:user/connections", "a-3", tag],
    ]);
    expect(gw.output()).not.toContain(ADMIN_TOKEN);
  });
});
