// Issue 9's findings, each as a test on real gateways and a real Redis: membership exact under any
// interleaving (§8.2), limits that keep one client from hurting others, and bad input answered by code.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Redis from "ioredis";
import { startRedis, type RedisServer } from "../harness/redis.ts";
import { createRedisClients } from "../src/backends/redis/clients.ts";
import { channels } from "../src/backends/redis/keys.ts";
import { RedisPresence } from "../src/backends/redis/presence.ts";
import { Connections, type Conn } from "../src/connections.ts";
import type { GatewayContext } from "../src/gateway/context.ts";
import { createMembership, type Membership } from "../src/gateway/membership.ts";
import { createLogger } from "../src/log.ts";
import { connect, TestClient } from "./helpers/client.ts";
import { startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { rawUpgrade } from "./helpers/rawws.ts";
import { mintToken } from "./helpers/token.ts";
import { eventually, received } from "./helpers/wait.ts";

let redis: RedisServer;
let a: GatewayProc;
let b: GatewayProc;
let r: Redis;
const clients: TestClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
  [a, b] = await Promise.all([
    startGateway({ REDIS_URL: redis.url, WSGATE_MAX_CONNS_PER_USER: "3", WSGATE_MAX_ROOMS: "45" }),
    startGateway({ REDIS_URL: redis.url, WSGATE_MAX_CONNS_PER_USER: "3", WSGATE_MAX_ROOMS: "45" }),
  ]);
  r = new Redis(redis.url);
}, 30_000);

afterAll(async () => {
  for (const c of clients) c.close();
  r?.disconnect();
  await Promise.all([a?.kill(), b?.kill()]);
  await redis?.stop();
});

async function user(gw: GatewayProc, sub: string, rooms = ["*"], query = ""): Promise<TestClient> {
  const c = await connect(`${gw.ws}?token=${await mintToken(sub, { rooms })}${query}`);
  clients.push(c);
  return c;
}

const numsub = async (ch: string) => Number(((await r.call("PUBSUB", "NUMSUB", ch)) as [string, number])[1]);

describe("membership is exact under any interleaving (§8.2)", () => {
  test("leave then join, sent back to back: the connection hears the room (3 of 3 runs)", async () => {
    for (let run = 0; run < 3; run++) {
      const room = `deaf-${run}`;
      const alice = await user(a, `alice-${run}`);
      const bob = await user(b, `bob-${run}`);
      expect((await alice.request({ type: "join", room })).type).toBe("ack");
      alice.send({ type: "leave", room, id: "l" });
      const j = await alice.request({ type: "join", room });
      expect(j.type).toBe("ack");
      expect((await bob.request({ type: "publish", room, data: "from-bob" })).type).toBe("ack");
      expect((await alice.request({ type: "publish", room, data: "own" })).type).toBe("ack");
      const got = await eventually(
        async () => (await received(alice)).filter((f) => f.type === "message").map((f) => f.data),
        (xs) => xs.length >= 2,
        3000,
      ).catch(() => []);
      expect(got.sort()).toEqual(["from-bob", "own"]);
      alice.close();
      bob.close();
    }
  });

  test("reconnect to the same gateway and re-join 40 rooms at once: messages from all 40 arrive", async () => {
    const rooms = Array.from({ length: 40 }, (_, i) => `many-${i}`);
    const first = await user(a, "carol");
    await Promise.all(rooms.map((room) => first.request({ type: "join", room })));
    first.close();
    const again = await user(a, "carol");
    const acks = await Promise.all(rooms.map((room) => again.request({ type: "join", room })));
    expect(acks.every((f) => f.type === "ack")).toBe(true);
    const pub = await user(b, "dave");
    for (const room of rooms) expect((await pub.request({ type: "publish", room, data: room })).type).toBe("ack");
    const heard = new Set<string>();
    await eventually(
      async () => {
        for (const f of await received(again)) if (f.type === "message") heard.add(f.data);
        return heard.size;
      },
      (n) => n === rooms.length,
      5000,
    ).catch(() => {});
    expect(rooms.filter((x) => !heard.has(x))).toEqual([]);
    for (const room of rooms) expect(await numsub(channels.room(room))).toBe(1);
  });

  test("a join racing its connection's close leaves no member behind, and no join without a leave", async () => {
    const observer = await user(b, "observer-ghost");
    for (let i = 0; i < 10; i++) expect((await observer.request({ type: "join", room: `ghost-${i}` })).type).toBe("ack");
    for (let i = 0; i < 10; i++) {
      const c = await user(a, `ghost-user-${i}`);
      c.send({ type: "join", room: `ghost-${i}`, id: "j" });
      c.close();
    }
    await Bun.sleep(1500);
    for (let i = 0; i < 10; i++) {
      const p = await observer.request({ type: "presence", room: `ghost-${i}` });
      expect(p.users).toEqual(["observer-ghost"]);
    }
    const events = (await received(observer)).filter((f) => f.type === "room" && f.user !== "observer-ghost");
    for (let i = 0; i < 10; i++) {
      const seq = events.filter((f) => f.room === `ghost-${i}`).map((f) => f.event);
      expect([[], ["join", "leave"]]).toContainEqual(seq);
    }
    observer.close();
  });

  test("a leave whose presence write fails still unsubscribes, and stays unsubscribed after Redis is back", async () => {
    const c = await user(a, "erin");
    expect((await c.request({ type: "join", room: "failing-leave" })).type).toBe("ack");
    expect(await numsub(channels.room("failing-leave"))).toBe(1);
    process.kill(redis.pid(), "SIGSTOP");
    let leave;
    try {
      leave = await c.request({ type: "leave", room: "failing-leave" }, 10_000);
    } finally {
      process.kill(redis.pid(), "SIGCONT");
    }
    expect(["ack", "error"]).toContain(leave.type);
    // Whatever the reply, the subscription goes, and a reconnect of the subscriber does not bring it back.
    await eventually(() => numsub(channels.room("failing-leave")), (n) => n === 0, 8000);
    // Both gateways reconnect after the stall (their upgrades are refused 503 until then).
    for (const gw of [a, b]) await eventually(async () => (await fetch(`${gw.http}/ready`)).status, (s) => s === 200, 8000);
    // A request on a loaded machine can time out just after the stall: that is a retry, not the answer.
    const p = await user(b, "frank");
    const roomUsers = () =>
      p.request({ type: "presence", room: "failing-leave" }, 3000).then((f) => f.users as string[] | undefined, () => undefined);
    await eventually(roomUsers, (u) => u !== undefined && u.length === 0, 12_000);
    await Bun.sleep(1500);
    expect(await numsub(channels.room("failing-leave"))).toBe(0);
    c.close();
    p.close();
  }, 45_000);
});

