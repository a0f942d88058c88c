// A real 6-node Redis Cluster on loopback (3 primaries + 3 replicas) for tests, the bench and `bun run cluster`:
// nodes killed and restarted by pid, failovers waited for, slots resharded with redis-cli.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";
import { killedNodes, startRedis, type RedisServer } from "./redis.ts";
import { redisCli, until } from "./redis-cli.ts";

export interface ClusterNodeView {
  id: string;
  port: number;
  flags: string[];
  /** Node id of its primary, for replicas. */
  primaryId: string | null;
  connected: boolean;
  /** Slot count (ranges expanded; importing/migrating markers ignored). */
  slots: number;
  slotRanges: [number, number][];
}

export interface RedisCluster {
  nodes: RedisServer[];
  /** Seed URLs for REDIS_CLUSTER_URLS (every node: a gateway may start while one is down). */
  urls: string[];
  /** Comma-separated `urls`, as the env variable takes it. */
  env: string;
  dir: string;
  /** The cluster as a live node sees it. */
  view(fromPort?: number): Promise<ClusterNodeView[]>;
  /** Running nodes that currently own slots. */
  primaries(): Promise<RedisServer[]>;
  replicas(): Promise<RedisServer[]>;
  /** kill -9 (default) a node; its nodes.conf stays, so `restart` brings it back as the same node. */
  kill(node: RedisServer, signal?: "SIGKILL" | "SIGTERM"): Promise<void>;
  /** Start a killed node again; it rejoins (as a replica of whoever took its slots) and syncs from it. */
  restart(node: RedisServer): Promise<void>;
  /** Until the live nodes agree that `dead` failed and a replica of it owns its slots, cluster_state ok everywhere. */
  waitFailover(dead: RedisServer, timeoutMs?: number): Promise<number>;
  /** Until every running node says cluster_state:ok, 3 primaries own all slots, and (optionally) each has a synced replica. */
  waitHealthy(opts?: { replicas?: boolean; timeoutMs?: number }): Promise<void>;
  /** `redis-cli --cluster reshard`: move `slots` slots from one primary to another (keys migrate with them). */
  reshard(from: RedisServer, to: RedisServer, slots: number): Promise<void>;
  nodeId(node: RedisServer): Promise<string>;
  stop(): Promise<void>;
}

const SLOTS = 16384;

export function parseClusterNodes(text: string): ClusterNodeView[] {
  const out: ClusterNodeView[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(" ");
    if (f.length < 8) continue;
    const port = Number(f[1]!.split("@")[0]!.split(":").pop());
    let slots = 0;
    const slotRanges: [number, number][] = [];
    for (const s of f.slice(8)) {
      if (s.startsWith("[")) continue;
      const [a, b] = s.split("-");
      slotRanges.push([Number(a), Number(b ?? a)]);
      slots += b === undefined ? 1 : Number(b) - Number(a) + 1;
    }
    out.push({ id: f[0]!, port, flags: f[2]!.split(","), primaryId: f[3] === "-" ? null : f[3]!, connected: f[7] === "connected", slots, slotRanges });
  }
  return out;
}

