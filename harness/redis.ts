// A real redis-server on a free loopback port, killed by pid: for tests, the bench and `bun run cluster`.
import { spawn, type Subprocess } from "bun";
import { freePort, holdPort } from "./ports.ts";

export interface RedisServer {
  port: number;
  url: string;
  pid: () => number;
  /** kill -9 (default) or SIGTERM; data is not persisted, so a restart comes back empty. */
  stop(signal?: "SIGKILL" | "SIGTERM"): Promise<void>;
  /** Start again on the same port (empty). */
  start(): Promise<void>;
  /** Extra redis-server arguments, e.g. ["--replicaof", "127.0.0.1", "6380"]. */
  args: string[];
}

export async function startRedis(opts: { args?: string[]; port?: number } = {}): Promise<RedisServer> {
  // A port we picked may be taken before redis-server binds it: pick another (an explicit port is the caller's).
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOn(opts.port ?? (await freePort()), opts.args ?? []);
    } catch (err) {
      if (opts.port !== undefined || attempt >= 3 || !(err instanceof PortTaken)) throw err;
    }
  }
}

class PortTaken extends Error {}

async function startOn(port: number, args: string[]): Promise<RedisServer> {
  let proc: Subprocess | null = null;
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    args,
    pid: () => proc?.pid ?? -1,
    async start() {
      proc = spawn(
        ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no", ...args],
        { stdout: "ignore", stderr: "ignore" },
      );
      await waitForRedis(port, proc);
    },
    async stop(signal = "SIGKILL") {
      const p = proc;
      proc = null;
      if (!p) return;
      p.kill(signal);
      await p.exited;
    },
  };
  await server.start();
  return server;
}

/**
 * Until the redis-server we spawned answers on `port`. The answer must come from our process (INFO's
 * process_id): on a busy machine a "free" port can be taken meanwhile, and then our server fails to bind
 * while someone else's answers PING, which would silently run a test against another test's data.
 */
async function waitForRedis(port: number, proc: Subprocess, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new PortTaken(`redis-server on ${port} exited at start (${proc.exitCode ?? proc.signalCode}): port taken?`);
    const pid = await new Promise<number | null>((resolve) => {
      let buf = "";
      Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          open(s) { s.write("INFO server\r\n"); },
          data(s, d) {
            buf += d.toString();
            const m = /process_id:(\d+)/.exec(buf);
            if (m) { s.end(); resolve(Number(m[1])); }
          },
          error() { resolve(null); },
          close() { resolve(Number(/process_id:(\d+)/.exec(buf)?.[1] ?? NaN) || null); },
          connectError() { resolve(null); },
        },
      }).catch(() => resolve(null));
    });
    if (pid === proc.pid) return;
    if (pid !== null) {
      // Ours cannot have bound the port: it exits on its own; make sure of it, then report the collision.
      await Promise.race([proc.exited, Bun.sleep(2000)]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      throw new PortTaken(`port ${port} is answered by another redis-server (pid ${pid}), not ours (pid ${proc.pid})`);
    }
    await Bun.sleep(25);
  }
  throw new Error(`redis-server on ${port} did not start`);
}

/**
 * The nodes a test killed in a cluster or Sentinel group. A killed node's port stays held until its restart: a
 * stranger's server on that port would be reconfigured by the Sentinels or the cluster as if it were the node.
 */
export function killedNodes() {
  const down = new Set<RedisServer>();
  const held = new Map<RedisServer, () => void>();
  return {
    has: (node: RedisServer) => down.has(node),
    async kill(node: RedisServer, signal: "SIGKILL" | "SIGTERM" = "SIGKILL") {
      down.add(node);
      await node.stop(signal);
      held.set(node, holdPort(node.port));
    },
    async restart(node: RedisServer) {
      held.get(node)?.();
      held.delete(node);
      await node.start();
      down.delete(node);
    },
    releaseAll() {
      for (const release of held.values()) release();
      held.clear();
    },
  };
}