describe("limits (§8.2)", () => {
  test("a connection may be in at most WSGATE_MAX_ROOMS rooms; the next join gets too_many_rooms", async () => {
    const c = await user(a, "roomy");
    for (let i = 0; i < 45; i++) expect((await c.request({ type: "join", room: `cap-${i}` })).type).toBe("ack");
    expect(await c.request({ type: "join", room: "cap-45" })).toMatchObject({ type: "error", code: "too_many_rooms" });
    // Re-joining a room it is in is not a new room; leaving one makes room for another.
    expect((await c.request({ type: "join", room: "cap-3" })).type).toBe("ack");
    expect((await c.request({ type: "leave", room: "cap-3" })).type).toBe("ack");
    expect((await c.request({ type: "join", room: "cap-45" })).type).toBe("ack");
    c.close();
  });

  test("a user may hold WSGATE_MAX_CONNS_PER_USER connections on one gateway; the next upgrade is 429 too_many_connections", async () => {
    const token = await mintToken("greedy");
    const held = await Promise.all([1, 2, 3].map(() => user(a, "greedy")));
    const refused = await rawUpgrade(a.port, `/ws?token=${token}`);
    expect(refused.ok).toBe(false);
    expect(refused.answer.status).toBe(429);
    expect(refused.answer.json.error.code).toBe("too_many_connections");
    // Another gateway counts its own.
    const elsewhere = await user(b, "greedy");
    expect(elsewhere.welcome).toBeTruthy();
    held[0]!.close();
    await held[0]!.waitClose();
    await eventually(async () => (await rawUpgrade(a.port, `/ws?token=${token}`)).ok, (ok) => ok, 3000);
  });
});

describe("bad input never leaks internals", () => {
  test("`?gateway=` is validated before it goes into fly-replay", async () => {
    const fly = await startGateway({ FLY_MACHINE_ID: "machine1" });
    try {
      for (const bad of ["a;b", "x,instance=evil", "a b", "ü", "a".repeat(200)]) {
        const res = await fly.admin(`/stats?gateway=${encodeURIComponent(bad)}`);
        expect(res.status).toBe(400);
        expect(res.headers.get("fly-replay")).toBeNull();
      }
      const ok = await fly.admin("/stats?gateway=machine2");
      expect(ok.headers.get("fly-replay")).toBe("instance=machine2");
    } finally {
      await fly.kill();
    }
  });
});

