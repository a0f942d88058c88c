// The connection registry: indexed both ways, edges reported exactly, nothing left behind after close —
// on the class itself, on an in-process server (exact index sizes), and with 10,000 real sockets on a gateway process.
import { afterAll, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import { ALL_ROOMS } from "../src/auth.ts";
import { loadConfig } from "../src/config.ts";
import { Connections, type Conn } from "../src/connections.ts";
import { createLogger } from "../src/log.ts";
import { createServer } from "../src/server.ts";
import { connect } from "./helpers/client.ts";
import { ADMIN_TOKEN, startGateway, type GatewayProc } from "./helpers/gateway.ts";

function conn(id: string, user: string): Conn {
  return {
    id,
    user,
    rooms: ALL_ROOMS,
    expiresAt: undefined,
    since: 0,
    resumeFrom: undefined,
    replayedTo: null,
    drained: null,
    ws: null,
    joined: null,
    tokens: 0,
    refilledAt: 0,
    floodStart: 0,
    floodCount: 0,
    lastSeen: 0,
    pingedAt: 0,
    pending: null,
    closed: false,
  };
}

const EMPTY = { byId: 0, byUser: 0, byRoom: 0, roomUsers: 0 };

describe("Connections", () => {
  test("add reports the user's first connection; both indexes hold it", () => {
    const r = new Connections();
    const a1 = conn("a1", "alice");
    const a2 = conn("a2", "alice");
    expect(r.add(a1)).toBe(true);
    expect(r.add(a2)).toBe(false);
    expect(r.size).toBe(2);
    expect(r.users).toBe(1);
    expect(r.byId.get("a2")).toBe(a2);
    expect([...r.byUser.get("alice")!]).toEqual([a1, a2]);
  });

  test("join/leave report user and room edges", () => {
    const r = new Connections();
    const a1 = conn("a1", "alice");
    const a2 = conn("a2", "alice");
    const b1 = conn("b1", "bob");
    for (const c of [a1, a2, b1]) r.add(c);
    expect(r.join(a1, "x")).toEqual({ userEdge: true, roomEdge: true });
    expect(r.join(a1, "x")).toBeNull(); // already joined
    expect(r.join(a2, "x")).toEqual({ userEdge: false, roomEdge: false });
    expect(r.join(b1, "x")).toEqual({ userEdge: true, roomEdge: false });
    expect(r.rooms).toBe(1);
    expect(r.byRoom.get("x")!.size).toBe(3);
    expect([...r.roomMemberships()].sort()).toEqual([["x", "alice"], ["x", "bob"]]);

    expect(r.leave(a1, "x")).toEqual({ userEdge: false, roomEdge: false });
    expect(r.leave(a1, "x")).toBeNull(); // not joined
    expect(r.leave(b1, "x")).toEqual({ userEdge: true, roomEdge: false });
    expect(r.leave(a2, "x")).toEqual({ userEdge: true, roomEdge: true });
    expect(r.rooms).toBe(0);
    expect(r.indexSizes()).toEqual({ byId: 3, byUser: 2, byRoom: 0, roomUsers: 0 });
    expect(a1.joined).toBeNull();
  });

  test("leave of a room never joined by anyone is a no-op", () => {
    const r = new Connections();
    const a = conn("a", "alice");
    r.add(a);
    expect(r.leave(a, "nowhere")).toBeNull();
    expect(r.indexSizes()).toEqual({ byId: 1, byUser: 1, byRoom: 0, roomUsers: 0 });
  });

  test("remove drops every room of the connection and reports each edge and the user's last connection", () => {
    const r = new Connections();
    const a1 = conn("a1", "alice");
    const a2 = conn("a2", "alice");
    r.add(a1);
    r.add(a2);
    r.join(a1, "x");
    r.join(a1, "y");
    r.join(a2, "y");
    const first = r.remove(a1);
    expect(first.lastForUser).toBe(false);
    expect(Object.fromEntries(first.rooms)).toEqual({
      x: { userEdge: true, roomEdge: true },
      y: { userEdge: false, roomEdge: false },
    });
    const second = r.remove(a2);
    expect(second.lastForUser).toBe(true);
    expect(Object.fromEntries(second.rooms)).toEqual({ y: { userEdge: true, roomEdge: true } });
    expect(r.indexSizes()).toEqual(EMPTY);
  });

  test("10,000 connections of 3,000 users in 50 rooms, opened and closed: every index back to empty", () => {
    const r = new Connections();
    const all: Conn[] = [];
    let userEdges = 0;
    for (let i = 0; i < 10_000; i++) {
      const c = conn(`c${i}`, `u${i % 3000}`);
      if (r.add(c)) userEdges++;
      r.join(c, `r${i % 50}`);
      if (i % 3 === 0) r.join(c, `r${(i + 7) % 50}`);
      all.push(c);
    }
    expect(userEdges).toBe(3000);
    expect(r.indexSizes()).toEqual({ byId: 10_000, byUser: 3000, byRoom: 50, roomUsers: 50 });
    // Close in an order unrelated to the open order.
    let last = 0;
    for (let k = 0; k < all.length; k++) {
      const c = all[(k * 7919) % all.length]!;
      if (k % 5 === 0 && c.joined) r.leave(c, [...c.joined][0]!);
      if (r.remove(c).lastForUser) last++;
    }
    expect(last).toBe(3000);
    expect(r.indexSizes()).toEqual(EMPTY);
    expect([...r.roomMemberships()]).toEqual([]);
  });
});

describe("in-process server: real sockets leave nothing behind", () => {
  let server: Server<Conn> | null = null;
  let srv: Awaited<ReturnType<typeof createServer>> | null = null;
  afterAll(() => {
    srv?.gateway.stopTimers();
    server?.stop(true);
  });

  test("1,000 sockets with rooms, closed by the client: exact index sizes back to empty", async () => {
    const config = loadConfig({ HOST: "127.0.0.1", PORT: "1", WSGATE_ADMIN_TOKEN: ADMIN_TOKEN, WSGATE_HEARTBEAT_MS: "60000" });
    srv = await createServer(config, { log: createLogger("error", {}, () => {}) });
    server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: srv.fetch, websocket: srv.websocket });
    const url = `ws://127.0.0.1:${server.port}/ws`;
    const clients = [];
    for (let i = 0; i < 1000; i += 200) {
      clients.push(
        ...(await Promise.all(
          Array.from({ length: 200 }, async (_, k) => {
            const c = await connect(`${url}?user=p${(i + k) % 300}`);
            await c.request({ type: "join", room: `room${(i + k) % 20}` });
            return c;
          }),
        )),
      );
    }
    expect(srv.gateway.indexSizes()).toEqual({ byId: 1000, byUser: 300, byRoom: 20, roomUsers: 20 });
    await Promise.all(clients.map((c) => (c.close(), c.waitClose())));
    const deadline = Date.now() + 5000;
    while (srv.gateway.status.connections() > 0 && Date.now() < deadline) await Bun.sleep(20);
    expect(srv.gateway.indexSizes()).toEqual(EMPTY);
    // Presence (the memory backend) is empty too: nobody online, no room members.
    await Bun.sleep(50);
    const admin = (path: string) => srv!.app.fetch(new Request(`http://x${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }));
    for (const u of ["p0", "p1", "p299"]) expect(await (await admin(`/v1/presence/${u}`)).json()).toEqual({ user: u, online: false, connections: [] });
    const probe = await connect(`${url}?user=probe`);
    for (let r = 0; r < 20; r++) {
      const p = await probe.request({ type: "presence", room: `room${r}` });
      expect(p.users).toEqual([]);
    }
    probe.close();
  });
});

describe("gateway process: 10,000 real sockets", () => {
  let gw: GatewayProc | null = null;
  afterAll(async () => {
    await gw?.kill("SIGKILL");
  });

  test("open and close 10,000 connections (3,000 users, 500 rooms): stats and presence back to empty", async () => {
    gw = await startGateway({ WSGATE_JWT_SECRET: undefined, WSGATE_HEARTBEAT_MS: "60000" });
    const N = 10_000;
    const BATCH = 500;
    const sockets: WebSocket[] = [];
    const deadline = Date.now() + 30_000;
    for (let i = 0; i < N && Date.now() < deadline; i += BATCH) {
      sockets.push(
        ...(await Promise.all(
          Array.from(
            { length: BATCH },
            (_, k) =>
              new Promise<WebSocket>((resolve, reject) => {
                const ws = new WebSocket(`${gw!.ws}?user=u${(i + k) % 3000}`);
                const t = setTimeout(() => reject(new Error("socket did not open")), 10_000);
                ws.onmessage = (ev) => {
                  const f = JSON.parse(String(ev.data));
                  if (f.type === "welcome") ws.send(JSON.stringify({ type: "join", room: `r${(i + k) % 500}`, id: "j" }));
                  else if (f.type === "ack" && f.id === "j") {
                    clearTimeout(t);
                    resolve(ws);
                  }
                };
                ws.onerror = () => reject(new Error("socket error"));
              }),
          ),
        )),
      );
    }
    expect(sockets).toHaveLength(N);
    const full = await (await gw.admin("/stats")).json();
    expect(full).toMatchObject({ connections: N, users: 3000, rooms: 500 });

    await Promise.all(
      sockets.map(
        (ws) =>
          new Promise<void>((resolve) => {
            ws.onclose = () => resolve();
            ws.close();
          }),
      ),
    );
    let stats: any = null;
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      stats = await (await gw.admin("/stats")).json();
      if (stats.connections === 0 && stats.users === 0 && stats.rooms === 0) break;
      await Bun.sleep(50);
    }
    expect(stats).toMatchObject({ connections: 0, users: 0, rooms: 0 });
    const gws = await (await gw.admin("/v1/gateways")).json();
    expect(gws.gateways[0]).toMatchObject({ connections: 0, users: 0 });
    for (const u of ["u0", "u1499", "u2999"])
      expect(await (await gw.admin(`/v1/presence/${u}`)).json()).toEqual({ user: u, online: false, connections: [] });
    const probe = await connect(`${gw.ws}?user=probe`);
    const p = await probe.request({ type: "presence", users: Array.from({ length: 100 }, (_, i) => `u${i * 30}`) });
    for (const v of Object.values(p.users as Record<string, unknown>)) expect(v).toEqual({ online: false, connections: 0, regions: [] });
    for (const r of ["r0", "r250", "r499"]) expect((await probe.request({ type: "presence", room: r })).users).toEqual([]);
    probe.close();
  }, 60_000);
});
