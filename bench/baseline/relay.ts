// The raw floor: the least a WebSocket relay pair joined by Redis PUBLISH/SUBSCRIBE has to do.
// No auth (?user= is trusted), no presence, no history, no validation beyond JSON.parse. It speaks
// wsgate's frames for direct messages and rooms so bench/loadgen.ts drives it unchanged; every
// benchmark figure is reported beside this one, so wsgate's overhead reads as a ratio.
//
// Routing: one Redis channel per user ("u:<user>") and per room ("r:<room>"), subscribed while
// at least one local connection holds it. Local connections of a user or room are a Bun topic of
// the same name, so a Redis message is handed to server.publish without parsing it.
import dc from "node:diagnostics_channel";
import Redis from "ioredis";

// Bun 1.4's TracingChannel lacks `hasSubscribers`, which ioredis 6 reads as "someone is tracing" and
// then wraps every command in a traced promise. A floor should not pay for that; wsgate patches it too.
{
  const proto = Object.getPrototypeOf(dc.tracingChannel("relay:probe")) as object;
  if (!("hasSubscribers" in proto))
    Object.defineProperty(proto, "hasSubscribers", {
      configurable: true,
      get(this: Record<string, { hasSubscribers?: boolean } | undefined>) {
        return ["start", "end", "asyncStart", "asyncEnd", "error"].some((k) => this[k]?.hasSubscribers === true);
      },
    });
}

const PORT = Number(process.env.PORT ?? 8090);
const HOST = process.env.HOST ?? "127.0.0.1";
const REDIS_URL = process.env.REDIS_URL;
const ID = process.env.RELAY_ID ?? `relay-${process.pid}`;
// RELAY_STORE=1: the plain-XADD floor. Each direct message is also stored the plain way (XADD with an
// exact MAXLEN, PEXPIRE, then PUBLISH, auto-pipelined, no Lua) and acked once Redis has it: the least a
// relay with per-user history has to ask of Redis, which wsgate's history is measured against.
const STORE = process.env.RELAY_STORE === "1";
const HISTORY_SIZE = process.env.RELAY_HISTORY_SIZE ?? "1000";
const HISTORY_TTL_MS = Number(process.env.RELAY_HISTORY_TTL_S ?? 300) * 1000;
// RELAY_IDLE_S: Bun's native idle timeout, with its native pings. uWS pings a socket silent for the timeout less
// a margin (16 s from 32 s up) and drops it when the margin passes without an answer, so 41 pings every silent
// socket after 25 s of silence: the protocol's heartbeat, at the least it can cost (uWS timers, no JS per socket).
// Unset: Bun's default (120 s, so a ping per 104 s of silence).
const IDLE_S = process.env.RELAY_IDLE_S ? Number(process.env.RELAY_IDLE_S) : undefined;

interface ConnData { user: string; rooms: Set<string> }

// Redis is optional so the floor also runs single-node (same-instance delivery only).
// Auto-pipelining: publishes issued in one tick go out in one write; without it a write syscall
// per PUBLISH is the largest cost of the whole relay (measured: a third of its CPU).
const pub = REDIS_URL ? new Redis(REDIS_URL, { lazyConnect: false, enableAutoPipelining: true }) : null;
const sub = REDIS_URL ? new Redis(REDIS_URL, { lazyConnect: false }) : null;

// How many local connections hold each topic; Redis SUBSCRIBE only on 0 -> 1, UNSUBSCRIBE on 1 -> 0.
const holders = new Map<string, number>();

async function hold(topic: string): Promise<void> {
  const n = (holders.get(topic) ?? 0) + 1;
  holders.set(topic, n);
  if (n === 1 && sub) await sub.subscribe(topic);
}

function release(topic: string): void {
  const n = (holders.get(topic) ?? 0) - 1;
  if (n > 0) { holders.set(topic, n); return; }
  holders.delete(topic);
  if (sub) void sub.unsubscribe(topic).catch(() => {});
}

