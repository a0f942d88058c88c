// Spawning and stopping the processes a benchmark needs: gateways, floor relays, and reading
// their CPU time and RSS from /proc. Everything is stopped by pid, never by name.
import { spawn, type Subprocess } from "bun";

export const ROOT = new URL("../..", import.meta.url).pathname;

export interface Service {
  name: string;
  port: number;
  pid: number;
  proc: Subprocess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `cmd` and resolves once http://127.0.0.1:port/ready answers 200 (or /health for the floor). */
export async function startService(opts: {
  name: string;
  cmd: string[];
  env: Record<string, string>;
  port: number;
  /** Default: this checkout (--compare runs an earlier one). */
  cwd?: string;
  readyPath?: string;
  timeoutMs?: number;
}): Promise<Service> {
  let out = "";
  const keep = (s: string) => { out = (out + s).slice(-20000); };
  const proc = spawn(opts.cmd, {
    cwd: opts.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...opts.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  void readText(proc.stdout as ReadableStream<Uint8Array>, keep);
  void readText(proc.stderr as ReadableStream<Uint8Array>, keep);
  const svc: Service = {
    name: opts.name,
    port: opts.port,
    pid: proc.pid,
    proc,
    output: () => out,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      // A graceful stop that hangs (open sockets, drain) must not hang the benchmark.
      const t = setTimeout(() => { try { proc.kill("SIGKILL"); } catch {} }, 15000);
      const code = await proc.exited;
      clearTimeout(t);
      return code;
    },
  };
  const url = `http://127.0.0.1:${opts.port}${opts.readyPath ?? "/ready"}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 15000);
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`${opts.name} exited ${proc.exitCode}:\n${out}`);
    try {
      const r = await fetch(url);
      if (r.status === 200) return svc;
    } catch {}
    await Bun.sleep(50);
  }
  proc.kill("SIGKILL");
  throw new Error(`${opts.name} on ${opts.port} not ready after ${opts.timeoutMs ?? 15000} ms:\n${out}`);
}

/** Feeds a child's output stream, decoded, to `onText` until it ends. */
export async function readText(stream: ReadableStream<Uint8Array>, onText: (s: string) => void): Promise<void> {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onText(dec.decode(value, { stream: true }));
    }
  } catch {}
}

const CLK_TCK = 100; // Linux USER_HZ; /proc/<pid>/stat times are in these ticks everywhere that matters

/** User + system CPU time of a whole process (all threads), microseconds. */
export async function cpuMicros(pid: number): Promise<number> {
  try {
    const s = await Bun.file(`/proc/${pid}/stat`).text();
    // Fields after the ")" closing the command name; utime and stime are fields 14 and 15.
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
  } catch { return NaN; }
}

/** Resident set size, bytes. */
export async function rssBytes(pid: number): Promise<number> {
  try {
    const s = await Bun.file(`/proc/${pid}/status`).text();
    const m = /VmRSS:\s+(\d+) kB/.exec(s);
    return m ? Number(m[1]) * 1024 : NaN;
  } catch { return NaN; }
}

/** TCP segments this machine has sent (every process; on loopback that is both ends of each connection). */
export async function tcpOutSegs(): Promise<number> {
  const lines = (await Bun.file("/proc/net/snmp").text()).split("\n").filter((l) => l.startsWith("Tcp:"));
  const [names, values] = lines.map((l) => l.split(/\s+/));
  return Number(values![names!.indexOf("OutSegs")]);
}

export async function cpuOf(pids: number[]): Promise<number> {
  let sum = 0;
  for (const p of pids) sum += await cpuMicros(p);
  return sum;
}

export interface LoadSnapshot { busy: number; steal: number; ours: number; at: number }

/**
 * What the machine is doing besides us: busy and steal time from /proc/stat, and the CPU time of
 * this process and all its descendants (µs each). The difference over a step is load from other
 * processes on a shared machine, which skews latency far more than it skews CPU per message.
 */
export async function loadSnapshot(): Promise<LoadSnapshot> {
  const stat = await Bun.file("/proc/stat").text();
  const f = stat.slice(0, stat.indexOf("\n")).trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is already inside user)
  const tick = 1e6 / CLK_TCK;
  const busy = ((f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0)) * tick;
  const steal = (f[7] ?? 0) * tick;
  const procs: { pid: number; ppid: number; cpu: number }[] = [];
  for (const name of new Bun.Glob("[0-9]*").scanSync({ cwd: "/proc", onlyFiles: false })) {
    try {
      const s = await Bun.file(`/proc/${name}/stat`).text();
      const r = s.slice(s.lastIndexOf(")") + 2).split(" ");
      procs.push({ pid: Number(name), ppid: Number(r[1]), cpu: (Number(r[11]) + Number(r[12])) * tick });
    } catch {}
  }
  const ours = new Set([process.pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of procs) if (!ours.has(p.pid) && ours.has(p.ppid)) { ours.add(p.pid); grew = true; }
  }
  let oursCpu = 0;
  for (const p of procs) if (ours.has(p.pid)) oursCpu += p.cpu;
  return { busy, steal, ours: oursCpu, at: performance.now() };
}

/** Cores used by other processes, and cores stolen by the hypervisor, between two snapshots. */
export function foreignLoad(a: LoadSnapshot, b: LoadSnapshot): { otherCores: number; stealCores: number } {
  const wall = (b.at - a.at) * 1000;
  if (wall <= 0) return { otherCores: 0, stealCores: 0 };
  return { otherCores: Math.max(0, (b.busy - a.busy - (b.ours - a.ours)) / wall), stealCores: (b.steal - a.steal) / wall };
}
