// The three Redis connections of a gateway: commands (primary), reads (replica if any) and a dedicated subscriber.
import Redis, { type RedisOptions } from "ioredis";
import type { Logger } from "../../log.ts";
import { patchTracingChannel } from "./bun-compat.ts";
import { defineScripts, type Scripted } from "./scripts.ts";

export interface RedisClients {
  /** Writes and scripts, always on the primary. */
  cmd: Scripted;
  /** Presence reads: the region-local replica when REDIS_REPLICA_URL is set. */
  read: Redis;
  /** Subscriber connection (replica when set): Pub/Sub only. */
  sub: Redis;
  state(): "ready" | "down";
  close(): Promise<void>;
}

// RESP2 on purpose: Upstash (the usual Redis on Fly.io) and Redis 6.2 are the targets, replies keep
// the shapes ioredis 5 code and our Lua scripts expect, and classic Pub/Sub needs its own connection anyway.
const base: RedisOptions = {
  protocol: 2,
  lazyConnect: true,
  // Fail fast instead of queueing while disconnected: a send must get `unavailable`, never a late ack.
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  // No per-command timeout: it costs a timer pair per command on the send path. A watchdog per connection
  // (below) catches a Redis that stopped answering without closing the socket.
  connectTimeout: 3000,
  retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
};

export async function createRedisClients(url: string, replicaUrl: string | undefined, log: Logger): Promise<RedisClients> {
  patchTracingChannel();
  // Auto-pipelining: everything issued in one tick leaves in one write, which is most of the send path's cost.
  const cmd = defineScripts(new Redis(url, { ...base, connectionName: "wsgate-cmd", enableAutoPipelining: true }));
  const read = replicaUrl ? new Redis(replicaUrl, { ...base, connectionName: "wsgate-read" }) : cmd;
  const sub = new Redis(replicaUrl ?? url, {
    ...base,
    connectionName: "wsgate-sub",
    // Subscriptions requested during a reconnect wait for it; ioredis re-subscribes the rest itself.
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    autoResubscribe: true,
  });
  for (const [name, c] of [["cmd", cmd], ["read", read], ["sub", sub]] as const) {
    if (name === "read" && c === cmd) continue;
    let wasDown = false;
    c.on("error", (err) => {
      if (!wasDown) log.warn("redis error", { client: name, err: (err as Error).message });
      wasDown = true;
    });
    c.on("ready", () => {
      if (wasDown) log.info("redis reconnected", { client: name });
      wasDown = false;
    });
  }
  await Promise.all([cmd.connect(), read === cmd ? null : read.connect(), sub.connect()]);
  // Not the subscriber: in subscribe mode a PING's reply is not matched to the command by ioredis, so it
  // would look stalled; a stalled server shows on the command connection first anyway.
  const watchdogs = [...new Set([cmd, read])].map((c) => watchdog(c, log));
  return {
    cmd,
    read,
    sub,
    state: () => (cmd.status === "ready" && sub.status === "ready" && read.status === "ready" ? "ready" : "down"),
    async close() {
      for (const w of watchdogs) clearInterval(w);
      for (const c of new Set([cmd, read, sub])) c.disconnect();
    },
  };
}

const WATCHDOG_MS = 1000;
const STALL_MS = 3000;

/**
 * A Redis that stops answering (paused, partitioned) without closing the socket would leave commands
 * waiting for ever. One PING per second per connection: no answer within STALL_MS and the connection is
 * dropped, which fails its pending commands (→ `unavailable`) and starts the reconnect.
 */
function watchdog(c: Redis, log: Logger) {
  let outstanding: number | null = null;
  const timer = setInterval(() => {
    if (c.status !== "ready") {
      outstanding = null;
      return;
    }
    if (outstanding !== null) {
      if (Date.now() - outstanding > STALL_MS) {
        log.warn("redis stopped answering; reconnecting", { connection: c.options.connectionName });
        outstanding = null;
        // Fail what waits now; left alone, ioredis would hold it for a resend after the reconnect.
        (c as unknown as { flushQueue(err: Error): void }).flushQueue(new Error("redis stopped answering"));
        c.disconnect(true);
      }
      return;
    }
    const sent = Date.now();
    outstanding = sent;
    c.ping()
      .catch(() => {})
      .finally(() => {
        if (outstanding === sent) outstanding = null;
      });
  }, WATCHDOG_MS);
  timer.unref?.();
  return timer;
}
