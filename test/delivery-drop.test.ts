// A frame Bun's ServerWebSocket.send drops (returns 0) must not vanish: the connection is closed 4029, and the
// SDK resumes after 4029 from its last offset, so history fills the gap; a given-up gap fill closes 1011 likewise.
// Fake sockets on both sides, no server.
import { expect, test } from "bun:test";
import { WsgateClient } from "../src/client/index.ts";
import type { Config } from "../src/config.ts";
import { Connections, type Conn } from "../src/connections.ts";
import type { GatewayContext } from "../src/gateway/context.ts";
import { createDelivery } from "../src/gateway/delivery.ts";
import { CLOSE } from "../src/protocol/codes.ts";
import { Stats } from "../src/stats.ts";
import { fakeSockets } from "./helpers/fake-sockets.ts";

/** A server socket whose send returns what `result` says (bytes, -1 backpressure, 0 dropped). */
function fakeWs(result: () => number, buffered = 0) {
  return {
    sent: [] as string[],
    closedWith: null as { code: number; reason: string } | null,
    send(frame: string) {
      const r = result();
      if (r !== 0) this.sent.push(frame);
      return r;
    },
    getBufferedAmount: () => buffered,
    close(code: number, reason: string) {
      this.closedWith ??= { code, reason };
    },
  };
}

function rig() {
  const stats = new Stats();
  const conns = new Connections();
  const ctx = { config: { maxPayload: 65536 } as Config, stats, conns, now: Date.now } as unknown as GatewayContext;
  const delivery = createDelivery(ctx);
  let n = 0;
  const conn = (user: string, ws: ReturnType<typeof fakeWs>) => {
    const c = { id: `c${++n}`, user, joined: null, since: Date.now(), replayedTo: null, pending: null, drained: null, closed: false, ws } as unknown as Conn;
    conns.add(c);
    return c;
  };
  return { stats, delivery, conn };
}

const frame = (seq: number) => `{"type":"message","from":"a","to":"bob","data":${seq},"offset":"e:${seq}","ts":1796587062000}`;

test("a live frame the socket drops closes the connection 4029 and is counted; the user's other connection keeps going", () => {
  const { stats, delivery, conn } = rig();
  let dropNext = false;
  const dropping = fakeWs(() => (dropNext ? 0 : 100));
  const healthy = fakeWs(() => 100);
  const a = conn("bob", dropping);
  conn("bob", healthy);
  delivery.deliveries.user("bob", frame(1), "e:1");
  dropNext = true;
  delivery.deliveries.user("bob", frame(2), "e:2");
  dropNext = false;
  delivery.deliveries.user("bob", frame(3), "e:3");
  expect(dropping.closedWith).toEqual({ code: CLOSE.slow, reason: "frame dropped; resume" });
  expect(a.closed).toBe(true);
  // Nothing after the dropped frame reaches that connection (it would skip a message): the client resumes.
  expect(dropping.sent).toEqual([frame(1)]);
  expect(healthy.sent.length).toBe(3);
  expect(healthy.closedWith).toBeNull();
  expect(stats.framesDropped).toBe(1);
  expect(stats.framesOut).toBe(4);
});

test("a welcome or replay frame the socket drops (write) closes the connection 4029 too", () => {
  const { stats, delivery, conn } = rig();
  const ws = fakeWs(() => 0);
  const c = conn("carol", ws);
  delivery.write(c, '{"type":"welcome"}');
  delivery.write(c, frame(1));
  expect(ws.closedWith?.code).toBe(CLOSE.slow);
  expect(c.closed).toBe(true);
  expect(stats.framesDropped).toBe(1);
  expect(stats.framesOut).toBe(0);
});

test("resume: every connection of the user is closed 1011 so its client resumes; other users' stay", () => {
  const { delivery, conn } = rig();
  const [b1, b2, other] = [fakeWs(() => 100), fakeWs(() => 100), fakeWs(() => 100)];
  conn("bob", b1);
  conn("bob", b2);
  conn("erin", other);
  delivery.deliveries.resume("bob");
  expect([b1.closedWith?.code, b2.closedWith?.code, other.closedWith]).toEqual([CLOSE.internal, CLOSE.internal, null]);
});

test("backpressure (-1) under the slow bound is not a drop: the connection stays open", () => {
  const { stats, delivery, conn } = rig();
  const ws = fakeWs(() => -1, 1000);
  const c = conn("dave", ws);
  delivery.emit(c, frame(1), "e:1");
  delivery.write(c, frame(2));
  expect(ws.closedWith).toBeNull();
  expect(stats.framesDropped).toBe(0);
  expect(stats.framesOut).toBe(2);
});

test("the SDK resumes after 4029 from the last offset it received", async () => {
  // The first connection gets a message at offset e:7 and is then closed 4029 (a frame the gateway dropped).
  const { urls, WebSocket } = fakeSockets((_, n) => (n === 1 ? { welcomeThen: [frame(7)], close: CLOSE.slow } : "welcome"));
  const c = new WsgateClient({ url: "ws://127.0.0.1:1/ws", user: "bob", WebSocket, backoff: { initialMs: 10, maxMs: 20 } });
  try {
    const deadline = Date.now() + 3000;
    while (urls.length < 2 && Date.now() < deadline) await Bun.sleep(10);
    expect(urls.length).toBe(2);
    expect(new URL(urls[0]!).searchParams.get("since")).toBeNull();
    expect(new URL(urls[1]!).searchParams.get("since")).toBe("e:7");
  } finally {
    c.close();
  }
});
