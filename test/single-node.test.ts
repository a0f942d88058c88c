// One real gateway process, no Redis: every row of PROTOCOL §2–§7 that applies to a single node, with exact
// frames, ids, error codes and close codes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, TestClient, type Frame } from "./helpers/client.ts";
import { ADMIN_TOKEN, startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { freePort } from "../harness/ports.ts";
import { rawConnect, rawUpgrade } from "./helpers/rawws.ts";
import { mintToken } from "./helpers/token.ts";
import type { Server } from "bun";
import { MemoryBroker } from "../src/backends/memory/broker.ts";
import { MemoryHistory } from "../src/backends/memory/history.ts";
import type { Broker, Deliveries, DirectMessage } from "../src/backends/types.ts";
import { MemoryPresence } from "../src/backends/memory/presence.ts";
import { loadConfig } from "../src/config.ts";
import type { Conn } from "../src/connections.ts";
import { socketCapacity } from "../src/gateway/index.ts";
import { createLogger } from "../src/log.ts";
import { createServer, type WsgateServer } from "../src/server.ts";
import { eventually, received } from "./helpers/wait.ts";

const OFFSET = /^[^:]+:\d+$/;
/** Bun's WebSocket client can stop reading (bun-types has it; the DOM typing of TestClient.ws does not). */
type PausableSocket = { pause(): boolean; resume(): boolean };
const HISTORY = 5;

let main: GatewayProc; // JWT, admin token, history 5, generous rate so ordering tests are not throttled
let dev: GatewayProc; // dev mode (?user=), no admin token, extra metrics listener
let flood: GatewayProc; // WSGATE_RATE=5
let single: GatewayProc; // WSGATE_SESSIONS=single
let beat: GatewayProc; // heartbeat 200 ms
let nohist: GatewayProc; // WSGATE_HISTORY_SIZE=0
let shortTtl: GatewayProc; // WSGATE_HISTORY_TTL_S=1
let devMetricsPort = 0;
const extra: GatewayProc[] = [];
const opened: TestClient[] = [];

beforeAll(async () => {
  devMetricsPort = await freePort();
  [main, dev, flood, single, beat, nohist, shortTtl] = await Promise.all([
    startGateway({ WSGATE_RATE: "1000", WSGATE_HISTORY_SIZE: String(HISTORY) }),
    startGateway({ WSGATE_JWT_SECRET: undefined, WSGATE_ADMIN_TOKEN: undefined, WSGATE_METRICS_PORT: String(devMetricsPort) }),
    startGateway({ WSGATE_RATE: "5" }),
    startGateway({ WSGATE_SESSIONS: "single" }),
    startGateway({ WSGATE_HEARTBEAT_MS: "200" }),
    startGateway({ WSGATE_HISTORY_SIZE: "0" }),
    startGateway({ WSGATE_HISTORY_TTL_S: "1" }),
  ]);
});

afterAll(async () => {
  for (const c of opened) c.close();
  await Promise.all([main, dev, flood, single, beat, nohist, shortTtl, ...extra].filter(Boolean).map((g) => g.kill("SIGKILL")));
});

let userSeq = 0;
/** A fresh user id per test, so tests on a shared gateway never see each other's traffic. */
const uid = (name: string) => `${name}-${++userSeq}`;

async function open(gw: GatewayProc, sub: string, opts: { rooms?: string[]; query?: string; ttlS?: number } = {}) {
  const c = await connect(`${gw.ws}?token=${await mintToken(sub, { rooms: opts.rooms, ttlS: opts.ttlS })}${opts.query ?? ""}`);
  opened.push(c);
  return c;
}
async function openDev(user: string, query = "") {
  const c = await connect(`${dev.ws}?user=${user}${query}`);
  opened.push(c);
  return c;
}
const json = async (r: Response | Promise<Response>) => (await r).json();
const post = (gw: GatewayProc, path: string, body: unknown) =>
  gw.admin(path, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body) });
const presenceOf = (gw: GatewayProc, user: string) => json(gw.admin(`/v1/presence/${user}`));
const messages = (frames: Frame[]) => frames.filter((f) => f.type === "message");

// ---------------------------------------------------------------- §2

describe("§2 connecting", () => {
  test("welcome is the first frame, with exactly the documented fields", async () => {
    const user = uid("alice");
    const ws = await rawConnect(main.port, `/ws?token=${await mintToken(user)}`);
    const first = await ws.next(() => true);
    const welcome = JSON.parse(first.payload.toString());
    expect(welcome).toEqual({ type: "welcome", user, conn: expect.any(String), gateway: main.id, region: "local", heartbeat: 1000 });
    expect(welcome.conn.length).toBeGreaterThan(0);
    ws.end();
  });

  test("each connection gets its own conn id", async () => {
    const user = uid("alice");
    const [a, b] = await Promise.all([open(main, user), open(main, user)]);
    expect(a.welcome!.conn).not.toBe(b.welcome!.conn);
  });

  test("Authorization: Bearer header", async () => {
    const user = uid("hdr");
    const c = new TestClient(main.ws, { headers: { authorization: `Bearer ${await mintToken(user)}` } });
    opened.push(c);
    expect((await c.nextType("welcome")).user).toBe(user);
  });

  test("the header is the only credential tried when present", async () => {
    const r = await rawUpgrade(main.port, `/ws?token=${await mintToken(uid("q"))}`, { headers: { authorization: "Bearer nope" } });
    expect(r.ok).toBe(false);
    expect(r.answer.status).toBe(401);
  });

  const refusals: [string, () => Promise<string>, number, string][] = [
    ["no credentials", async () => "/ws", 401, "unauthorized"],
    ["invalid token", async () => "/ws?token=abc.def.ghi", 401, "unauthorized"],
    ["wrong secret", async () => `/ws?token=${await mintToken("x", { secret: "some-other-secret-of-enough-length!!" })}`, 401, "unauthorized"],
    ["expired token", async () => `/ws?token=${await mintToken("x", { ttlS: -60 })}`, 401, "unauthorized"],
    ["?user= without dev mode", async () => "/ws?user=alice", 401, "unauthorized"],
    ["malformed since", async () => `/ws?token=${await mintToken("x")}&since=nope`, 400, "bad_request"],
    ["since with a colon but no seq", async () => `/ws?token=${await mintToken("x")}&since=abc:`, 400, "bad_request"],
    ["since with a non-numeric seq", async () => `/ws?token=${await mintToken("x")}&since=abc:12x`, 400, "bad_request"],
  ];
  for (const [name, path, status, code] of refusals)
    test(`refused before the upgrade: ${name} → ${status} ${code}`, async () => {
      const r = await rawUpgrade(main.port, await path());
      expect(r.ok).toBe(false);
      expect(r.answer.status).toBe(status);
      expect(r.answer.headers["content-type"]).toContain("application/json");
      expect(r.answer.json).toEqual({ error: { code, message: expect.any(String) } });
    });

  test("a token whose sub breaks the id rules is refused with 401", async () => {
    const r = await rawUpgrade(main.port, `/ws?token=${await mintToken("bad user")}`);
    expect(r.ok).toBe(false);
    expect(r.answer.status).toBe(401);
    expect(r.answer.json.error.code).toBe("unauthorized");
  });

  test("dev mode: ?user= is trusted; a malformed one is 400; none is 401", async () => {
    const user = uid("dev");
    const c = await openDev(user);
    expect(c.welcome).toMatchObject({ type: "welcome", user });
    const bad = await rawUpgrade(dev.port, "/ws?user=a%20b");
    expect(bad.ok).toBe(false);
    expect(bad.answer.status).toBe(400);
    expect(bad.answer.json).toEqual({ error: { code: "bad_request", message: expect.any(String) } });
    const none = await rawUpgrade(dev.port, "/ws");
    expect(none.ok).toBe(false);
    expect(none.answer.status).toBe(401);
    expect(none.answer.json.error.code).toBe("unauthorized");
  });

  test("a non-upgrade GET /ws answers 426", async () => {
    const r = await fetch(`${main.http}/ws`);
    expect(r.status).toBe(426);
  });

  test("rooms claim: patterns allow, everything else is forbidden, case-sensitively", async () => {
    const c = await open(main, uid("alice"), { rooms: ["chat:*", "Team/eng"] });
    for (const room of ["chat:", "chat:1", "chat:a/b"]) expect(await c.request({ type: "join", room, id: `j-${room}` })).toEqual({ type: "ack", id: `j-${room}` });
    for (const room of ["chat", "Chat:1", "team/eng", "Team/engineering"])
      expect(await c.request({ type: "join", room, id: `f-${room}` })).toEqual({ type: "error", id: `f-${room}`, code: "forbidden", message: expect.any(String) });
  });

  test("no rooms claim: no rooms", async () => {
    const c = await open(main, uid("alice"));
    expect(await c.request({ type: "join", room: "lobby", id: "j" })).toMatchObject({ type: "error", id: "j", code: "forbidden" });
    expect(await c.request({ type: "publish", room: "lobby", data: 1, id: "p" })).toMatchObject({ type: "error", id: "p", code: "forbidden" });
  });

  test("dev mode: every room", async () => {
    const c = await openDev(uid("dev"));
    expect(await c.request({ type: "join", room: "any/room:at@all", id: "j" })).toEqual({ type: "ack", id: "j" });
  });

  test("the connection is closed with 4001 when exp (plus leeway) passes", async () => {
    // exp 4 s ago is still inside the 5 s leeway: accepted, then closed about a second later.
    const c = await open(main, uid("short"), { ttlS: -4 });
    const t0 = Date.now();
    const closed = await c.waitClose(5000);
    expect(closed.code).toBe(4001);
    expect(Date.now() - t0).toBeLessThan(4000);
  });
});

