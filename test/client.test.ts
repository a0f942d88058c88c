// The SDK against real gateway processes: requests, rooms, queueing, close-code policy,
// and resume across gateways in cluster mode (kill -9 mid-stream, drain, expired token).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UnauthorizedError, WsgateClient, WsgateError, backoffDelay, gatewayUrl, OffsetTracker } from "../src/client/index.ts";
import type { ClientOptions, DirectMessage, IncomingMessage, RoomEvent } from "../src/client/index.ts";
import { startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { startRedis, type RedisServer } from "../harness/redis.ts";
import { mintToken } from "./helpers/token.ts";
import { fakeSockets } from "./helpers/fake-sockets.ts";

const clients: WsgateClient[] = [];
function client(opts: ClientOptions): WsgateClient {
  const c = new WsgateClient({ backoff: { initialMs: 50, maxMs: 500 }, requestTimeoutMs: 5000, ...opts });
  clients.push(c);
  return c;
}

/** Polls cond every 20 ms until it holds or the time is up. */
async function until(cond: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await Bun.sleep(20);
  }
}

function collect<T>(c: WsgateClient, event: "message" | "room"): T[] {
  const out: T[] = [];
  c.on(event, (x: any) => out.push(x));
  return out;
}

afterAll(() => {
  for (const c of clients) c.close();
});

describe("pure helpers", () => {
  test("backoff is full jitter under an exponential, capped ceiling", () => {
    expect(backoffDelay(0, { initialMs: 100 }, () => 0.999)).toBe(99);
    expect(backoffDelay(3, { initialMs: 100 }, () => 0.5)).toBe(400);
    expect(backoffDelay(50, { initialMs: 100, maxMs: 2000 }, () => 0.999)).toBe(1998);
    expect(backoffDelay(5, {}, () => 0)).toBe(0);
  });

  test("gatewayUrl normalises schemes and paths and replaces our parameters", () => {
    expect(gatewayUrl("http://h:1")).toBe("ws://h:1/ws");
    expect(gatewayUrl("https://h/ws", { token: "t" })).toBe("wss://h/ws?token=t");
    expect(gatewayUrl("127.0.0.1:9", { user: "a", since: "e:1" })).toBe("ws://127.0.0.1:9/ws?user=a&since=e%3A1");
    // A bare host is wss (production sits behind TLS); loopback hosts stay on ws.
    expect(gatewayUrl("chat.example.com")).toBe("wss://chat.example.com/ws");
    expect(gatewayUrl("chat.example.com:8443/gw")).toBe("wss://chat.example.com:8443/gw");
    expect(gatewayUrl("localhost:8080")).toBe("ws://localhost:8080/ws");
    expect(gatewayUrl("[::1]:8080")).toBe("ws://[::1]:8080/ws");
    expect(() => gatewayUrl("/ws")).toThrow(); // no page to be relative to
    expect(gatewayUrl("ws://h/ws?since=old&x=1")).toBe("ws://h/ws?x=1");
    expect(() => gatewayUrl("ftp://h")).toThrow();
  });

  test("offset tracker drops duplicates, follows the newest seq and new epochs", () => {
    const t = new OffsetTracker(3);
    expect(t.record("e:2")).toBe(true);
    expect(t.record("e:1")).toBe(true); // out of order from another sender: not a duplicate
    expect(t.record("e:2")).toBe(false);
    expect(t.last).toBe("e:2");
    expect(t.record("f:1")).toBe(true); // history was lost: a new epoch starts over
    expect(t.last).toBe("f:1");
    expect(t.record("f:2")).toBe(true);
    expect(t.record("e:2")).toBe(true); // fell out of the 3-entry window
  });
});

