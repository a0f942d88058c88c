// One Redis command through redis-cli, for harness bookkeeping (cluster state, sentinel queries, INFO).
// Not for the data path: a process per call is slow, but it holds no connection state across kills.
import { spawn } from "bun";

/** Raw reply text (redis-cli's non-tty format), or throws with what redis-cli printed. */
export async function redisCli(port: number, args: string[], opts: { host?: string; timeoutMs?: number } = {}): Promise<string> {
  const proc = spawn(["redis-cli", "-h", opts.host ?? "127.0.0.1", "-p", String(port), ...args], { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 5000);
  try {
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    if (code !== 0) throw new Error(`redis-cli -p ${port} ${args.join(" ")}: exit ${code}: ${err || out}`);
    // redis-cli exits 0 for error replies; they start with "ERR", "CLUSTERDOWN", etc. on stdout.
    if (/^(ERR|CLUSTERDOWN|MOVED|ASK|LOADING|MASTERDOWN|NOAUTH|WRONGTYPE) /.test(out)) throw new Error(`redis-cli -p ${port} ${args.join(" ")}: ${out.trim()}`);
    return out;
  } finally {
    clearTimeout(timer);
  }
}

/** `INFO <section>` as a field map. */
export async function redisInfo(port: number, section: string, host?: string): Promise<Record<string, string>> {
  const out = await redisCli(port, ["INFO", section], { host });
  const fields: Record<string, string> = {};
  for (const line of out.split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i > 0 && !line.startsWith("#")) fields[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return fields;
}

/** Polls until check() is truthy; throws naming `what` after timeoutMs. */
export async function until<T>(what: string, check: () => Promise<T | undefined | false | null>, timeoutMs: number, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < 100_000; i++) {
    try {
      const v = await check();
      if (v !== undefined && v !== false && v !== null) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) break;
    await Bun.sleep(stepMs);
  }
  throw new Error(`timeout after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
}
