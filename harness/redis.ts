// A real redis-server on a free loopback port, killed by pid: for tests, the bench and `bun run cluster`.
import { spawn, type Subprocess } from "bun";
import { freePort } from "./ports.ts";

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
  const port = opts.port ?? (await freePort());
  const args = opts.args ?? [];
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
      await waitForRedis(port);
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

async function waitForRedis(port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const ok = await new Promise<boolean>((resolve) => {
        let buf = "";
        Bun.connect({
          hostname: "127.0.0.1",
          port,
          socket: {
            open(s) { s.write("PING\r\n"); },
            data(s, d) { buf += d.toString(); if (buf.includes("PONG")) { s.end(); resolve(true); } },
            error() { resolve(false); },
            close() { resolve(buf.includes("PONG")); },
            connectError() { resolve(false); },
          },
        }).catch(() => resolve(false));
      });
      if (ok) return;
    } catch {}
    await Bun.sleep(25);
  }
  throw new Error(`redis-server on ${port} did not start`);
}