describe("SDK policy (no gateway)", () => {
  test("an UnauthorizedError from the token function stops retrying", async () => {
    const fake = fakeSockets(() => "fail");
    let calls = 0;
    const c = client({
      url: "ws://127.0.0.1:1/ws",
      WebSocket: fake.WebSocket,
      token: () => {
        calls++;
        throw new UnauthorizedError("account disabled");
      },
    });
    const errors: Error[] = [];
    c.on("error", (e) => errors.push(e));
    const closed = new Promise<{ code: number }>((r) => c.once("closed", r));
    await closed;
    await Bun.sleep(100);
    expect(calls).toBe(1);
    expect(fake.urls.length).toBe(0);
    expect(c.state).toBe("closed");
    expect(errors[0]).toBeInstanceOf(UnauthorizedError);
    expect((errors[0] as WsgateError).code).toBe("unauthorized");
    await expect(c.send("x", 1)).rejects.toMatchObject({ code: "closed" });
  });

  test("any other token failure is retried", async () => {
    const fake = fakeSockets(() => "welcome");
    let calls = 0;
    const c = client({
      url: "ws://127.0.0.1:1/ws",
      WebSocket: fake.WebSocket,
      token: () => {
        if (++calls < 3) throw new Error("token service down");
        return "t";
      },
    });
    await c.waitOpen(5000);
    expect(calls).toBe(3);
  });

  test("maxAttempts gives up after that many failed attempts in a row; debug sees each, token redacted", async () => {
    const fake = fakeSockets(() => "fail");
    const events: { type: string; url?: string }[] = [];
    const c = client({ url: "ws://127.0.0.1:1/ws", WebSocket: fake.WebSocket, token: "secret-token", maxAttempts: 3, debug: (e) => events.push(e as any) });
    const errors: WsgateError[] = [];
    c.on("error", (e) => errors.push(e as WsgateError));
    await new Promise((r) => c.once("closed", r));
    expect(fake.urls.length).toBe(3);
    expect(errors.map((e) => e.code)).toEqual(["max_attempts"]);
    const connects = events.filter((e) => e.type === "connect");
    expect(connects.length).toBe(3);
    for (const e of connects) expect(e.url).not.toContain("secret-token");
    expect(events.filter((e) => e.type === "reconnect").length).toBe(2);
    expect(events.at(-1)?.type).toBe("stop");
  });

  test("after 1001 the reconnect waits a random time within goingAwayJitterMs", async () => {
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const fake = fakeSockets((_, n) => (n === 1 ? "welcome" : "fail"));
      const c = client({ url: "ws://127.0.0.1:1/ws", WebSocket: fake.WebSocket, autoConnect: false, goingAwayJitterMs: 1000 });
      const r = new Promise<number>((res) => c.once("reconnecting", (info) => res(info.delayMs)));
      c.connect();
      await c.waitOpen(2000);
      (c as any).ws.onclose({ code: 1001, reason: "going away" });
      delays.push(await r);
      c.close();
    }
    for (const d of delays) expect(d).toBeGreaterThanOrEqual(0), expect(d).toBeLessThan(1000);
    expect(new Set(delays).size).toBeGreaterThan(1); // spread, not one fixed delay
  });

  test("removeAllListeners drops one event's listeners or all", () => {
    const c = client({ url: "ws://127.0.0.1:1/ws", autoConnect: false, WebSocket: fakeSockets(() => "fail").WebSocket });
    c.on("message", () => {});
    c.on("message", () => {});
    c.on("state", () => {});
    expect(c.listenerCount("message")).toBe(2);
    c.removeAllListeners("message");
    expect(c.listenerCount("message")).toBe(0);
    expect(c.listenerCount("state")).toBe(1);
    c.removeAllListeners();
    expect(c.listenerCount("state")).toBe(0);
  });

  test("payloads are generic: interfaces are accepted, incoming data takes the client's type", () => {
    interface Chat {
      text: string;
      at: number;
    }
    const c = new WsgateClient<Chat>({ url: "ws://127.0.0.1:1/ws", autoConnect: false, WebSocket: fakeSockets(() => "fail").WebSocket });
    const msg: Chat = { text: "hi", at: 1 };
    void c.send("bob", msg).catch(() => {}); // compiles: an interface is not rejected as non-JSON
    c.on("message", (m) => {
      const t: string = m.data.text; // typed by the client's parameter
      void t;
    });
    c.close();
  });
});

