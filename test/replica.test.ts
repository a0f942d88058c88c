// Issue 3, REDIS_REPLICA_URL: a Redis primary and a replica (--replicaof), one gateway reading from the replica
// (subscriptions and presence reads) and one without. Messages must flow both ways and presence must read
// right from either side, while every write still goes to the primary.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Redis from "ioredis";
import type { Frame, TestClient } from "./helpers/client.ts";
import { adminJson, closeAll, connectUser, isDirect, isMsg, leftover, presenceOf, take, waitFor } from "./helpers/cluster.ts";
import { startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { startRedis, type RedisServer } from "../harness/redis.ts";

let primary: RedisServer;
let replica: RedisServer;
let onPrimary: GatewayProc; // REDIS_URL only
let onReplica: GatewayProc; // REDIS_URL + REDIS_REPLICA_URL
const clients: TestClient[] = [];
const admins: Redis[] = [];

async function user(gw: GatewayProc, name: string) {
  const c = await connectUser(gw, name);
  clients.push(c);
  return c;
}

function adminClient(url: string) {
  const r = new Redis(url, { protocol: 2, lazyConnect: true, maxRetriesPerRequest: 1 });
  admins.push(r);
  return r;
}

/** Names of the gateways' connections (CLIENT SETNAME wsgate-*) on one Redis server. */
async function wsgateClients(r: Redis): Promise<string[]> {
  const list = (await r.client("LIST")) as string;
  return list
    .split("\n")
    .map((l) => /\bname=(\S*)/.exec(l)?.[1] ?? "")
    .filter((n) => n.startsWith("wsgate-"))
    .sort();
}

beforeAll(async () => {
  primary = await startRedis();
  // No 5 s diskless-sync delay (Redis 7 default): the replica is in sync before the gateways start.
  replica = await startRedis({ args: ["--replicaof", "127.0.0.1", String(primary.port), "--repl-diskless-sync-delay", "0"] });
  const rep = adminClient(replica.url);
  await rep.connect();
  await waitFor("replica link up", async () => /master_link_status:up/.test(await rep.info("replication")), 10_000, 50);
  [onPrimary, onReplica] = await Promise.all([
    // A burst of 100 sends below must not meet the default rate limit (50/s, burst 100).
    startGateway({ REDIS_URL: primary.url, WSGATE_GATEWAY_ID: "rp-primary", WSGATE_REGION: "ord", WSGATE_RATE: "1000" }),
    startGateway({ REDIS_URL: primary.url, REDIS_REPLICA_URL: replica.url, WSGATE_GATEWAY_ID: "rp-replica", WSGATE_REGION: "syd", WSGATE_RATE: "1000" }),
  ]);
});

afterAll(async () => {
  closeAll(clients);
  for (const a of admins) a.disconnect();
  await Promise.all([onPrimary, onReplica].filter(Boolean).map((g) => g.kill("SIGKILL")));
  await replica?.stop();
  await primary?.stop();
});

describe("primary + replica: one gateway reads from the replica", () => {
  test("the replica gateway subscribes and reads on the replica, writes on the primary", async () => {
    const p = adminClient(primary.url);
    const r = adminClient(replica.url);
    await Promise.all([p.connect(), r.connect()]);
    expect(await wsgateClients(r)).toEqual(["wsgate-read", "wsgate-sub"]);
    expect(await wsgateClients(p)).toEqual(["wsgate-cmd", "wsgate-cmd", "wsgate-sub"]);
    expect((await r.info("replication")).includes("role:slave")).toBe(true);
  });

  test("direct messages flow both ways", async () => {
    const x = await user(onPrimary, "rp-x");
    const y = await user(onReplica, "rp-y");
    const a1 = await x.request({ type: "send", to: "rp-y", data: "x→y" });
    expect(a1.type).toBe("ack");
    expect(await y.next(isDirect)).toMatchObject({ from: "rp-x", to: "rp-y", data: "x→y", offset: a1.offsets["rp-y"] });
    const a2 = await y.request({ type: "send", to: "rp-x", data: "y→x" });
    expect(a2.type).toBe("ack");
    expect(await x.next(isDirect)).toMatchObject({ from: "rp-y", to: "rp-x", data: "y→x", offset: a2.offsets["rp-x"] });
    // A burst stays in order across the replication hop.
    for (let i = 0; i < 100; i++) x.send({ type: "send", to: "rp-y", data: i, id: `b${i}` });
    const got = await take(y, 100, isDirect);
    expect(got.map((f) => f.data)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    for (const c of [x, y]) expect(await leftover(c, isMsg, 200)).toEqual([]);
  });

  test("rooms: join events and publishes flow both ways; room presence reads from the replica", async () => {
    const room = "rp-room";
    const x = await user(onPrimary, "rp-rx");
    const y = await user(onReplica, "rp-ry");
    expect(await x.request({ type: "join", room })).toMatchObject({ type: "ack" });
    expect(await y.request({ type: "join", room })).toMatchObject({ type: "ack" });
    expect(await x.next((f) => f.type === "room" && f.user === "rp-ry")).toMatchObject({ event: "join", room });
    expect(await y.next((f) => f.type === "room" && f.user === "rp-ry")).toMatchObject({ event: "join", room });

    for (const [pub, name] of [[x, "rp-rx"], [y, "rp-ry"]] as const) {
      expect(await pub.request({ type: "publish", room, data: name })).toMatchObject({ type: "ack" });
      for (const m of [x, y]) expect(await m.next((f) => isMsg(f) && f.room === room)).toMatchObject({ from: name, data: name });
    }
    for (const asker of [x, y]) {
      const p = await waitFor("room presence", async () => {
        const r = await asker.request({ type: "presence", room });
        return r.users.length === 2 ? r : false;
      }, 2000);
      expect(p.users).toEqual(["rp-rx", "rp-ry"]);
    }
    expect(await y.request({ type: "leave", room })).toMatchObject({ type: "ack" });
    expect(await x.next((f: Frame) => f.type === "room" && f.event === "leave")).toMatchObject({ user: "rp-ry" });
    await waitFor("leave visible on the replica", async () => JSON.stringify((await y.request({ type: "presence", room })).users) === '["rp-rx"]', 2000);
  });

  test("presence, gateways and broadcast from the replica gateway", async () => {
    const x = await user(onPrimary, "rp-px");
    const y = await user(onReplica, "rp-py");
    const p = await waitFor("presence on the replica", async () => {
      const r = await y.request({ type: "presence", users: ["rp-px", "rp-py", "rp-nobody"] });
      return r.users["rp-px"].online && r.users["rp-py"].online ? r : false;
    }, 2000);
    expect(p.users).toEqual({
      "rp-px": { online: true, connections: 1, regions: ["ord"] },
      "rp-py": { online: true, connections: 1, regions: ["syd"] },
      "rp-nobody": { online: false, connections: 0, regions: [] },
    });
    expect((await presenceOf(onReplica, "rp-px")).connections.map((c: any) => c.gateway)).toEqual(["rp-primary"]);
    const gws = (await adminJson(onReplica, "/v1/gateways")).body.gateways;
    expect(gws.map((g: any) => [g.id, g.region])).toEqual([["rp-primary", "ord"], ["rp-replica", "syd"]]);

    expect((await adminJson(onReplica, "/v1/broadcast", { method: "POST", body: JSON.stringify({ data: "all" }) })).status).toBe(202);
    for (const c of [x, y]) expect(await c.next((f) => isMsg(f) && f.broadcast === true)).toMatchObject({ data: "all" });

    // Going offline is seen from the replica side too.
    x.close();
    await waitFor("rp-px offline on the replica", async () => !(await y.request({ type: "presence", users: ["rp-px"] })).users["rp-px"].online, 3000);
  });

  test("resume on the replica gateway replays from the primary (no lag hides the newest message)", async () => {
    const s = await user(onPrimary, "rp-sender");
    const r1 = await user(onReplica, "rp-res");
    await s.request({ type: "send", to: "rp-res", data: 0 });
    const first = await r1.next(isDirect);
    r1.close();
    await r1.waitClose();
    const offs: string[] = [];
    for (let i = 1; i <= 5; i++) offs.push((await s.request({ type: "send", to: "rp-res", data: i })).offsets["rp-res"]);
    // Immediately after the last ack: a replica read could lag; the replay must still hold all five.
    const r2 = await connectUser(onReplica, "rp-res", first.offset);
    clients.push(r2);
    expect(r2.welcome).toMatchObject({ recovered: true, replayed: 5 });
    expect((await take(r2, 5, isDirect)).map((f) => f.offset)).toEqual(offs);
  });
});
