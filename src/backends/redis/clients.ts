// The Redis connections of a gateway, for each topology (PROTOCOL §8.3): one Redis (REDIS_URL, optionally a
// read replica), a Sentinel-managed primary, or a Redis Cluster. The broker and presence see the same shape:
// `cmd` for writes and scripts, `read` for presence reads, `sub` for Pub/Sub, `send` for the direct-message path.
import Redis, { Cluster, type ClusterNode, type ClusterOptions, type RedisOptions } from "ioredis";
import type { RedisTopology } from "../../config-redis.ts";
import type { Logger } from "../../log.ts";
import { patchTracingChannel } from "./bun-compat.ts";
import { defineScripts, type Scripted } from "./scripts.ts";
import { createTicks, type Ticks } from "../../ticks.ts";

export interface RedisClients {
  /** Writes and scripts, always on the primary (of the slot, in a cluster). */
  cmd: Scripted;
  /** Presence reads: the region-local replica when REDIS_REPLICA_URL is set. */
  read: Scripted;
  /** Subscriber: classic Pub/Sub, and in a cluster with `sharded` also SSUBSCRIBE on every slot owner. */
  sub: Redis | Cluster;
  /**
   * Direct-message pipelines. With WSGATE_REDIS_WAIT a connection of its own: WAIT blocks the connection it
   * runs on, and must follow the writes it covers on that same connection.
   */
  send: Scripted;
  topology: RedisTopology["kind"];
  /** Direct and room channels use SPUBLISH/SSUBSCRIBE (Redis Cluster 7+); else classic Pub/Sub. */
  sharded: boolean;
  /** WAIT n replicas per flushed pipeline, at most waitMs; 0 = no WAIT. */
  wait: { replicas: number; ms: number };
  /** Counted by the broker when WAIT returns fewer replicas than asked; read by the metrics. */
  counters: { waitTimeouts: number };
  /** The one start-up line: topology, server version, Pub/Sub kind, WAIT. */
  describe(): string;
  state(): "ready" | "down";
  close(): Promise<void>;
}

export interface ClientOptions {
  wait?: { replicas: number; ms: number };
  /** The gateway's shared timer for the watchdogs' PINGs (one wake-up with its other periodic jobs). */
  ticks?: Ticks;
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
  // Connected to a server that is (or just became) a replica: a failover in progress, or a DNS name that
  // still points at the old primary. Reconnect (asking the sentinels again) instead of failing every write.
  reconnectOnError: (err) => (err.message.startsWith("READONLY") ? 2 : false),
};

/** Subscriptions requested during a reconnect wait for it; ioredis re-subscribes the rest itself. */
const subscriber: RedisOptions = { enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: true };

