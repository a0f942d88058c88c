// The front door against stand-in gateways (tiny Bun servers with a /ready switch and a WebSocket
// that says who it is): region choice, nearest ready region, close codes relayed, HTTP forwarded.
import { afterAll, expect, test } from "bun:test";
import type { Server } from "bun";
import { startFrontDoor, type FrontDoor } from "../harness/front-door.ts";
import { RttTable } from "../harness/regions.ts";
import { connect, type TestClient } from "./helpers/client.ts";

interface Fake { id: string; region: string; http: string; ready: boolean; refuse: boolean; server: Server<{ query: string }>; sockets: Set<import("bun").ServerWebSocket<{ query: string }>> }

function fakeGateway(id: string, region: string): Fake {
  const f = { id, region, ready: true, refuse: false, sockets: new Set() } as Fake;
  f.server = Bun.serve<{ query: string }>({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, srv) {
      const url = new URL(req.url);
      if (url.pathname === "/ready") return new Response(null, { status: f.ready ? 200 : 503 });
      if (url.pathname === "/ws" && f.refuse) return Response.json({ error: { code: "unavailable" } }, { status: 503 });
      if (url.pathname === "/ws" && srv.upgrade(req, { data: { query: url.search } })) return undefined;
      return Response.json({ id, path: url.pathname, query: url.search });
    },
    websocket: {
      open(ws) {
        f.sockets.add(ws);
        ws.send(JSON.stringify({ type: "welcome", gateway: id, region, query: ws.data.query }));
      },
      message(ws, m) { ws.send(m); },
      close(ws) { f.sockets.delete(ws); },
    },
  });
  f.http = `http://127.0.0.1:${f.server.port}`;
  return f;
}

const fakes = [fakeGateway("ord-1", "ord"), fakeGateway("ams-1", "ams"), fakeGateway("sin-1", "sin"), fakeGateway("sin-2", "sin")];
const rtt = new RttTable(["ord", "ams", "sin"], { "ord-ams": 90, "ord-sin": 220, "ams-sin": 160 });
let door: FrontDoor;
const clients: TestClient[] = [];
afterAll(() => {
  for (const c of clients) c.close();
  door?.close();
  for (const f of fakes) f.server.stop(true);
});

async function until(ok: () => boolean, ms = 3000) {
  for (const deadline = Date.now() + ms; !ok() && Date.now() < deadline;) await Bun.sleep(20);
  return ok();
}

test("routes by region, balances within it, falls back to the nearest ready region, relays close codes and HTTP", async () => {
  door = await startFrontDoor({ gateways: fakes.map(({ id, region, http }) => ({ id, region, http })), rtt, pollMs: 50 });
  const ws = (q: string) => `ws://127.0.0.1:${door.port}/ws?${q}`;
  const open = async (q: string) => {
    const c = await connect(ws(q), undefined, 5000);
    clients.push(c);
    return c;
  };

  const a = await open("region=sin&token=t1");
  const b = await open("region=sin&token=t2");
  expect([a.welcome!.gateway, b.welcome!.gateway].sort()).toEqual(["sin-1", "sin-2"]);
  expect(a.welcome!.query).toBe("?token=t1"); // region is the door's, the rest reaches the gateway
  expect((await open("region=ams")).welcome!.gateway).toBe("ams-1");
  expect((await open("")).welcome!.gateway).toBe("ord-1"); // no region: the first one
  // Frames both ways.
  a.send({ type: "ping", n: 1 });
  expect((await a.next((f) => f.type === "ping")).n).toBe(1);

  // sin not ready: sin's clients go to ams (160 ms) rather than ord (220 ms).
  fakes[2]!.ready = fakes[3]!.ready = false;
  expect(await until(() => door.pick("sin")?.region === "ams")).toBe(true);
  expect((await open("region=sin")).welcome!.gateway).toBe("ams-1");
  fakes[1]!.ready = false;
  expect(await until(() => door.pick("sin")?.region === "ord")).toBe(true);
  // Nothing ready: 503 for WebSockets and HTTP alike.
  fakes[0]!.ready = false;
  expect(await until(() => door.pick("sin") === null)).toBe(true);
  expect((await fetch(`http://127.0.0.1:${door.port}/health?region=sin`)).status).toBe(503);
  for (const f of fakes) f.ready = true;
  expect(await until(() => door.pick("sin")?.region === "sin")).toBe(true);

  // A gateway's close code reaches the client (a drain is 1001 "going away").
  for (const s of fakes[2]!.sockets) s.close(1001, "draining");
  for (const s of fakes[3]!.sockets) s.close(1001, "draining");
  expect((await a.waitClose(3000)).code).toBe(1001);
  expect((await b.waitClose(3000)).code).toBe(1001);
  // A client's close reaches the gateway.
  const c = await open("region=ams");
  const before = fakes[1]!.sockets.size;
  c.close();
  expect(await until(() => fakes[1]!.sockets.size === before - 1)).toBe(true);

  // Plain HTTP is forwarded to the region's gateway.
  const r = await fetch(`http://127.0.0.1:${door.port}/demo?region=ams&user=x`);
  expect(r.headers.get("x-wsgate-gateway")).toBe("ams-1");
  expect(await r.json()).toEqual({ id: "ams-1", path: "/demo", query: "?user=x" });
});

test("gateways that refuse before the door's poll notices: the next ones are tried, nearest region first", async () => {
  // A poll far in the future: the door still believes sin's two gateways ready (as right after a region cut).
  const stale = await startFrontDoor({ gateways: fakes.map(({ id, region, http }) => ({ id, region, http })), rtt, pollMs: 60_000 });
  const sin = fakes.filter((f) => f.region === "sin");
  for (const f of sin) f.refuse = true;
  try {
    expect(stale.ready()["sin-1"]).toBe(true);
    const c = await connect(`ws://127.0.0.1:${stale.port}/ws?region=sin&token=t9`, undefined, 5000);
    clients.push(c);
    expect(c.welcome!.gateway).toBe("ams-1"); // sin's nearest after sin (ams 160 ms, ord 220 ms)
  } finally {
    for (const f of sin) f.refuse = false;
    stale.close();
  }
});