describe("rate is charged per recipient (§8.2)", () => {
  let gw: GatewayProc;
  beforeAll(async () => {
    gw = await startGateway({ WSGATE_RATE: "2" }); // burst 4
  });
  afterAll(async () => {
    await gw?.kill();
  });

  test("a send to N users costs N tokens", async () => {
    const c = await connect(`${gw.ws}?token=${await mintToken("fan")}`);
    expect((await c.request({ type: "send", to: ["r1", "r2", "r3"], data: 1 })).type).toBe("ack");
    // One token left, three needed.
    expect(await c.request({ type: "send", to: ["r1", "r2", "r3"], data: 2 })).toMatchObject({ type: "error", code: "rate_limited" });
    c.close();
  });

  test("a refused send counts as one refused frame toward 4008, not one per recipient", async () => {
    const c = await connect(`${gw.ws}?token=${await mintToken("fan2")}`);
    const to = Array.from({ length: 30 }, (_, i) => `x${i}`);
    expect(await c.request({ type: "send", to, data: 1 })).toMatchObject({ type: "error", code: "rate_limited" });
    await Bun.sleep(600); // a token back for the ping
    expect((await c.request({ type: "ping" })).type).toBe("pong");
    expect(c.closed).toBeNull();
    c.close();
  });
});

describe("prototype-named users and large offsets", () => {
  test("a user named __proto__ appears in presence replies and in ack offsets", async () => {
    const proto = await user(a, "__proto__");
    const asker = await user(b, "asker-proto");
    const p = await asker.request({ type: "presence", users: ["__proto__", "nobody-x"] });
    expect(Object.keys(p.users).sort()).toEqual(["__proto__", "nobody-x"]);
    expect(p.users.__proto__).toMatchObject({ online: true, connections: 1 });
    const ack = await asker.request({ type: "send", to: ["__proto__", "nobody-x"], data: "hi" });
    expect(Object.keys(ack.offsets).sort()).toEqual(["__proto__", "nobody-x"]);
    const m = await proto.next((f) => f.type === "message");
    expect(m.offset).toBe(ack.offsets.__proto__);
    // Single node (memory backends) too.
    const solo = await startGateway({});
    try {
      const s1 = await connect(`${solo.ws}?token=${await mintToken("__proto__")}`);
      const s2 = await connect(`${solo.ws}?token=${await mintToken("other")}`);
      const sp = await s2.request({ type: "presence", users: ["__proto__"] });
      expect(Object.keys(sp.users)).toEqual(["__proto__"]);
      const sa = await s2.request({ type: "send", to: ["__proto__", "other"], data: 1 });
      expect(Object.keys(sa.offsets).sort()).toEqual(["__proto__", "other"]);
      s1.close();
      s2.close();
    } finally {
      await solo.kill();
    }
  });

  test("since with a seq above 2^53-1 is refused with 400", async () => {
    const token = await mintToken("big-since");
    for (const since of ["e1:9007199254740992", "e1:99999999999999999", "e1:9999999999999999"]) {
      const res = await rawUpgrade(a.port, `/ws?token=${token}&since=${since}`);
      expect(res.ok).toBe(false);
      expect(res.answer.status).toBe(400);
    }
  });
});

describe("readiness follows a stalled Redis (§8.2)", () => {
  test("/ready turns 503 within 3 s of Redis stalling and 200 within 3 s of it answering again", async () => {
    const ready = async (gw: GatewayProc) => (await fetch(`${gw.http}/ready`)).status;
    expect(await ready(a)).toBe(200);
    process.kill(redis.pid(), "SIGSTOP");
    let stalledAt = Date.now();
    try {
      await eventually(() => ready(a), (s) => s === 503, 3000, 50);
    } finally {
      process.kill(redis.pid(), "SIGCONT");
      stalledAt = Date.now();
    }
    await eventually(() => ready(a), (s) => s === 200, 3000, 50);
    expect(Date.now() - stalledAt).toBeLessThan(3500);
    // The gateway works again.
    const c = await user(a, "after-stall");
    expect((await c.request({ type: "send", to: "x", data: 1 })).type).toBe("ack");
  }, 20_000);
});

describe("WSGATE_SESSIONS=single (§8.2)", () => {
  test("simultaneous connects of one user on two gateways: exactly one survives, the other is closed 4009", async () => {
    const [s1, s2] = await Promise.all([
      startGateway({ REDIS_URL: redis.url, WSGATE_SESSIONS: "single" }),
      startGateway({ REDIS_URL: redis.url, WSGATE_SESSIONS: "single" }),
    ]);
    try {
      for (let i = 0; i < 8; i++) {
        const token = await mintToken(`solo-${i}`);
        const pair = [new TestClient(`${s1.ws}?token=${token}`), new TestClient(`${s2.ws}?token=${token}`)];
        await Bun.sleep(1500);
        const open = pair.filter((c) => c.closed === null);
        expect(open).toHaveLength(1);
        for (const c of pair) if (c.closed) expect(c.closed.code).toBe(4009);
        for (const c of pair) c.close();
      }
    } finally {
      await Promise.all([s1.kill(), s2.kill()]);
    }
  }, 40_000);
});