export async function createRedisClients(topology: RedisTopology, log: Logger, opts: ClientOptions = {}): Promise<RedisClients> {
  patchTracingChannel();
  const wait = opts.wait ?? { replicas: 0, ms: 250 };
  if (topology.kind === "cluster") return createClusterClients(topology, log, wait);
  const make = (name: string, extra: RedisOptions = {}, url?: string): Redis => {
    const o: RedisOptions = { ...base, connectionName: `wsgate-${name}`, ...extra };
    if (topology.kind === "sentinel") {
      return new Redis({
        ...o,
        sentinels: topology.sentinels,
        name: topology.master,
        role: "master",
        password: topology.password,
        // Subscribes to the sentinels' +switch-master: the connection moves as soon as a failover is announced,
        // instead of when the old primary's socket finally errors.
        failoverDetector: true,
        sentinelRetryStrategy: (times) => Math.min(100 * times, 1000),
      });
    }
    const u = url ?? topology.url;
    return new Redis(u, { ...o, ...(topology.password && !new URL(u).password ? { password: topology.password } : {}) });
  };
  const replicaUrl = topology.kind === "single" ? topology.replicaUrl : undefined;
  // Auto-pipelining: everything issued in one tick leaves in one write, which is most of the send path's cost.
  const cmd = defineScripts(make("cmd", { enableAutoPipelining: true }));
  const read = replicaUrl ? defineScripts(make("read", {}, replicaUrl)) : cmd;
  const send = wait.replicas > 0 ? defineScripts(make("send")) : cmd;
  const sub = make("sub", subscriber, replicaUrl);
  const all = [...new Set<Redis>([cmd, read, send, sub])];
  const names = new Map<Redis, string>([[sub, "sub"], [send, "send"], [read, "read"], [cmd, "cmd"]]);
  for (const c of all) logTransitions(c, names.get(c)!, log);
  await Promise.all(all.map((c) => c.connect()));
  const server = await serverInfo(cmd);
  // Single Redis and Sentinel use classic Pub/Sub either way; the probe only names the mode, so an operator
  // sees at start that this is the Redis 6.2 command set (Upstash) rather than finding out from an error.
  const shardCapable = await hasShardedPubSub(cmd, server.major);
  if (wait.replicas > 0) await assertWaitWorks(send, topology.kind);
  // No PING on the subscriber: in subscribe mode a PING's reply is not matched to the command by ioredis, so
  // it would look stalled; a stalled server shows on the command connection first anyway.
  const ticks = opts.ticks ?? createTicks();
  const watchdogs = all.map((c) => watchdog(c, log, ticks, c !== sub));
  return {
    cmd,
    read,
    sub,
    send,
    topology: topology.kind,
    sharded: false,
    wait,
    counters: { waitTimeouts: 0 },
    describe: () =>
      `redis mode: ${topology.kind === "sentinel" ? `sentinel (master "${topology.master}")` : replicaUrl ? "single + read replica" : "single"}, ` +
      `Redis ${server.version}, ${shardCapable ? "classic Pub/Sub" : CLASSIC_ONLY}${wait.replicas > 0 ? `, WAIT ${wait.replicas} within ${wait.ms} ms` : ""}`,
    // A PING unanswered for a while is down too: a stalled Redis keeps its sockets open (§8.2: /ready 503 in 3 s).
    state: () => (all.every((c) => c.status === "ready") && !watchdogs.some((w) => w.stalled()) ? "ready" : "down"),
    async close() {
      for (const w of watchdogs) w.stop();
      for (const c of all) c.disconnect();
    },
  };
}

async function createClusterClients(topology: Extract<RedisTopology, { kind: "cluster" }>, log: Logger, wait: { replicas: number; ms: number }): Promise<RedisClients> {
  const seeds: ClusterNode[] = topology.urls.map((u) => {
    const url = new URL(u);
    return { host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || 6379) };
  });
  const first = new URL(topology.urls[0]!);
  const password = topology.password ?? (first.password ? decodeURIComponent(first.password) : undefined);
  const username = first.username ? decodeURIComponent(first.username) : undefined;
  const tls = first.protocol === "rediss:" ? {} : undefined;
  const make = (name: string, extra: Partial<ClusterOptions> = {}, redisExtra: RedisOptions = {}): Cluster =>
    new Cluster(seeds, {
      // The cluster's own queue stays off for the same reason as `base`: no late acks after an outage.
      enableOfflineQueue: false,
      lazyConnect: true,
      scaleReads: "master",
      slotsRefreshTimeout: 2000,
      // A failover or a migration answers MOVED/CLUSTERDOWN/TRYAGAIN for a moment: retry briefly, then fail.
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      maxRedirections: 16,
      clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
      ...extra,
      redisOptions: { ...base, connectionName: `wsgate-${name}`, password, username, tls, ...redisExtra },
    });
  const cmd = defineScripts(make("cmd", { enableAutoPipelining: true }) as unknown as Redis);
  const send = wait.replicas > 0 ? defineScripts(make("send") as unknown as Redis) : cmd;
  // Sharded subscribers: ioredis keeps one SSUBSCRIBE connection per primary and moves channels to the new
  // owner after a failover, a MOVED or a server-sent SUNSUBSCRIBE (slot migrated away).
  const sub = make("sub", { shardedSubscribers: true, enableOfflineQueue: true }, subscriber);
  const all = [...new Set<Cluster>([cmd as unknown as Cluster, send as unknown as Cluster, sub])];
  const names = ["cmd", "send", "sub"];
  all.forEach((c, i) => logTransitions(c, names[i]!, log));
  await Promise.all(all.map((c) => c.connect()));
  const versions = await Promise.all((cmd as unknown as Cluster).nodes("master").map((n) => serverInfo(n)));
  // Sharded Pub/Sub is Redis 7.0+; an older cluster (or one without SPUBLISH) still works with classic Pub/Sub.
  const capable = await Promise.all((cmd as unknown as Cluster).nodes("master").map((n, i) => hasShardedPubSub(n, versions[i]!.major)));
  const sharded = capable.every(Boolean);
  if (wait.replicas > 0) await assertWaitWorks(send, "cluster");
  return {
    cmd,
    read: cmd,
    sub,
    send,
    topology: "cluster",
    sharded,
    wait,
    counters: { waitTimeouts: 0 },
    describe: () =>
      `redis mode: cluster (${versions.length} primaries), Redis ${[...new Set(versions.map((v) => v.version))].join("/")}, ` +
      `${sharded ? "sharded Pub/Sub (SPUBLISH/SSUBSCRIBE) for users and rooms, classic for broadcast" : CLASSIC_ONLY}` +
      `${wait.replicas > 0 ? `, WAIT ${wait.replicas} within ${wait.ms} ms` : ""}`,
    state: () => (all.every((c) => c.status === "ready") ? "ready" : "down"),
    async close() {
      for (const c of all) c.disconnect();
    },
  };
}