// ---------------------------------------------------------------- §3

describe("§3 frames", () => {
  test("send to one user: exact ack with offset, exact message with from set by the gateway", async () => {
    const [alice, bob] = [uid("alice"), uid("bob")];
    const a = await open(main, alice);
    const b = await open(main, bob);
    const before = Date.now();
    const ack = await a.request({ type: "send", to: bob, data: { text: "hi", n: [1, null] }, from: "mallory", id: "s1" });
    expect(ack).toEqual({ type: "ack", id: "s1", offsets: { [bob]: expect.stringMatching(OFFSET) } });
    const m = await b.nextType("message");
    expect(m).toEqual({ type: "message", from: alice, to: bob, data: { text: "hi", n: [1, null] }, offset: ack.offsets[bob], ts: expect.any(Number) });
    expect(m.ts).toBeGreaterThanOrEqual(before - 1000);
    expect(m.ts).toBeLessThanOrEqual(Date.now() + 1000);
  });

  test("send to several users reaches every live connection of each; duplicates in to count once", async () => {
    const [alice, bob, carol] = [uid("alice"), uid("bob"), uid("carol")];
    const a = await open(main, alice);
    const b1 = await open(main, bob);
    const b2 = await open(main, bob);
    const c = await open(main, carol);
    const ack = await a.request({ type: "send", to: [bob, carol, bob], data: "x", id: "multi" });
    expect(Object.keys(ack.offsets).sort()).toEqual([bob, carol].sort());
    for (const [conn, user] of [[b1, bob], [b2, bob], [c, carol]] as const) {
      const got = messages(await received(conn));
      expect(got).toEqual([{ type: "message", from: alice, to: user, data: "x", offset: ack.offsets[user], ts: expect.any(Number) }]);
    }
    expect(messages(await received(a))).toEqual([]); // the sender is not a recipient
  });

  test("send to 100 users is accepted; 101 is too_large with the id", async () => {
    const a = await open(main, uid("alice"));
    const to = Array.from({ length: 100 }, (_, i) => uid(`r${i}`));
    const ok = await a.request({ type: "send", to, data: 1, id: "hundred" });
    expect(ok.type).toBe("ack");
    expect(Object.keys(ok.offsets)).toHaveLength(100);
    const big = await a.request({ type: "send", to: [...to, "one-more"], data: 1, id: "big" });
    expect(big).toEqual({ type: "error", id: "big", code: "too_large", message: expect.any(String) });
  });

  test("send to an offline user is acked and stored", async () => {
    const a = await open(main, uid("alice"));
    const ack = await a.request({ type: "send", to: uid("nobody"), data: 1, id: "off" });
    expect(ack).toMatchObject({ type: "ack", id: "off" });
  });

  test("a frame without id gets no ack", async () => {
    const [alice, bob] = [uid("alice"), uid("bob")];
    const room = `noid:${uid("room")}`;
    const a = await open(main, alice, { rooms: ["noid:*"] });
    const b = await open(main, bob);
    a.send({ type: "send", to: bob, data: "no-id" });
    a.send({ type: "join", room });
    a.send({ type: "publish", room, data: "p" });
    a.send({ type: "leave", room });
    a.send({ type: "join", room: "x" }); // forbidden: still an error, without id
    const got = (await received(a)).filter((f) => f.type !== "room" && f.type !== "message"); // own join event, own publish
    expect(got).toEqual([{ type: "error", code: "forbidden", message: expect.any(String) }]);
    expect(messages(await received(b)).map((m) => m.data)).toEqual(["no-id"]);
  });

  test("ping gets pong, with and without id", async () => {
    const a = await open(main, uid("alice"));
    expect(await a.request({ type: "ping", id: "p1" })).toEqual({ type: "pong", id: "p1" });
    a.send({ type: "ping" });
    expect(await a.nextType("pong")).toEqual({ type: "pong" });
  });

  test("every frame with an id gets exactly one reply carrying it", async () => {
    const a = await open(main, uid("alice"), { rooms: ["ok:*"] });
    const frames: Frame[] = [
      { type: "ping", id: "1" },
      { type: "join", room: "ok:1", id: "2" },
      { type: "publish", room: "ok:1", data: 1, id: "3" },
      { type: "leave", room: "ok:1", id: "4" },
      { type: "presence", users: ["x"], id: "5" },
      { type: "presence", room: "ok:1", id: "6" },
      { type: "send", to: "x", data: 1, id: "7" },
      { type: "join", room: "no", id: "8" },
      { type: "bogus", id: "9" },
      { type: "send", to: 5, data: 1, id: "10" },
    ];
    for (const f of frames) a.send(f);
    const got = (await received(a)).filter((f) => f.id !== undefined);
    const byId = new Map<string, string[]>();
    for (const f of got) byId.set(f.id, [...(byId.get(f.id) ?? []), f.type]);
    expect(Object.fromEntries(byId)).toEqual({
      "1": ["pong"],
      "2": ["ack"],
      "3": ["ack"],
      "4": ["ack"],
      "5": ["presence"],
      "6": ["presence"],
      "7": ["ack"],
      "8": ["error"],
      "9": ["error"],
      "10": ["error"],
    });
  });

  test("join, leave: exact acks; leaving a room not joined is still acked", async () => {
    const a = await open(main, uid("alice"), { rooms: ["r:*"] });
    expect(await a.request({ type: "join", room: "r:1", id: "j" })).toEqual({ type: "ack", id: "j" });
    expect(await a.request({ type: "join", room: "r:1", id: "j2" })).toEqual({ type: "ack", id: "j2" });
    expect(await a.request({ type: "leave", room: "r:1", id: "l" })).toEqual({ type: "ack", id: "l" });
    expect(await a.request({ type: "leave", room: "r:2", id: "l2" })).toEqual({ type: "ack", id: "l2" });
  });

  test("publish reaches every joined connection; the sender only if joined", async () => {
    const room = `pub:${uid("room")}`;
    const [alice, bob] = [uid("alice"), uid("bob")];
    const a = await open(main, alice, { rooms: ["pub:*"] });
    const b1 = await open(main, bob, { rooms: ["pub:*"] });
    const b2 = await open(main, bob, { rooms: ["pub:*"] });
    await b1.request({ type: "join", room });
    await b2.request({ type: "join", room });
    expect(await a.request({ type: "publish", room, data: { n: 1 }, id: "p1" })).toEqual({ type: "ack", id: "p1" });
    const expected = { type: "message", from: alice, room, data: { n: 1 }, ts: expect.any(Number) };
    expect(messages(await received(b1))).toEqual([expected]);
    expect(messages(await received(b2))).toEqual([expected]);
    expect(messages(await received(a))).toEqual([]); // not joined
    await a.request({ type: "join", room });
    await a.request({ type: "publish", room, data: { n: 2 }, id: "p2" });
    expect(messages(await received(a))).toEqual([{ ...expected, data: { n: 2 } }]); // joined: included
  });

  test("room membership belongs to the connection, and is gone after a reconnect", async () => {
    const room = `own:${uid("room")}`;
    const alice = uid("alice");
    const a1 = await open(main, alice, { rooms: ["own:*"] });
    const a2 = await open(main, alice, { rooms: ["own:*"] });
    const pub = await open(main, uid("pub"), { rooms: ["own:*"] });
    await a1.request({ type: "join", room });
    await pub.request({ type: "publish", room, data: 1 });
    expect(messages(await received(a1))).toHaveLength(1);
    expect(messages(await received(a2))).toHaveLength(0);
    a1.close();
    await a1.waitClose();
    const a3 = await open(main, alice, { rooms: ["own:*"] });
    await pub.request({ type: "publish", room, data: 2 });
    expect(messages(await received(a3))).toHaveLength(0);
  });

  test("presence by users: exact shape; over 100 users is too_large", async () => {
    const [alice, bob] = [uid("alice"), uid("bob")];
    const a = await open(main, alice);
    await open(main, bob);
    await open(main, bob);
    const ghost = uid("ghost");
    const p = await a.request({ type: "presence", users: [bob, ghost, bob], id: "pr" });
    expect(p).toEqual({
      type: "presence",
      id: "pr",
      users: { [bob]: { online: true, connections: 2, regions: ["local"] }, [ghost]: { online: false, connections: 0, regions: [] } },
    });
    const big = await a.request({ type: "presence", users: Array.from({ length: 101 }, (_, i) => `u${i}`), id: "pbig" });
    expect(big).toEqual({ type: "error", id: "pbig", code: "too_large", message: expect.any(String) });
  });

  test("presence by room: sorted members; a room not allowed is forbidden", async () => {
    const room = `pr:${uid("room")}`;
    const [zed, amy] = [uid("zed"), uid("amy")];
    const z = await open(main, zed, { rooms: ["pr:*"] });
    const a = await open(main, amy, { rooms: ["pr:*"] });
    await z.request({ type: "join", room });
    await a.request({ type: "join", room });
    expect(await a.request({ type: "presence", room, id: "rp" })).toEqual({ type: "presence", id: "rp", room, users: [amy, zed].sort() });
    expect(await a.request({ type: "presence", room: "elsewhere", id: "rf" })).toEqual({
      type: "error",
      id: "rf",
      code: "forbidden",
      message: expect.any(String),
    });
  });

  const badFrames: [string, string, boolean][] = [
    ["malformed JSON", '{"type":"send",', false],
    ["a JSON array", "[]", false],
    ["unknown type", '{"type":"subscribe","room":"a","id":"u1"}', true],
    ["wrong type for to", '{"type":"send","to":42,"data":1,"id":"w1"}', true],
    ["wrong type for room", '{"type":"join","room":["a"],"id":"w2"}', true],
    ["missing data", '{"type":"publish","room":"a","id":"w3"}', true],
    ["room too long", `{"type":"join","room":"${"r".repeat(129)}","id":"w4"}`, true],
    ["bad user id in to", '{"type":"send","to":"no spaces","data":1,"id":"w5"}', true],
    ["presence without users or room", '{"type":"presence","id":"w6"}', true],
  ];
  for (const [name, text, hasId] of badFrames)
    test(`bad_request: ${name}`, async () => {
      const a = await open(main, uid("alice"));
      a.send(text);
      const got = await received(a);
      const id = hasId ? JSON.parse(text).id : undefined;
      expect(got).toEqual([hasId ? { type: "error", id, code: "bad_request", message: expect.any(String) } : { type: "error", code: "bad_request", message: expect.any(String) }]);
      expect(a.closed).toBeNull();
    });

  test("bad_request: a binary frame", async () => {
    const a = await open(main, uid("alice"));
    a.ws.send(new TextEncoder().encode('{"type":"ping","id":"bin"}'));
    expect(await received(a)).toEqual([{ type: "error", code: "bad_request", message: expect.any(String) }]);
    expect(a.closed).toBeNull();
  });

  test("a frame of exactly WSGATE_MAX_PAYLOAD bytes is accepted; one byte more closes with 1009", async () => {
    const a = await open(main, uid("alice"));
    const head = '{"type":"ping","id":"max","pad":"';
    const exact = head + "x".repeat(65536 - head.length - 2) + '"}';
    expect(Buffer.byteLength(exact)).toBe(65536);
    a.send(exact);
    expect(await a.next((f) => f.id === "max")).toEqual({ type: "pong", id: "max" });
    const over = head + "x".repeat(65537 - head.length - 2) + '"}';
    a.send(over);
    expect((await a.waitClose()).code).toBe(1009);
  });

  test("ordering: 300 direct messages and 300 room messages from one connection arrive in order, once", async () => {
    const room = `ord:${uid("room")}`;
    const [alice, bob] = [uid("alice"), uid("bob")];
    const a = await open(main, alice, { rooms: ["ord:*"] });
    const b = await open(main, bob, { rooms: ["ord:*"] });
    await b.request({ type: "join", room });
    for (let i = 0; i < 300; i++) {
      a.send({ type: "send", to: bob, data: i });
      a.send({ type: "publish", room, data: i });
    }
    await a.request({ type: "ping" }); // every frame before it was handled
    const got = messages(await received(b));
    expect(got.filter((m) => m.to === bob).map((m) => m.data)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(got.filter((m) => m.room === room).map((m) => m.data)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    const offsets = got.filter((m) => m.to === bob).map((m) => Number(m.offset.split(":")[1]));
    for (let i = 1; i < offsets.length; i++) expect(offsets[i]).toBe(offsets[i - 1]! + 1);
  });
});

describe("§3 rate limit and close codes", () => {
  test("rate_limited past the 2× burst; sustained rate is honoured afterwards", async () => {
    const a = await open(flood, uid("alice"));
    for (let i = 0; i < 14; i++) a.send({ type: "ping", id: `b${i}` });
    await Bun.sleep(300); // < 2 tokens refill at 5/s
    const got = a.frames.splice(0);
    const pongs = got.filter((f) => f.type === "pong");
    const limited = got.filter((f) => f.type === "error" && f.code === "rate_limited");
    expect(pongs.length).toBeGreaterThanOrEqual(10); // burst = 2 × WSGATE_RATE
    expect(pongs.length).toBeLessThanOrEqual(11);
    expect(pongs.length + limited.length).toBe(14);
    await Bun.sleep(1000); // ~5 tokens back
    for (let i = 0; i < 4; i++) expect(await a.request({ type: "ping", id: `s${i}` })).toEqual({ type: "pong", id: `s${i}` });
    expect(a.closed).toBeNull();
  });

  test("a rate_limited error carries the id of the refused frame", async () => {
    const a = await open(flood, uid("alice"));
    for (let i = 0; i < 14; i++) a.send({ type: "ping", id: `x${i}` });
    await Bun.sleep(300);
    const limited = a.frames.splice(0).filter((f) => f.type === "error" && f.code === "rate_limited");
    expect(limited.length).toBeGreaterThanOrEqual(3);
    // PROTOCOL §3: a frame with id gets exactly one reply, ack or error, carrying the same id.
    for (const e of limited) expect(e.id).toMatch(/^x\d+$/);
  });

  test("4008 when more than 10 × WSGATE_RATE frames are refused within 10 s", async () => {
    const a = await open(flood, uid("alice"));
    for (let i = 0; i < 80; i++) a.send({ type: "ping" });
    const closed = await a.waitClose(3000);
    expect(closed.code).toBe(4008);
  });

  test("4002 when a connection answers no pings for 2 heartbeat intervals", async () => {
    const ws = await rawConnect(beat.port, `/ws?token=${await mintToken(uid("silent"))}`, { autoPong: false });
    const welcome = await ws.nextJson((f) => f.type === "welcome");
    expect(welcome.heartbeat).toBe(200);
    const t0 = Date.now();
    const closed = await ws.waitClose(3000);
    expect(closed).toEqual({ code: 4002, reason: expect.any(String) });
    expect(ws.pings).toBeGreaterThanOrEqual(1); // it was pinged and did not answer
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  test("a connection that answers pings, or sends application pings, stays open", async () => {
    const ponger = await rawConnect(beat.port, `/ws?token=${await mintToken(uid("ponger"))}`, { autoPong: true });
    const talker = await rawConnect(beat.port, `/ws?token=${await mintToken(uid("talker"))}`, { autoPong: false });
    for (let i = 0; i < 10; i++) {
      talker.sendJson({ type: "ping" });
      await Bun.sleep(100);
    }
    expect(ponger.closeFrame).toBeNull();
    expect(ponger.pings).toBeGreaterThanOrEqual(3);
    expect(talker.closeFrame).toBeNull();
    ponger.end();
    talker.end();
  });

  test("4009: with WSGATE_SESSIONS=single a newer connection replaces the older one", async () => {
    const alice = uid("alice");
    const a1 = await open(single, alice);
    const a2 = await open(single, alice);
    expect((await a1.waitClose()).code).toBe(4009);
    expect(await a2.request({ type: "ping", id: "alive" })).toEqual({ type: "pong", id: "alive" });
    const p = await presenceOf(single, alice);
    expect(p.connections.map((c: { conn: string }) => c.conn)).toEqual([a2.welcome!.conn]);
  });

  test("multi sessions (default): both connections stay open", async () => {
    const alice = uid("alice");
    const a1 = await open(main, alice);
    const a2 = await open(main, alice);
    expect(await a1.request({ type: "ping", id: "1" })).toEqual({ type: "pong", id: "1" });
    expect(await a2.request({ type: "ping", id: "2" })).toEqual({ type: "pong", id: "2" });
  });

  test("4029: a consumer that stops reading is closed once its outbound buffer passes the bound", async () => {
    const bob = uid("slow");
    const b = await open(main, bob);
    const other = await open(main, uid("fast"));
    (b.ws as unknown as PausableSocket).pause(); // Bun's client stops reading: the gateway sees TCP backpressure
    const big = "y".repeat(60_000);
    let sent = 0;
    for (; sent < 400; sent++) {
      expect((await post(main, "/v1/send", { to: bob, data: big })).status).toBe(202);
      if (sent % 10 === 9 && !(await presenceOf(main, bob)).online) break;
    }
    expect(sent).toBeLessThan(400);
    (b.ws as unknown as PausableSocket).resume();
    expect((await b.waitClose(10_000)).code).toBe(4029);
    expect(await other.request({ type: "ping", id: "ok" })).toEqual({ type: "pong", id: "ok" });
  });
});

/** A memory broker whose failures and reported state the test controls. */
class FlakyBroker implements Broker {
  failing = false;
  reported: "none" | "ready" | "down" = "none";
  private readonly inner: MemoryBroker;
  readonly history: MemoryHistory;
  constructor(opts: { historySize: number; historyTtlS: number }) {
    this.history = new MemoryHistory({ size: opts.historySize, ttlMs: opts.historyTtlS * 1000, maxBytes: 1 << 20 });
    this.inner = new MemoryBroker(this.history);
  }
  private guard(what: string) {
    if (this.failing) throw new Error(`store ${what} failed`);
  }
  start(d: Deliveries) { return this.inner.start(d); }
  close() { return this.inner.close(); }
  subscribeUser() { return this.inner.subscribeUser(); }
  unsubscribeUser() { this.inner.unsubscribeUser(); }
  subscribeRoom() { return this.inner.subscribeRoom(); }
  unsubscribeRoom() { this.inner.unsubscribeRoom(); }
  async sendDirect(msg: DirectMessage, to: readonly string[]) {
    this.guard("write");
    return this.inner.sendDirect(msg, to);
  }
  async publishRoom(room: string, frame: string) {
    this.guard("publish");
    return this.inner.publishRoom(room, frame);
  }
  broadcast(frame: string) { return this.inner.broadcast(frame); }
  sessionClock() { return this.inner.sessionClock(); }
  kick(user: string, except?: string) { return this.inner.kick(user, except); }
  state() { return this.reported; }
}

describe("§3 unavailable and internal (in-process gateway over a failing backend)", () => {
  let server: Server<Conn> | null = null;
  let srv: WsgateServer | null = null;
  const broker = new FlakyBroker({ historySize: 10, historyTtlS: 60 });
  afterAll(() => {
    srv?.gateway.stopTimers();
    server?.stop(true);
  });

  async function boot() {
    const config = loadConfig({ HOST: "127.0.0.1", WSGATE_GATEWAY_ID: "inproc", WSGATE_JWT_SECRET: "in-process-secret-long-enough-for-hs256", WSGATE_HEARTBEAT_MS: "60000" });
    const presence = new MemoryPresence({ id: config.gatewayId, region: config.region, started: Date.now() });
    srv = await createServer(config, { backends: { broker, presence, history: broker.history }, log: createLogger("error", {}, () => {}) });
    server = Bun.serve<Conn>({ hostname: "127.0.0.1", port: 0, fetch: srv.fetch, websocket: srv.websocket });
    return { port: server.port!, token: (sub: string) => mintToken(sub, { secret: "in-process-secret-long-enough-for-hs256", rooms: ["*"] }) };
  }

  test("a failure in single-node mode is internal; with a cluster store it is unavailable; both carry the id", async () => {
    const { port, token } = await boot();
    const c = await connect(`ws://127.0.0.1:${port}/ws?token=${await token("alice")}`);
    opened.push(c);
    broker.failing = true;
    broker.reported = "none";
    expect(await c.request({ type: "send", to: "bob", data: 1, id: "i1" })).toEqual({ type: "error", id: "i1", code: "internal", message: expect.any(String) });
    broker.reported = "ready";
    expect(await c.request({ type: "send", to: "bob", data: 1, id: "u1" })).toEqual({ type: "error", id: "u1", code: "unavailable", message: expect.any(String) });
    expect(await c.request({ type: "publish", room: "r", data: 1, id: "u2" })).toEqual({ type: "error", id: "u2", code: "unavailable", message: expect.any(String) });
    c.send({ type: "send", to: "bob", data: 1 }); // without id: still an error, without id
    expect(await received(c)).toEqual([{ type: "error", code: "unavailable", message: expect.any(String) }]);
    broker.failing = false;
    expect(await c.request({ type: "send", to: "bob", data: 1, id: "ok" })).toMatchObject({ type: "ack", id: "ok" });
    expect(c.closed).toBeNull();
  });

  test("store down: /ready 503 and upgrades refused with 503 unavailable and Retry-After", async () => {
    const port = server!.port!;
    broker.reported = "down";
    try {
      expect((await fetch(`http://127.0.0.1:${port}/ready`)).status).toBe(503);
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
      const r = await rawUpgrade(port, `/ws?token=${await mintToken("carol", { secret: "in-process-secret-long-enough-for-hs256" })}`);
      expect(r.ok).toBe(false);
      expect(r.answer.status).toBe(503);
      expect(Number(r.answer.headers["retry-after"])).toBeGreaterThan(0);
      expect(r.answer.json).toEqual({ error: { code: "unavailable", message: expect.any(String) } });
    } finally {
      broker.reported = "none";
    }
    expect((await fetch(`http://127.0.0.1:${port}/ready`)).status).toBe(200);
  });
});

describe("§2 at capacity", () => {
  test("socketCapacity reads the open-files limit and keeps a reserve", () => {
    const limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                20000                files\n";
    expect(socketCapacity(limits)).toBe(19_900);
    expect(socketCapacity("nothing here")).toBe(Number.POSITIVE_INFINITY);
  });

  test("a gateway at its socket capacity refuses upgrades with 503 unavailable and Retry-After", async () => {
    // A process limited to 220 open files holds 120 sockets; 120 clients fill it.
    const port = await freePort();
    const proc = Bun.spawn(["bash", "-c", "ulimit -n 220 && exec bun src/index.ts"], {
      cwd: new URL("..", import.meta.url).pathname,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", PORT: String(port), HOST: "127.0.0.1", WSGATE_HEARTBEAT_MS: "60000", LOG_LEVEL: "error" },
      stdout: "ignore",
      stderr: "ignore",
    });
    const http = `http://127.0.0.1:${port}`;
    const clients: TestClient[] = [];
    try {
      await eventually(() => fetch(`${http}/ready`).then((r) => r.status, () => 0), (s) => s === 200, 10_000, 30);
      for (let i = 0; i < 120; i += 30)
        clients.push(...(await Promise.all(Array.from({ length: 30 }, (_, k) => connect(`ws://127.0.0.1:${port}/ws?user=cap${i + k}`)))));
      const r = await rawUpgrade(port, "/ws?user=one-too-many");
      expect(r.ok).toBe(false);
      expect(r.answer.status).toBe(503);
      expect(Number(r.answer.headers["retry-after"])).toBeGreaterThan(0);
      expect(r.answer.json).toEqual({ error: { code: "unavailable", message: expect.any(String) } });
      clients.pop()!.close();
      const again = await eventually(async () => (await rawUpgrade(port, "/ws?user=room-again")).answer.status, (s) => s === 101, 3000, 50);
      expect(again).toBe(101);
    } finally {
      for (const c of clients) c.close();
      proc.kill("SIGKILL");
      await proc.exited;
    }
  });
});

// ---------------------------------------------------------------- §4

describe("§4 presence and room events", () => {
  test("online while at least one connection is open", async () => {
    const [alice, bob] = [uid("alice"), uid("bob")];
    const a = await open(main, alice);
    const b1 = await open(main, bob);
    const b2 = await open(main, bob);
    const q = () => a.request({ type: "presence", users: [bob] }).then((p) => p.users[bob]);
    expect(await q()).toEqual({ online: true, connections: 2, regions: ["local"] });
    b1.close();
    expect(await eventually(q, (v) => v.connections === 1)).toEqual({ online: true, connections: 1, regions: ["local"] });
    b2.close();
    expect(await eventually(q, (v) => !v.online)).toEqual({ online: false, connections: 0, regions: [] });
  });

  test("room join/leave events: first connection in, last connection out, also on socket close", async () => {
    const room = `ev:${uid("room")}`;
    const [alice, bob] = [uid("alice"), uid("bob")];
    const b = await open(main, bob, { rooms: ["ev:*"] });
    await b.request({ type: "join", room });
    await received(b);
    const roomEvents = async () => (await received(b)).filter((f) => f.type === "room");
    const a1 = await open(main, alice, { rooms: ["ev:*"] });
    const a2 = await open(main, alice, { rooms: ["ev:*"] });

    await a1.request({ type: "join", room });
    expect(await roomEvents()).toEqual([{ type: "room", room, event: "join", user: alice, ts: expect.any(Number) }]);
    await a2.request({ type: "join", room });
    expect(await roomEvents()).toEqual([]); // not alice's first connection in the room
    await a1.request({ type: "leave", room });
    expect(await roomEvents()).toEqual([]); // not alice's last connection in the room
    expect((await b.request({ type: "presence", room })).users).toEqual([alice, bob].sort());
    a2.close(); // leaves by closing
    await a2.waitClose();
    const leave = await b.next((f) => f.type === "room" && f.event === "leave");
    expect(leave).toEqual({ type: "room", room, event: "leave", user: alice, ts: expect.any(Number) });
    expect((await b.request({ type: "presence", room })).users).toEqual([bob]);
    expect(await roomEvents()).toEqual([]);
  });

  test("room events go only to connections joined to that room", async () => {
    const room = `ev:${uid("room")}`;
    const outsider = await open(main, uid("out"), { rooms: ["ev:*"] });
    const a = await open(main, uid("alice"), { rooms: ["ev:*"] });
    await a.request({ type: "join", room });
    await a.request({ type: "leave", room });
    expect((await received(outsider)).filter((f) => f.type === "room")).toEqual([]);
  });
});

// ---------------------------------------------------------------- §5

describe("§5 history and resume", () => {
  async function sendN(a: TestClient, to: string, from: number, n: number) {
    const offs: string[] = [];
    for (let i = from; i < from + n; i++) offs.push((await a.request({ type: "send", to, data: { i } })).offsets[to]);
    return offs;
  }

  test("offsets are <epoch>:<seq>, seq +1 per message to that recipient, one epoch", async () => {
    const a = await open(main, uid("alice"));
    const bob = uid("bob");
    const offs = await sendN(a, bob, 0, 4);
    const parsed = offs.map((o) => o.split(":"));
    for (const [epoch, seq] of parsed) {
      expect(epoch!.length).toBeGreaterThan(0);
      expect(seq).toMatch(/^\d+$/);
    }
    expect(new Set(parsed.map((p) => p[0])).size).toBe(1);
    for (let i = 1; i < parsed.length; i++) expect(Number(parsed[i]![1])).toBe(Number(parsed[i - 1]![1]) + 1);
  });

  test("resume: missed messages replayed in order before live ones, recovered=true, replayed=n", async () => {
    const [alice, bob] = [uid("alice"), uid("bob")];
    const a = await open(main, alice);
    const b = await open(main, bob);
    await sendN(a, bob, 0, 2);
    const seen = messages(await received(b));
    expect(seen.map((m) => m.data.i)).toEqual([0, 1]);
    b.close();
    await b.waitClose();
    const missedOffsets = await sendN(a, bob, 2, 3);
    const r = new TestClient(`${main.ws}?token=${await mintToken(bob)}&since=${seen[1]!.offset}`);
    opened.push(r);
    const welcome = await r.nextType("welcome");
    expect(welcome).toEqual({
      type: "welcome",
      user: bob,
      conn: expect.any(String),
      gateway: main.id,
      region: "local",
      heartbeat: 1000,
      recovered: true,
      replayed: 3,
    });
    await a.request({ type: "send", to: bob, data: { i: 5 } });
    const got = messages(await received(r));
    expect(got.map((m) => m.data.i)).toEqual([2, 3, 4, 5]);
    expect(got.slice(0, 3).map((m) => m.offset)).toEqual(missedOffsets);
    expect(got[0]).toEqual({ type: "message", from: alice, to: bob, data: { i: 2 }, offset: missedOffsets[0], ts: expect.any(Number) });
  });

  test("resume from the latest offset: recovered=true, replayed=0", async () => {
    const bob = uid("bob");
    const a = await open(main, uid("alice"));
    const [last] = (await sendN(a, bob, 0, 1)) as [string];
    const r = await open(main, bob, { query: `&since=${last}` });
    expect(r.welcome).toMatchObject({ recovered: true, replayed: 0 });
    expect(messages(await received(r))).toEqual([]);
  });

  test(`trimmed history (WSGATE_HISTORY_SIZE=${HISTORY}): what is retained, and recovered=false`, async () => {
    const bob = uid("bob");
    const a = await open(main, uid("alice"));
    const offs = await sendN(a, bob, 0, HISTORY + 3);
    const r = await open(main, bob, { query: `&since=${offs[0]}` });
    expect(r.welcome).toMatchObject({ recovered: false, replayed: HISTORY });
    const got = messages(await received(r));
    expect(got.map((m) => m.data.i)).toEqual([3, 4, 5, 6, 7]);
    expect(got.map((m) => m.offset)).toEqual(offs.slice(3));
  });

  test("exactly at the edge of the retained window: recovered=true", async () => {
    const bob = uid("bob");
    const a = await open(main, uid("alice"));
    const offs = await sendN(a, bob, 0, HISTORY + 1);
    const r = await open(main, bob, { query: `&since=${offs[0]}` }); // messages 2..6 are the last 5: nothing lost
    expect(r.welcome).toMatchObject({ recovered: true, replayed: HISTORY });
  });

  test("an offset from another epoch: everything retained, recovered=false", async () => {
    const bob = uid("bob");
    const a = await open(main, uid("alice"));
    await sendN(a, bob, 0, 2);
    const r = await open(main, bob, { query: "&since=otherepoch:1" });
    expect(r.welcome).toMatchObject({ recovered: false, replayed: 2 });
    expect(messages(await received(r)).map((m) => m.data.i)).toEqual([0, 1]);
  });

  test("an offset ahead of the history: recovered=false", async () => {
    const bob = uid("bob");
    const a = await open(main, uid("alice"));
    const [o] = (await sendN(a, bob, 0, 1)) as [string];
    const ahead = `${o.split(":")[0]}:999`;
    const r = await open(main, bob, { query: `&since=${ahead}` });
    expect(r.welcome).toMatchObject({ recovered: false, replayed: 0 });
  });

  test("a user with no history: recovered=false, replayed=0", async () => {
    const r = await open(main, uid("fresh"), { query: "&since=abc:3" });
    expect(r.welcome).toMatchObject({ recovered: false, replayed: 0 });
  });

  test("room messages and broadcasts are live only", async () => {
    const room = `live:${uid("room")}`;
    const [alice, bob] = [uid("alice"), uid("bob")];
    const a = await open(main, alice, { rooms: ["live:*"] });
    const b = await open(main, bob, { rooms: ["live:*"] });
    const [last] = (await sendN(a, bob, 0, 1)) as [string];
    b.close();
    await b.waitClose();
    await a.request({ type: "publish", room, data: "room" });
    expect((await post(main, "/v1/broadcast", { data: "bc" })).status).toBe(202);
    const r = await open(main, bob, { query: `&since=${last}` });
    expect(r.welcome).toMatchObject({ recovered: true, replayed: 0 });
    expect(messages(await received(r))).toEqual([]);
  });

  test("live messages racing a resume arrive once each, in offset order", async () => {
    const bob = uid("bob");
    const a = await open(main, uid("alice"));
    const [first] = (await sendN(a, bob, 0, 1)) as [string];
    const r = new TestClient(`${main.ws}?token=${await mintToken(bob)}&since=${first}`);
    opened.push(r);
    for (let i = 1; i <= 4; i++) a.send({ type: "send", to: bob, data: { i } });
    await r.nextType("welcome");
    await a.request({ type: "ping" });
    const got = messages(await received(r)).map((m) => m.data.i);
    expect(got).toEqual([1, 2, 3, 4]);
  });

  test("WSGATE_HISTORY_SIZE=0: no offsets anywhere; a resume recovers nothing", async () => {
    const [alice, bob] = [uid("alice"), uid("bob")];
    const a = await open(nohist, alice);
    const b = await open(nohist, bob);
    expect(await a.request({ type: "send", to: bob, data: 1, id: "n" })).toEqual({ type: "ack", id: "n" });
    expect(messages(await received(b))).toEqual([{ type: "message", from: alice, to: bob, data: 1, ts: expect.any(Number) }]);
    const r = await open(nohist, bob, { query: "&since=abc:1" });
    expect(r.welcome).toMatchObject({ recovered: false, replayed: 0 });
    const admin = await post(nohist, "/v1/send", { to: bob, data: 2 });
    expect(admin.status).toBe(202);
    expect(await admin.json()).toEqual({ offsets: {} });
  });

  test("expired history (WSGATE_HISTORY_TTL_S=1): recovered=false, and a new epoch afterwards", async () => {
    const bob = uid("bob");
    const a = await open(shortTtl, uid("alice"));
    const [seen] = (await sendN(a, bob, 0, 1)) as [string];
    await sendN(a, bob, 1, 1); // missed, then expires
    await Bun.sleep(1300);
    const r = await open(shortTtl, bob, { query: `&since=${seen}` });
    expect(r.welcome).toMatchObject({ recovered: false, replayed: 0 });
    const [after] = (await sendN(a, bob, 2, 1)) as [string];
    expect(after.split(":")[0]).not.toBe(seen.split(":")[0]);
  });
});

// ---------------------------------------------------------------- §6

describe("§6 HTTP API", () => {
  test("GET /health and /ready need no auth", async () => {
    for (const gw of [main, dev]) {
      const h = await fetch(`${gw.http}/health`);
      expect(h.status).toBe(200);
      expect(await h.json()).toEqual({ status: "ok", version: expect.any(String), build: expect.any(String) });
      expect((await fetch(`${gw.http}/ready`)).status).toBe(200);
    }
  });

  test("GET /stats: every documented field, counts that follow the connections", async () => {
    const before = await json(main.admin("/stats"));
    expect(Object.keys(before).sort()).toEqual(
      ["id", "region", "version", "build", "mode", "uptime", "connections", "users", "rooms", "frames_in", "frames_out", "messages_routed", "errors", "redis"].sort(),
    );
    expect(before).toMatchObject({ id: main.id, region: "local", mode: "single", redis: "none" });
    for (const k of ["uptime", "connections", "users", "rooms", "frames_in", "frames_out", "messages_routed"]) expect(typeof before[k]).toBe("number");
    const room = `st:${uid("room")}`;
    const user = uid("stat");
    const c1 = await open(main, user, { rooms: ["st:*"] });
    const c2 = await open(main, user, { rooms: ["st:*"] });
    await c1.request({ type: "join", room });
    c1.send("{bad json");
    await received(c1);
    const after = await json(main.admin("/stats"));
    expect(after.connections - before.connections).toBe(2);
    expect(after.users - before.users).toBe(1);
    expect(after.rooms - before.rooms).toBe(1);
    expect(after.errors.bad_request - (before.errors.bad_request ?? 0)).toBe(1);
    expect(after.frames_in).toBeGreaterThan(before.frames_in);
    c1.close();
    c2.close();
  });

  test("GET /metrics: Prometheus text", async () => {
    const r = await main.admin("/metrics");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("text/plain");
    const text = await r.text();
    expect(text).toContain("# TYPE wsgate_connections gauge");
    expect(text).toMatch(new RegExp(`^wsgate_connections\\{[^}]*gateway="${main.id}"[^}]*\\} \\d+$`, "m"));
    expect(text).toMatch(/^wsgate_frames_in_total\{[^}]*\} \d+$/m);
  });

  test("WSGATE_METRICS_PORT serves /metrics without auth", async () => {
    const r = await fetch(`http://127.0.0.1:${devMetricsPort}/metrics`);
    expect(r.status).toBe(200);
    expect(await r.text()).toContain("wsgate_connections");
  });

  test("GET /v1/gateways: this gateway, every documented field", async () => {
    const body = await json(main.admin("/v1/gateways"));
    expect(body).toEqual({
      gateways: [
        {
          id: main.id,
          region: "local",
          version: expect.any(String),
          build: expect.any(String),
          connections: expect.any(Number),
          users: expect.any(Number),
          started: expect.any(Number),
          last_seen: expect.any(Number),
        },
      ],
    });
  });

  test("GET /v1/presence/:user", async () => {
    const user = uid("pp");
    const c = await open(main, user);
    expect(await presenceOf(main, user)).toEqual({
      user,
      online: true,
      connections: [{ conn: c.welcome!.conn, gateway: main.id, region: "local", since: expect.any(Number) }],
    });
    const ghost = uid("ghost");
    expect(await presenceOf(main, ghost)).toEqual({ user: ghost, online: false, connections: [] });
  });

  test("POST /v1/send: 202 with offsets; the message has from null", async () => {
    const [bob, carol] = [uid("bob"), uid("carol")];
    const b = await open(main, bob);
    const r = await post(main, "/v1/send", { to: bob, data: { admin: true } });
    expect(r.status).toBe(202);
    const { offsets } = await r.json();
    expect(offsets).toEqual({ [bob]: expect.stringMatching(OFFSET) });
    expect(messages(await received(b))).toEqual([{ type: "message", from: null, to: bob, data: { admin: true }, offset: offsets[bob], ts: expect.any(Number) }]);
    const many = await json(post(main, "/v1/send", { to: [bob, carol], data: 1 }));
    expect(Object.keys(many.offsets).sort()).toEqual([bob, carol].sort());
  });

  test("POST /v1/rooms/:room/publish: 202; members get it with from null", async () => {
    const room = `adm:${uid("room")}`;
    const b = await open(main, uid("bob"), { rooms: ["adm:*"] });
    await b.request({ type: "join", room });
    await received(b);
    const r = await post(main, `/v1/rooms/${room}/publish`, { data: [1, 2] });
    expect(r.status).toBe(202);
    expect(messages(await received(b))).toEqual([{ type: "message", from: null, room, data: [1, 2], ts: expect.any(Number) }]);
  });

  test("POST /v1/rooms/:room/publish: a room name with '/' is addressed URL-encoded", async () => {
    const room = `adm/${uid("team")}/eng`;
    const b = await open(main, uid("bob"), { rooms: ["adm/*"] });
    await b.request({ type: "join", room });
    await received(b);
    const r = await post(main, `/v1/rooms/${encodeURIComponent(room)}/publish`, { data: "slash" });
    expect(r.status).toBe(202);
    expect(messages(await received(b))).toEqual([{ type: "message", from: null, room, data: "slash", ts: expect.any(Number) }]);
  });

  test("POST /v1/broadcast: 202; every connection gets it", async () => {
    const b = await open(nohist, uid("bob"));
    const c = await open(nohist, uid("carol"));
    const r = await post(nohist, "/v1/broadcast", { data: "all" });
    expect(r.status).toBe(202);
    const expected = [{ type: "message", from: null, broadcast: true, data: "all", ts: expect.any(Number) }];
    expect(messages(await received(b))).toEqual(expected);
    expect(messages(await received(c))).toEqual(expected);
  });

  test("DELETE /v1/users/:user/connections: closes every connection with 4009 and counts them", async () => {
    const alice = uid("alice");
    const a1 = await open(main, alice);
    const a2 = await open(main, alice);
    const bystander = await open(main, uid("bob"));
    const r = await main.admin(`/v1/users/${alice}/connections`, { method: "DELETE" });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ closed: 2 });
    expect((await a1.waitClose()).code).toBe(4009);
    expect((await a2.waitClose()).code).toBe(4009);
    expect(bystander.closed).toBeNull();
    expect(await json(main.admin(`/v1/users/${uid("nobody")}/connections`, { method: "DELETE" }))).toEqual({ closed: 0 });
  });

  const badBodies: [string, string, unknown, string][] = [
    ["send without to", "/v1/send", { data: 1 }, "to"],
    ["send without data", "/v1/send", { to: "bob" }, "data"],
    ["send to a number", "/v1/send", { to: 5, data: 1 }, "to"],
    ["send to an empty list", "/v1/send", { to: [], data: 1 }, "to"],
    ["send to a bad user id", "/v1/send", { to: "a b", data: 1 }, "to"],
    ["send to 101 users", "/v1/send", { to: Array.from({ length: 101 }, (_, i) => `u${i}`), data: 1 }, "to"],
    ["send with a body that is not JSON", "/v1/send", "{nope", "JSON"],
    ["broadcast without data", "/v1/broadcast", {}, "data"],
    ["publish without data", "/v1/rooms/lobby/publish", { nodata: 1 }, "data"],
  ];
  for (const [name, path, body, field] of badBodies)
    test(`400 naming the field: ${name}`, async () => {
      const r = await post(main, path, body);
      expect(r.status).toBe(400);
      const b = await r.json();
      expect(b).toEqual({ error: { code: "bad_request", message: expect.any(String) } });
      expect(b.error.message).toContain(field);
    });

  test("400 for a bad room or user in the path", async () => {
    const room = await post(main, `/v1/rooms/${encodeURIComponent("bad room")}/publish`, { data: 1 });
    expect(room.status).toBe(400);
    expect((await room.json()).error.message).toContain("room");
    const p = await main.admin(`/v1/presence/${encodeURIComponent("bad user")}`);
    expect(p.status).toBe(400);
    const d = await main.admin(`/v1/users/${encodeURIComponent("bad user")}/connections`, { method: "DELETE" });
    expect(d.status).toBe(400);
  });

  const adminRoutes: [string, string][] = [
    ["GET", "/stats"],
    ["GET", "/metrics"],
    ["GET", "/v1/gateways"],
    ["GET", "/v1/presence/bob"],
    ["POST", "/v1/send"],
    ["POST", "/v1/rooms/lobby/publish"],
    ["POST", "/v1/broadcast"],
    ["DELETE", "/v1/users/bob/connections"],
  ];
  test("admin routes: 401 without the token or with a wrong one", async () => {
    for (const [method, path] of adminRoutes) {
      const body = method === "POST" ? JSON.stringify({ to: "bob", data: 1 }) : undefined;
      for (const headers of <Record<string, string>[]>[{}, { authorization: "Bearer wrong-token" }, { authorization: `Bearer ${ADMIN_TOKEN}x` }, { authorization: ADMIN_TOKEN }]) {
        const r = await fetch(main.http + path, { method, headers: { ...headers, "content-type": "application/json" }, body });
        expect({ route: `${method} ${path}`, status: r.status }).toEqual({ route: `${method} ${path}`, status: 401 });
        expect((await r.json()).error.code).toBe("unauthorized");
      }
    }
  });

  test("admin routes: 404 when WSGATE_ADMIN_TOKEN is unset, whatever the request carries", async () => {
    for (const [method, path] of adminRoutes) {
      const body = method === "POST" ? JSON.stringify({ to: "bob", data: 1 }) : undefined;
      for (const headers of <Record<string, string>[]>[{}, { authorization: `Bearer ${ADMIN_TOKEN}` }, { authorization: "Bearer " }]) {
        const r = await fetch(dev.http + path, { method, headers: { ...headers, "content-type": "application/json" }, body });
        expect({ route: `${method} ${path}`, status: r.status }).toEqual({ route: `${method} ${path}`, status: 404 });
      }
    }
  });
});

// ---------------------------------------------------------------- §7

describe("§7 shutdown", () => {
  test("SIGTERM: /ready 503 and new upgrades 503 while draining, clients closed 1001 over the drain, exit 0", async () => {
    const gw = await startGateway({ WSGATE_DRAIN_MS: "1500" });
    extra.push(gw);
    const clients = await Promise.all(Array.from({ length: 10 }, async (_, i) => connect(`${gw.ws}?token=${await mintToken(`d${i}`)}`)));
    const closedAt: number[] = [];
    const closes = clients.map((c) => c.waitClose(5000).then((r) => (closedAt.push(Date.now()), r)));
    gw.proc.kill("SIGTERM");
    const ready = await eventually(() => fetch(`${gw.http}/ready`).then((r) => r.status), (s) => s === 503, 1000, 10);
    expect(ready).toBe(503);
    expect((await fetch(`${gw.http}/health`)).status).toBe(200); // still serving
    const up = await rawUpgrade(gw.port, `/ws?token=${await mintToken("late")}`);
    expect(up.ok).toBe(false);
    expect(up.answer.status).toBe(503);
    expect(up.answer.headers["retry-after"]).toBeDefined();
    expect(up.answer.json).toEqual({ error: { code: "unavailable", message: expect.any(String) } });
    const codes = await Promise.all(closes);
    for (const c of codes) expect(c.code).toBe(1001);
    const spread = Math.max(...closedAt) - Math.min(...closedAt);
    expect(spread).toBeGreaterThanOrEqual(700); // spread over WSGATE_DRAIN_MS, not all at once
    expect(spread).toBeLessThanOrEqual(2500);
    expect(await gw.proc.exited).toBe(0);
  });

  test("SIGINT drains the same way and exits 0", async () => {
    const gw = await startGateway({ WSGATE_DRAIN_MS: "100" });
    extra.push(gw);
    const c = await connect(`${gw.ws}?token=${await mintToken("i1")}`);
    gw.proc.kill("SIGINT");
    expect((await c.waitClose()).code).toBe(1001);
    expect(await gw.proc.exited).toBe(0);
  });

  test("SIGTERM with no connections exits 0 promptly", async () => {
    const gw = await startGateway({});
    extra.push(gw);
    const t0 = Date.now();
    expect(await gw.kill("SIGTERM")).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});

// ---------------------------------------------------------------- logs

describe("logs", () => {
  test("every output line is one JSON object carrying the gateway id and region; dev mode warns loudly", async () => {
    const lines = dev.output().split("\n").filter((l) => l.trim() !== "");
    expect(lines.length).toBeGreaterThan(0);
    const parsed = lines.map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return { unparsable: l };
      }
    });
    expect(parsed.filter((p) => "unparsable" in p)).toEqual([]);
    // Read before toMatchObject: Bun 1.4.5's toMatchObject with asymmetric matchers rewrites the matched fields.
    const warned = parsed.some((p) => p.level === "warn" && /dev mode/i.test(p.msg));
    for (const p of parsed) expect(p).toMatchObject({ gateway: dev.id, region: "local", level: expect.any(String), msg: expect.any(String) });
    expect(warned).toBe(true);
  });
});