export async function startRedisCluster(opts: { primaries?: number; replicasPer?: number; nodeTimeoutMs?: number; extraArgs?: string[] } = {}): Promise<RedisCluster> {
  const primaries = opts.primaries ?? 3;
  const total = primaries * (1 + (opts.replicasPer ?? 1));
  const dir = mkdtempSync(join(tmpdir(), "wsgate-cluster-"));
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < total; i++) {
      const port = await freePort();
      // The bus port defaults to port+10000, which collides with other free ports on a busy machine.
      const bus = await freePort();
      nodes.push(
        await startRedis({
          port,
          args: [
            "--cluster-enabled", "yes",
            "--cluster-config-file", join(dir, `nodes-${port}.conf`),
            "--cluster-node-timeout", String(opts.nodeTimeoutMs ?? 1000),
            "--cluster-port", String(bus),
            // Slots of a failed primary stop answering until its replica takes over; the rest keep working.
            "--cluster-require-full-coverage", "no",
            "--dir", dir,
            "--repl-diskless-sync-delay", "0",
            "--loglevel", "warning",
            ...(opts.extraArgs ?? []),
          ],
        }),
      );
    }
    await redisCliCreate(nodes, opts.replicasPer ?? 1);
  } catch (err) {
    for (const n of nodes) await n.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const down = killedNodes();
  const live = () => nodes.filter((n) => !down.has(n));
  const byPort = (port: number) => nodes.find((n) => n.port === port);

  const cluster: RedisCluster = {
    nodes,
    urls: nodes.map((n) => n.url),
    env: nodes.map((n) => n.url).join(","),
    dir,
    async view(fromPort) {
      const port = fromPort ?? live()[0]!.port;
      return parseClusterNodes(await redisCli(port, ["CLUSTER", "NODES"]));
    },
    async primaries() {
      const v = await cluster.view();
      return v.filter((n) => n.flags.includes("master") && !n.flags.includes("fail") && n.slots > 0).map((n) => byPort(n.port)!).filter((n) => !down.has(n));
    },
    async replicas() {
      const v = await cluster.view();
      return v.filter((n) => n.flags.includes("slave") && !n.flags.includes("fail")).map((n) => byPort(n.port)!).filter((n) => !down.has(n));
    },
    kill: (node, signal) => down.kill(node, signal),
    restart: (node) => down.restart(node),
    async nodeId(node) {
      return (await redisCli(node.port, ["CLUSTER", "MYID"])).trim();
    },
    async waitFailover(dead, timeoutMs = 20_000) {
      const t0 = Date.now();
      const deadId = parseClusterNodes(await readConfig(dir, dead.port)).find((n) => n.flags.includes("myself"))?.id;
      await until(
        `failover of node ${dead.port}`,
        async () => {
          for (const n of live()) {
            const v = parseClusterNodes(await redisCli(n.port, ["CLUSTER", "NODES"]));
            const d = v.find((x) => x.id === deadId);
            if (d && (d.slots > 0 || !d.flags.some((f) => f === "fail" || f === "fail?"))) return false;
            const owned = v.filter((x) => x.flags.includes("master") && !x.flags.includes("fail")).reduce((s, x) => s + x.slots, 0);
            if (owned !== SLOTS) return false;
            if (!(await redisCli(n.port, ["CLUSTER", "INFO"])).includes("cluster_state:ok")) return false;
          }
          return true;
        },
        timeoutMs,
      );
      return Date.now() - t0;
    },
    async waitHealthy(o = {}) {
      await until(
        "cluster healthy",
        async () => {
          for (const n of live()) {
            if (!(await redisCli(n.port, ["CLUSTER", "INFO"])).includes("cluster_state:ok")) return false;
            const v = parseClusterNodes(await redisCli(n.port, ["CLUSTER", "NODES"]));
            const masters = v.filter((x) => x.flags.includes("master") && !x.flags.includes("fail") && x.slots > 0);
            if (masters.length !== primaries || masters.reduce((s, x) => s + x.slots, 0) !== SLOTS) return false;
            if (v.some((x) => x.flags.includes("fail") || x.flags.includes("fail?") || x.flags.includes("handshake"))) return false;
            if (o.replicas !== false && v.some((x) => x.flags.includes("slave") && !x.flags.includes("fail")) && v.find((x) => x.flags.includes("myself"))!.flags.includes("slave")) {
              if (!(await redisCli(n.port, ["INFO", "replication"])).includes("master_link_status:up")) return false;
            }
          }
          return true;
        },
        o.timeoutMs ?? 30_000,
      );
    },
    async reshard(from, to, slots) {
      const [fromId, toId] = await Promise.all([cluster.nodeId(from), cluster.nodeId(to)]);
      await runRedisCli(
        ["--cluster", "reshard", `127.0.0.1:${from.port}`, "--cluster-from", fromId, "--cluster-to", toId, "--cluster-slots", String(slots), "--cluster-yes", "--cluster-pipeline", "100"],
        120_000,
      );
    },
    async stop() {
      down.releaseAll();
      await Promise.all(nodes.map((n) => n.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await cluster.waitHealthy();
  return cluster;
}

async function readConfig(dir: string, port: number): Promise<string> {
  return await Bun.file(join(dir, `nodes-${port}.conf`)).text();
}

async function redisCliCreate(nodes: RedisServer[], replicas: number) {
  await runRedisCli(["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", String(replicas), "--cluster-yes"], 60_000);
}

async function runRedisCli(args: string[], timeoutMs: number) {
  const { spawn } = await import("bun");
  const proc = spawn(["redis-cli", ...args], { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  // redis-cli --cluster reports failures with "[ERR]" and a non-zero exit.
  if (code !== 0 || /\[ERR\]/.test(out)) throw new Error(`redis-cli ${args.slice(0, 3).join(" ")} failed (exit ${code}): ${(out + err).slice(-2000)}`);
}