const CLASSIC_ONLY = "classic Pub/Sub only (no SPUBLISH/SSUBSCRIBE on this server: Redis 6.2 command set, as on Upstash)";

/**
 * Does the server take SPUBLISH/SSUBSCRIBE? Redis 7.0+ unless renamed or disabled; not 6.2 nor Upstash. A
 * server that refuses COMMAND INFO (some managed services) counts as no: classic Pub/Sub works everywhere.
 */
async function hasShardedPubSub(c: Redis, major: number): Promise<boolean> {
  if (major < 7) return false;
  try {
    const info = (await c.call("COMMAND", "INFO", "SPUBLISH", "SSUBSCRIBE", "SUNSUBSCRIBE")) as unknown[];
    return Array.isArray(info) && info.length === 3 && info.every((x) => Array.isArray(x));
  } catch {
    return false;
  }
}

async function serverInfo(c: Redis): Promise<{ version: string; major: number }> {
  const info = String(await c.info("server"));
  const version = /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? "unknown";
  return { version, major: Number.parseInt(version, 10) || 0 };
}

/** Upstash and some managed services refuse WAIT: better to say so at start than to fail every send. */
async function assertWaitWorks(c: Redis, kind: string) {
  try {
    if (kind === "cluster") await Promise.all((c as unknown as Cluster).nodes("master").map((n) => n.call("WAIT", 0, 1)));
    else await c.call("WAIT", 0, 1);
  } catch (err) {
    throw new Error(`WSGATE_REDIS_WAIT is set but this Redis refuses WAIT: ${(err as Error).message}`);
  }
}

function logTransitions(c: Redis | Cluster, name: string, log: Logger) {
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

const WATCHDOG_MS = 1000;
const STALL_MS = 3000;
const STUCK_MS = 5000;
/** A PING older than this makes the connection count as down for readiness (a ping leaves every second). */
const NOT_READY_MS = 1500;

/**
 * A Redis that stops answering (paused, partitioned) without closing the socket would leave commands
 * waiting for ever. One PING per second per connection: no answer within STALL_MS and the connection is
 * dropped, which fails its pending commands (→ `unavailable`) and starts the reconnect. `ping: false` (the
 * subscriber) keeps only the reconnect supervision.
 */
function watchdog(c: Redis, log: Logger, ticks: Ticks, ping = true) {
  let outstanding: number | null = null;
  let downSince: number | null = null;
  let closing = false;
  // On the shared one-second grid (ticks.ts): every connection's PING leaves in the same wake-up.
  const timer = ticks.every(WATCHDOG_MS, () => {
    if (c.status !== "ready") {
      outstanding = null;
      downSince ??= Date.now();
      // Seen under Sentinel failovers: ioredis gives up (status "end") after the primary vanished, or a
      // reconnect never completes. Start a fresh connect; commands fail fast meanwhile (no offline queue).
      const stuck = c.status === "end" || (Date.now() - downSince > STUCK_MS && c.status !== "connecting");
      if (stuck && !closing) {
        log.warn("redis reconnect stuck; starting a new one", { connection: c.options.connectionName, status: c.status });
        downSince = Date.now();
        c.disconnect();
        c.connect().catch(() => {});
      }
      return;
    }
    downSince = null;
    if (!ping) return;
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
  });
  return {
    stop() {
      closing = true;
      timer.stop();
    },
    stalled: () => outstanding !== null && Date.now() - outstanding > NOT_READY_MS,
  };
}