const server = Bun.serve({
  hostname: HOST,
  port: PORT,
  fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === "/health" || url.pathname === "/ready") return Response.json({ status: "ok" });
    if (url.pathname !== "/ws") return new Response("not found", { status: 404 });
    const user = url.searchParams.get("user");
    if (!user) return Response.json({ error: { code: "unauthorized", message: "user missing" } }, { status: 401 });
    if (srv.upgrade(req, { data: { user, rooms: new Set<string>() } })) return undefined;
    return new Response("upgrade required", { status: 426 });
  },
  websocket: {
    data: {} as ConnData,
    ...(IDLE_S !== undefined ? { idleTimeout: IDLE_S, sendPings: true } : {}),
    open(ws) {
      const topic = "u:" + ws.data.user;
      ws.subscribe(topic);
      void hold(topic).catch(() => {});
      ws.send(`{"type":"welcome","user":${JSON.stringify(ws.data.user)},"gateway":${JSON.stringify(ID)}}`);
    },
    message(ws, msg) {
      if (typeof msg !== "string") return;
      let f: any;
      try { f = JSON.parse(msg); } catch { ws.send('{"type":"error","code":"bad_request","message":"json"}'); return; }
      switch (f.type) {
        case "send": {
          const to = String(f.to);
          const out = JSON.stringify({ type: "message", from: ws.data.user, to, data: f.data, ts: Date.now() });
          const topic = "u:" + to;
          if (STORE && pub) {
            const key = "h:" + to;
            const stored = pub.xadd(key, "MAXLEN", HISTORY_SIZE, "*", "m", out);
            void pub.pexpire(key, HISTORY_TTL_MS);
            if (holders.has(topic)) server.publish(topic, out);
            else void pub.publish(topic, out);
            stored.then(
              () => { if (f.id) ws.send(`{"type":"ack","id":${JSON.stringify(f.id)}}`); },
              () => { if (f.id) ws.send(`{"type":"error","id":${JSON.stringify(f.id)},"code":"unavailable","message":"redis"}`); },
            );
            return;
          }
          // Local recipient: no Redis hop at all, as any sensible relay would do.
          if (holders.has(topic)) server.publish(topic, out);
          else if (pub) void pub.publish(topic, out);
          if (f.id) ws.send(`{"type":"ack","id":${JSON.stringify(f.id)}}`);
          return;
        }
        case "join": {
          const topic = "r:" + String(f.room);
          if (ws.data.rooms.has(topic)) { if (f.id) ws.send(`{"type":"ack","id":${JSON.stringify(f.id)}}`); return; }
          ws.data.rooms.add(topic);
          ws.subscribe(topic);
          // Ack only once Redis has the subscription, so a publish right after the ack reaches us.
          hold(topic).then(
            () => { if (f.id) ws.send(`{"type":"ack","id":${JSON.stringify(f.id)}}`); },
            () => { if (f.id) ws.send(`{"type":"error","id":${JSON.stringify(f.id)},"code":"unavailable","message":"redis"}`); },
          );
          return;
        }
        case "leave": {
          const topic = "r:" + String(f.room);
          if (ws.data.rooms.delete(topic)) { ws.unsubscribe(topic); release(topic); }
          if (f.id) ws.send(`{"type":"ack","id":${JSON.stringify(f.id)}}`);
          return;
        }
        case "publish": {
          const topic = "r:" + String(f.room);
          const out = JSON.stringify({ type: "message", from: ws.data.user, room: String(f.room), data: f.data, ts: Date.now() });
          // Every member, local ones included, gets it through Redis: one path, one order.
          if (pub) void pub.publish(topic, out);
          else server.publish(topic, out);
          if (f.id) ws.send(`{"type":"ack","id":${JSON.stringify(f.id)}}`);
          return;
        }
        case "ping":
          ws.send(f.id ? `{"type":"pong","id":${JSON.stringify(f.id)}}` : '{"type":"pong"}');
          return;
        default:
          ws.send('{"type":"error","code":"bad_request","message":"type"}');
      }
    },
    close(ws) {
      ws.unsubscribe("u:" + ws.data.user);
      release("u:" + ws.data.user);
      for (const topic of ws.data.rooms) release(topic);
    },
  },
});

// Strings, not Buffers: server.publish sends a Buffer as a binary frame, and clients expect text.
sub?.on("message", (channel: string, message: string) => {
  server.publish(channel, message);
});

function shutdown(): void {
  void server.stop(true);
  pub?.disconnect();
  sub?.disconnect();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
console.error(`relay ${ID} listening on ${HOST}:${server.port}`);