describe("single gateway", () => {
  let gw: GatewayProc;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw?.kill("SIGKILL");
  });

  const tokenFor = (sub: string, rooms = ["chat:*"]) => mintToken(sub, { rooms });

  test("connects, sends a direct message, resolves the ack with offsets", async () => {
    const alice = client({ url: gw.ws, token: await tokenFor("alice") });
    const bob = client({ url: gw.http, token: () => tokenFor("bob") });
    const states: string[] = [];
    bob.on("state", (s) => states.push(s));
    const got = collect<IncomingMessage>(bob, "message");
    await Promise.all([alice.waitOpen(), bob.waitOpen()]);
    expect(bob.welcome?.user).toBe("bob");
    expect(states).toEqual(["connecting", "open"]);
    const ack = await alice.send("bob", { hi: 1 });
    expect(ack.type).toBe("ack");
    expect(typeof ack.offsets?.bob).toBe("string");
    await until(() => got.length === 1, 5000, "bob's message");
    const m = got[0] as DirectMessage;
    expect(m).toMatchObject({ from: "alice", to: "bob", data: { hi: 1 }, offset: ack.offsets!.bob });
    expect(bob.lastOffset).toBe(ack.offsets!.bob!);
  });

  test("rooms: join, publish, room events, room presence; forbidden joins reject and are not retried", async () => {
    const a = client({ url: gw.ws, token: await tokenFor("ra") });
    const b = client({ url: gw.ws, token: await tokenFor("rb") });
    await Promise.all([a.waitOpen(), b.waitOpen()]);
    const aRoom = collect<RoomEvent>(a, "room");
    const bMsgs = collect<IncomingMessage>(b, "message");
    await a.join("chat:1");
    await b.join("chat:1");
    await until(() => aRoom.some((e) => e.event === "join" && e.user === "rb"), 5000, "room join event");
    await a.publish("chat:1", "hello room");
    await until(() => bMsgs.length === 1, 5000, "room message");
    expect(bMsgs[0]).toMatchObject({ from: "ra", room: "chat:1", data: "hello room" });
    const who = await a.roomPresence("chat:1");
    expect([...who.users].sort()).toEqual(["ra", "rb"]);

    const err = await a.join("secret").catch((e) => e);
    expect(err).toBeInstanceOf(WsgateError);
    expect(err.code).toBe("forbidden");
    expect(a.joinedRooms).toEqual(["chat:1"]);
    await b.leave("chat:1");
    await until(() => aRoom.some((e) => e.event === "leave" && e.user === "rb"), 5000, "room leave event");
  });

  test("user presence and ping", async () => {
    const p = client({ url: gw.ws, token: await tokenFor("pa") });
    await p.waitOpen();
    const seen: unknown[] = [];
    p.on("presence", (f) => seen.push(f));
    const r = await p.presence(["pa", "nobody"]);
    expect(r.users.pa?.online).toBe(true);
    expect(r.users.nobody?.online).toBe(false);
    expect(seen.length).toBe(1);
    expect((await p.ping()).type).toBe("pong");
  });

  test("queues while not connected, flushes in order on open, refuses past the bound", async () => {
    const sender = client({ url: gw.ws, token: await tokenFor("qa"), autoConnect: false, maxQueue: 3 });
    const rcv = client({ url: gw.ws, token: await tokenFor("qb") });
    const got = collect<IncomingMessage>(rcv, "message");
    await rcv.waitOpen();
    const acks = [sender.send("qb", 1), sender.send("qb", 2), sender.send("qb", 3)];
    const full = await sender.send("qb", 4).catch((e) => e);
    expect(full).toBeInstanceOf(WsgateError);
    expect(full.code).toBe("queue_full");
    expect(sender.queued).toBe(3);
    sender.connect();
    await Promise.all(acks);
    await until(() => got.length === 3, 5000, "queued messages");
    expect(got.map((m) => m.data)).toEqual([1, 2, 3]);
  });

  test("gateway error frames reject the matching request", async () => {
    const c = client({ url: gw.ws, token: await tokenFor("ea") });
    await c.waitOpen();
    const err = await c.request({ type: "send", to: "not a valid id!", data: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(WsgateError);
    expect(err.code).toBe("bad_request");
  });

  test("kicked by the admin API (4009): closed for good, no reconnect", async () => {
    const c = client({ url: gw.ws, token: await tokenFor("kicked") });
    await c.waitOpen();
    const closed = new Promise<{ code: number }>((r) => c.once("closed", r));
    let reconnecting = 0;
    c.on("reconnecting", () => reconnecting++);
    const res = await gw.admin("/v1/users/kicked/connections", { method: "DELETE" });
    expect(res.status).toBe(200);
    expect((await closed).code).toBe(4009);
    await Bun.sleep(300);
    expect(reconnecting).toBe(0);
    expect(c.state).toBe("closed");
    expect((await c.ping().catch((e) => e)).code).toBe("closed");
  });

  test("expired token (4001): the token function is asked again and the session continues", async () => {
    let calls = 0;
    // First token expires in 1 s (the gateway allows up to 5 s leeway), later ones last an hour.
    const c = client({ url: gw.ws, token: () => mintToken("expiring", { ttlS: ++calls === 1 ? 1 : 3600 }) });
    await c.waitOpen();
    const disconnect = new Promise<{ code: number }>((r) => c.once("disconnect", r));
    const reopened = new Promise<{ reconnected: boolean }>((r) => c.on("open", (i) => i.reconnected && r(i)));
    expect((await disconnect).code).toBe(4001);
    const t0 = Date.now();
    await reopened;
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(calls).toBe(2);
    expect((await c.ping()).type).toBe("pong");
  }, 20_000);

  test("expired static token: reports it and stops", async () => {
    const c = client({ url: gw.ws, token: await mintToken("static", { ttlS: 1 }) });
    await c.waitOpen();
    const errors: WsgateError[] = [];
    c.on("error", (e) => errors.push(e as WsgateError));
    const closed = await new Promise<{ code: number }>((r) => c.once("closed", r));
    expect(closed.code).toBe(4001);
    expect(errors.map((e) => e.code)).toContain("token_expired");
  }, 20_000);

  test.skipIf(!Bun.which("node"))("runs on Node (20+: built-in WebSocket) from a plain JS build", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wsgate-node-"));
    try {
      const built = await Bun.build({ entrypoints: [new URL("../src/client/index.ts", import.meta.url).pathname], target: "node", format: "esm", outdir: dir, naming: "client.mjs" });
      expect(built.success).toBe(true);
      await Bun.write(
        join(dir, "run.mjs"),
        [
          'import { WsgateClient } from "./client.mjs";',
          "const [url, token] = process.argv.slice(2);",
          "const c = new WsgateClient({ url, token });",
          "const got = new Promise((r) => c.on(\"message\", r));",
          "const info = await c.waitOpen();",
          "const ack = await c.send(info.welcome.user, { from: \"node\" });",
          "const m = await got;",
          "console.log(JSON.stringify({ user: info.welcome.user, data: m.data, offset: m.offset === ack.offsets[info.welcome.user] }));",
          "c.close();",
        ].join("\n"),
      );
      const major = Number(/^v(\d+)/.exec((await Bun.$`node --version`.text()).trim())?.[1]);
      const flags = major < 22 ? ["--experimental-websocket"] : [];
      const proc = Bun.spawn(["node", ...flags, join(dir, "run.mjs"), gw.ws, await tokenFor("nodeuser")], { stdout: "pipe", stderr: "pipe" });
      const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      clearTimeout(timer);
      if (code !== 0) throw new Error(`node exited ${code}: ${err}`);
      expect(JSON.parse(out)).toEqual({ user: "nodeuser", data: { from: "node" }, offset: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a refused connection (bad token) is retried with backoff, not in a tight loop", async () => {
    const c = client({ url: gw.ws, token: "not-a-jwt", backoff: { initialMs: 100, maxMs: 400 } });
    const delays: number[] = [];
    c.on("reconnecting", (i) => delays.push(i.delayMs));
    await Bun.sleep(1200);
    c.close();
    expect(delays.length).toBeGreaterThan(1);
    expect(delays.length).toBeLessThan(40);
    expect(c.state).toBe("closed");
  });
});

describe("cluster: resume on another gateway", () => {
  let redis: RedisServer;
  let gws: GatewayProc[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    gws = [await startGateway({ REDIS_URL: redis.url }), await startGateway({ REDIS_URL: redis.url })];
  });
  afterAll(async () => {
    for (const g of gws) await g.kill("SIGKILL");
    await redis?.stop();
  });

  /** Sends 1..n to `to` from a client on `via`, `pauseMs` apart, calling midway() after n/2. */
  async function stream(via: WsgateClient, to: string, n: number, pauseMs: number, midway: () => Promise<void> | void) {
    for (let i = 1; i <= n; i++) {
      await via.send(to, i);
      if (i === n / 2) await midway();
      await Bun.sleep(pauseMs);
    }
  }

  test("gateway killed mid-stream: the receiver resumes on the other and misses nothing", async () => {
    const [g1, g2] = gws as [GatewayProc, GatewayProc];
    const rcv = client({ url: [g1.ws, g2.ws], token: () => mintToken("resumer") });
    const sender = client({ url: g2.ws, token: await mintToken("streamer") });
    const got = collect<DirectMessage>(rcv, "message");
    const opens: { recovered: boolean | undefined; gateway: string }[] = [];
    rcv.on("open", (i) => opens.push({ recovered: i.recovered, gateway: i.welcome.gateway }));
    await Promise.all([rcv.waitOpen(), sender.waitOpen()]);
    expect(rcv.welcome?.gateway).toBe(g1.id);

    const N = 60;
    await stream(sender, "resumer", N, 10, async () => {
      await g1.kill("SIGKILL");
    });
    await until(() => got.length >= N, 10_000, `all ${N} messages (have ${got.length})`);
    await Bun.sleep(200); // a late duplicate would show up here
    expect(got.map((m) => m.data)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(new Set(got.map((m) => m.offset)).size).toBe(N);
    expect(opens.length).toBe(2);
    expect(opens[1]).toEqual({ recovered: true, gateway: g2.id });
    gws[0] = await startGateway({ REDIS_URL: redis.url }); // for the next test
  }, 30_000);

  test("drain (SIGTERM → 1001): reconnects within the jitter window, keeps its rooms, loses nothing", async () => {
    const [g1, g2] = gws as [GatewayProc, GatewayProc];
    const rcv = client({ url: [g1.ws, g2.ws], token: () => mintToken("drained", { rooms: ["chat:*"] }), goingAwayJitterMs: 300 });
    const watcher = client({ url: g2.ws, token: await mintToken("watcher", { rooms: ["chat:*"] }) });
    const got = collect<IncomingMessage>(rcv, "message");
    await Promise.all([rcv.waitOpen(), watcher.waitOpen()]);
    expect(rcv.welcome?.gateway).toBe(g1.id);
    await rcv.join("chat:drain");
    await watcher.join("chat:drain");

    const disconnect = new Promise<{ code: number; t: number }>((r) => rcv.once("disconnect", (d) => r({ code: d.code, t: Date.now() })));
    const reopened = new Promise<{ recovered: boolean | undefined; t: number; gateway: string }>((r) =>
      rcv.on("open", (i) => i.reconnected && r({ recovered: i.recovered, t: Date.now(), gateway: i.welcome.gateway })),
    );
    const N = 40;
    await stream(watcher, "drained", N, 10, () => {
      g1.proc.kill("SIGTERM");
    });
    const d = await disconnect;
    const o = await reopened;
    expect(d.code).toBe(1001);
    expect(o.t - d.t).toBeLessThan(300 + 1000); // jitter window + connect on a loaded machine
    expect(o.gateway).toBe(g2.id);
    expect(o.recovered).toBe(true);
    expect(await g1.proc.exited).toBe(0);

    await until(() => got.filter((m) => "to" in m).length >= N, 10_000, "all direct messages");
    expect(got.filter((m) => "to" in m).map((m) => m.data)).toEqual(Array.from({ length: N }, (_, i) => i + 1));

    // Rooms were re-joined on the new gateway: a publish after the move reaches it.
    await until(() => rcv.joinedRooms.includes("chat:drain"), 1000, "room intent kept");
    await Bun.sleep(200);
    await watcher.publish("chat:drain", "after drain");
    await until(() => got.some((m) => "room" in m && m.data === "after drain"), 5000, "room message after re-join");
  }, 30_000);
});
