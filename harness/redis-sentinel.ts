// A real Sentinel group on loopback: a primary, a replica and three `redis-server --sentinel` processes, with
// failure detection in about a second. For tests, the bench and `bun run cluster --redis sentinel`.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";
import { killedNodes, startRedis, type RedisServer } from "./redis.ts";
import { redisCli, redisInfo, until } from "./redis-cli.ts";

export interface RedisSentinelGroup {
  /** Primary and replica at start; which is primary changes with failovers (see `primary()`). */
  servers: RedisServer[];
  sentinels: RedisServer[];
  masterName: string;
  /** REDIS_SENTINELS value: `host:port,…`. */
  env: string;
  /** The server the sentinels currently name as primary. */
  primary(): Promise<RedisServer>;
  kill(node: RedisServer, signal?: "SIGKILL" | "SIGTERM"): Promise<void>;
  /** Start a killed server again (empty); the sentinels turn it into a replica of the current primary. */
  restart(node: RedisServer): Promise<void>;
  /** Until the sentinels name a primary other than `old`, and that server says it is a master. Returns ms waited. */
  waitFailover(old: RedisServer, timeoutMs?: number): Promise<number>;
  /** Until the current primary has `n` connected replicas. */
  waitReplicas(n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedisSentinel(opts: { masterName?: string; downAfterMs?: number; failoverTimeoutMs?: number } = {}): Promise<RedisSentinelGroup> {
  const masterName = opts.masterName ?? "wsgate";
  const dir = mkdtempSync(join(tmpdir(), "wsgate-sentinel-"));
  const started: RedisServer[] = [];
  try {
    // A replica writes the RDB it receives to its working directory: keep that out of the repository.
    const common = ["--repl-diskless-sync-delay", "0", "--loglevel", "warning", "--dir", dir];
    const primary = await startRedis({ args: common });
    started.push(primary);
    const replica = await startRedis({ args: ["--replicaof", "127.0.0.1", String(primary.port), ...common] });
    started.push(replica);
    await until("replica link up", async () => (await redisInfo(replica.port, "replication")).master_link_status === "up", 10_000, 50);
    const sentinels: RedisServer[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      // Sentinel rewrites its config file (it records the replicas and the other sentinels it found).
      const conf = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          "protected-mode no",
          `dir ${dir}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${primary.port} 2`,
          `sentinel down-after-milliseconds ${masterName} ${opts.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${masterName} ${opts.failoverTimeoutMs ?? 3000}`,
          `sentinel parallel-syncs ${masterName} 1`,
          "",
        ].join("\n"),
      );
      // startRedis puts `--port` etc. first; a config file must be redis-server's first argument, so pass it
      // through the args and let the positional `--sentinel` switch the mode.
      const s = await startSentinel(conf, port);
      sentinels.push(s);
      started.push(s);
    }
    const group = makeGroup([primary, replica], sentinels, masterName, dir);
    await until("sentinels see the replica and each other", async () => {
      for (const s of sentinels) {
        const info = await redisCli(s.port, ["SENTINEL", "MASTER", masterName]);
        const lines = info.split("\n").map((l) => l.trim());
        const field = (k: string) => lines[lines.indexOf(k) + 1];
        if (Number(field("num-slaves")) < 1 || Number(field("num-other-sentinels")) < 2) return false;
      }
      return true;
    }, 15_000, 100);
    return group;
  } catch (err) {
    for (const s of started) await s.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A sentinel process with the same kill/restart interface as a data node. */
async function startSentinel(conf: string, port: number): Promise<RedisServer> {
  const { spawn } = await import("bun");
  let proc: ReturnType<typeof spawn> | null = null;
  const s: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    args: [],
    pid: () => proc?.pid ?? -1,
    async start() {
      proc = spawn(["redis-server", conf, "--sentinel"], { stdout: "ignore", stderr: "ignore" });
      await until(`sentinel ${port}`, async () => (await redisCli(port, ["PING"], { timeoutMs: 1000 })).includes("PONG"), 5000, 25);
    },
    async stop(signal = "SIGKILL") {
      const p = proc;
      proc = null;
      if (!p) return;
      p.kill(signal);
      await p.exited;
    },
  };
  await s.start();
  return s;
}

function makeGroup(servers: RedisServer[], sentinels: RedisServer[], masterName: string, dir: string): RedisSentinelGroup {
  const down = killedNodes();
  const askPrimaryPort = async (): Promise<number> => {
    let last: unknown;
    for (const s of sentinels) {
      if (down.has(s)) continue;
      try {
        const out = (await redisCli(s.port, ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName])).trim().split("\n");
        return Number(out[1]);
      } catch (err) {
        last = err;
      }
    }
    throw last ?? new Error("no sentinel answered");
  };
  const group: RedisSentinelGroup = {
    servers,
    sentinels,
    masterName,
    env: sentinels.map((s) => `127.0.0.1:${s.port}`).join(","),
    async primary() {
      const port = await askPrimaryPort();
      const s = servers.find((x) => x.port === port);
      if (!s) throw new Error(`sentinels name an unknown primary :${port}`);
      return s;
    },
    kill: (node, signal) => down.kill(node, signal),
    restart: (node) => down.restart(node),
    async waitFailover(old, timeoutMs = 20_000) {
      const t0 = Date.now();
      await until(
        "sentinel failover",
        async () => {
          const port = await askPrimaryPort();
          if (port === old.port) return false;
          return (await redisInfo(port, "replication")).role === "master";
        },
        timeoutMs,
      );
      return Date.now() - t0;
    },
    async waitReplicas(n, timeoutMs = 20_000) {
      await until(
        `${n} replica(s) on the primary`,
        async () => {
          const info = await redisInfo((await group.primary()).port, "replication");
          return Object.entries(info).filter(([k, v]) => /^slave\d+$/.test(k) && v.includes("state=online")).length >= n;
        },
        timeoutMs,
      );
    },
    async stop() {
      down.releaseAll();
      // Sentinels first: left alone for a moment, they would reconfigure whatever next takes these ports.
      await Promise.all(sentinels.map((s) => s.stop()));
      await Promise.all(servers.map((s) => s.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return group;
}