// Seed 2005: a re-assert (lease lapsed under CPU starvation) snapshots the local registry and reaps the old
// incarnation while a (room, user)'s reconciler steps are queued or in flight. One gateway's membership runs
// in-process on the real Redis with a presence whose joinRoom can be held, so the interleaving is exact.
describe("a re-assert racing a (room, user)'s steps (seed 2005)", () => {
  interface Rig {
    membership: Membership;
    presence: RedisPresence;
    conns: Connections;
    /** Room events as published on the room's channel, in order. */
    events: string[];
    /** Holds the next joinRoom before (or after) its real call until release() runs. */
    holdJoin(when: "before" | "after"): { release(): void };
    close(): Promise<void>;
  }

  async function rig(room: string): Promise<Rig> {
    const log = createLogger("error", { test: "seed-2005" });
    const clients = await createRedisClients({ kind: "single", url: redis.url }, log);
    const presence = new RedisPresence(clients, { gatewayId: `seed2005-${room}`, region: "r1", started: Date.now(), ttlMs: 120_000, intervalMs: 60_000 }, log);
    const conns = new Connections();
    let hold: { when: "before" | "after"; gate: Promise<void> } | null = null;
    const held = new Proxy(presence, {
      get(t, k) {
        const v = Reflect.get(t, k, t);
        if (k !== "joinRoom") return typeof v === "function" ? v.bind(t) : v;
        return async (...args: [string, string]) => {
          const h = hold;
          hold = null;
          if (h?.when === "before") await h.gate;
          const res = await t.joinRoom(...args);
          if (h?.when === "after") await h.gate;
          return res;
        };
      },
    });
    const noop = async () => {};
    const broker = { subscribeRoom: noop, unsubscribeRoom() {}, subscribeUser: noop, unsubscribeUser() {}, publishRoom: noop };
    const ctx = { presence: held, broker, conns, log, now: Date.now } as unknown as GatewayContext;
    await presence.start({ counts: () => ({ connections: 0, users: 0 }), connections: () => [], rooms: () => conns.roomMemberships() }, () => {});
    const sub = new Redis(redis.url);
    const events: string[] = [];
    sub.on("message", (_ch, m) => {
      const f = JSON.parse(m);
      if (f.type === "room") events.push(`${f.event} ${f.user}`);
    });
    await sub.subscribe(channels.room(room));
    return {
      membership: createMembership(ctx),
      presence,
      conns,
      events,
      holdJoin(when) {
        let release!: () => void;
        hold = { when, gate: new Promise<void>((r) => (release = r)) };
        return { release };
      },
      async close() {
        sub.disconnect();
        await presence.stop();
        await clients.close();
      },
    };
  }

  const conn = (id: string, user: string) => ({ id, user, joined: null, since: Date.now() }) as unknown as Conn;

  test("a join still waiting for its step when the re-assert wrote the holding is announced once", async () => {
    const room = `s2005-a-${Date.now()}`;
    const g = await rig(room);
    try {
      const c = conn("a1", "ann");
      const held = g.holdJoin("before");
      const joined = g.membership.join(c, room);
      await Bun.sleep(50);
      // The re-assert finds the pair in the registry; its own step has not reached Redis yet.
      await g.presence.reassert("test: lease lapsed");
      held.release();
      await joined;
      await eventually(async () => g.events.length, (n) => n >= 1, 2000).catch(() => 0);
      await Bun.sleep(200);
      expect(g.events).toEqual(["join ann"]);
      expect(await g.presence.roomUsers(room)).toEqual(["ann"]);
    } finally {
      await g.close();
    }
  });

  test("out at the re-assert's snapshot and back in before its queued step ran: present again, and the room is told", async () => {
    const room = `s2005-b-${Date.now()}`;
    const g = await rig(room);
    try {
      const c = conn("b1", "bea");
      // The join's script lands (L|old incarnation, "join" announced) but its step is still in flight...
      const held = g.holdJoin("after");
      const joined = g.membership.join(c, room);
      await eventually(async () => g.events.length, (n) => n >= 1, 2000);
      // ...while the connection leaves (a step queued behind it) and the lease lapses: the re-assert's snapshot
      // has the pair out, and the reap of the old incarnation removes the holding and announces the leave.
      const left = g.membership.leave(c, room);
      await g.presence.reassert("test: lease lapsed");
      await eventually(async () => g.events.length, (n) => n >= 2, 3000);
      // Back in before the queued steps ran: they find the registry wanting what they remember writing.
      const again = g.membership.join(c, room);
      held.release();
      await Promise.all([joined, left, again]);
      await Bun.sleep(300);
      expect(await g.presence.roomUsers(room)).toEqual(["bea"]);
      expect(g.events).toEqual(["join bea", "leave bea", "join bea"]);
    } finally {
      await g.close();
    }
  });
});
