// Spawns a real gateway process (bun src/index.ts) on a free loopback port.
import { spawn, type Subprocess } from "bun";
import { freePort } from "../../harness/ports.ts";
import { TEST_SECRET } from "./token.ts";

export const ADMIN_TOKEN = "test-admin-token";
const ROOT = new URL("../..", import.meta.url).pathname;

export interface GatewayProc {
  port: number;
  id: string;
  http: string;
  ws: string;
  proc: Subprocess;
  output: () => string;
  kill(signal?: NodeJS.Signals | number): Promise<number>;
  admin(path: string, init?: RequestInit): Promise<Response>;
}

/**
 * Defaults: JWT auth with TEST_SECRET, admin token set, no Redis (pass REDIS_URL for cluster mode),
 * short heartbeat/TTL so failover tests run quickly. Any env key overrides.
 */
/**
 * Gateways still running after a test file are killed (test/setup.ts, preloaded by bunfig.toml). A beforeAll that
 * starts several at once and fails on one never gets the others' handles to kill: six gateways outlived such a
 * run by an hour. `bun test` fires no process exit event to hang this on.
 */
const running = new Set<Subprocess>();
export function killStrayGateways(): number {
  const n = running.size;
  for (const p of running) p.kill("SIGKILL");
  running.clear();
  return n;
}

export async function startGateway(env: Record<string, string | undefined> = {}): Promise<GatewayProc> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const id = env.WSGATE_GATEWAY_ID ?? `gw-${port}`;
  const fullEnv: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/tmp",
    PORT: String(port),
    HOST: "127.0.0.1",
    WSGATE_GATEWAY_ID: id,
    WSGATE_JWT_SECRET: TEST_SECRET,
    WSGATE_ADMIN_TOKEN: ADMIN_TOKEN,
    WSGATE_HEARTBEAT_MS: "1000",
    WSGATE_PRESENCE_TTL_MS: "2000",
    WSGATE_DRAIN_MS: "500",
    LOG_LEVEL: process.env.WSGATE_TEST_LOG ?? "warn",
  };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete fullEnv[k];
    else fullEnv[k] = v;
  }
  let out = "";
  const proc = spawn(["bun", "src/index.ts"], { cwd: ROOT, env: fullEnv, stdout: "pipe", stderr: "pipe" });
  running.add(proc);
  void proc.exited.then(() => running.delete(proc));
  const drain = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    const reader = s.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      out += dec.decode(value, { stream: true });
    }
  };
  void drain(proc.stdout as ReadableStream<Uint8Array>);
  void drain(proc.stderr as ReadableStream<Uint8Array>);
  const http = `http://127.0.0.1:${port}`;
  const gw: GatewayProc = {
    port,
    id,
    http,
    ws: `ws://127.0.0.1:${port}/ws`,
    proc,
    output: () => out,
    async kill(signal = "SIGKILL") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal as any);
      return await proc.exited;
    },
    admin(path, init = {}) {
      const headers = new Headers(init.headers);
      headers.set("authorization", `Bearer ${ADMIN_TOKEN}`);
      if (init.body && !headers.has("content-type")) headers.set("content-type", "application/json");
      return fetch(http + path, { ...init, headers });
    },
  };
  // Generous: on a loaded 2-core machine a gateway on a 6-node cluster can take many seconds to boot.
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`gateway exited ${proc.exitCode}: ${out}`);
    try {
      const r = await fetch(`${http}/ready`);
      if (r.status === 200) return gw;
    } catch {}
    await Bun.sleep(30);
  }
  proc.kill("SIGKILL");
  throw new Error(`gateway on ${port} not ready: ${out}`);
}
