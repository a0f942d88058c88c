// `bun run cluster`: the production topology on one machine. A Redis primary and a replica, three
// gateways in regions ord, ams and sin (ams and sin read from the replica, as region-local replicas
// do on Fly.io), dev tokens for demo users, and everything stopped by pid on Ctrl-C or SIGTERM.
import { spawn, type Subprocess } from "bun";
import { SignJWT } from "jose";

const ROOT = new URL("..", import.meta.url).pathname;

export const DEMO_USERS = ["alice", "bob", "carol"] as const;
export const REGIONS = ["ord", "ams", "sin"] as const;
/** Regions reading from the replica; ord sits next to the primary, like Fly's primary_region. */
const REPLICA_REGIONS = new Set<string>(["ams", "sin"]);
const TOKEN_TTL_S = 12 * 3600;

export class UsageError extends Error {}

export interface ClusterOptions {
  ports: [number, number, number];
  redisPort: number; // 0 = pick a free port
  replicaPort: number; // 0 = pick a free port
  host: string;
  drainMs: number;
  startTimeoutMs: number;
  json: boolean;
  quiet: boolean;
  help: boolean;
}

export interface GatewaySpec {
  id: string;
  region: string;
  port: number;
  readsFrom: "primary" | "replica";
}

export const USAGE = `Usage: bun run cluster [options]

Starts redis-server (primary + replica, from PATH) and three gateways (ord, ams, sin).

  --base-port N      gateway ports N, N+1, N+2 (default 8081)
  --ports A,B,C      explicit gateway ports (overrides --base-port)
  --redis-port N     Redis primary port (default: a free port)
  --replica-port N   Redis replica port (default: a free port)
  --host H           listen address for everything (default 127.0.0.1)
  --drain-ms N       gateway drain on shutdown (default WSGATE_DRAIN_MS or 2000)
  --timeout-ms N     how long start-up may take (default 30000)
  --json             print one JSON event per line on stdout (spawn, ready, exit, stopped)
  --quiet            do not forward gateway and Redis logs
  -h, --help         this text

WSGATE_JWT_SECRET and WSGATE_ADMIN_TOKEN are taken from the environment, else generated.
Other WSGATE_* variables in the environment are passed to the gateways.`;

function portArg(flag: string, v: string | undefined, allowZero = false): number {
  if (v === undefined || !/^\d+$/.test(v)) throw new UsageError(`${flag} needs a port number`);
  const n = Number(v);
  if (n > 65535 || (n === 0 && !allowZero)) throw new UsageError(`${flag}: ${v} is not a usable port`);
  return n;
}

function msArg(flag: string, v: string | undefined): number {
  if (v === undefined || !/^\d+$/.test(v)) throw new UsageError(`${flag} needs a whole number of milliseconds`);
  return Number(v);
}

export function parseArgs(argv: string[], env: Record<string, string | undefined> = {}): ClusterOptions {
  const envDrain = env.WSGATE_DRAIN_MS;
  const opts: ClusterOptions = {
    ports: [8081, 8082, 8083],
    redisPort: 0,
    replicaPort: 0,
    host: "127.0.0.1",
    drainMs: envDrain && /^\d+$/.test(envDrain) ? Number(envDrain) : 2000,
    startTimeoutMs: 30_000,
    json: false,
    quiet: false,
    help: false,
  };
  let explicitPorts = false;
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    // Accept both "--flag value" and "--flag=value".
    const eq = raw.startsWith("--") ? raw.indexOf("=") : -1;
    const flag = eq > 0 ? raw.slice(0, eq) : raw;
    const value = () => (eq > 0 ? raw.slice(eq + 1) : argv[++i]);
    switch (flag) {
      case "--base-port": {
        const base = portArg(flag, value());
        if (base + 2 > 65535) throw new UsageError(`--base-port: ${base} leaves no room for three ports`);
        if (!explicitPorts) opts.ports = [base, base + 1, base + 2];
        break;
      }
      case "--ports": {
        const parts = (value() ?? "").split(",");
        if (parts.length !== 3) throw new UsageError("--ports needs three comma-separated ports");
        const ps = parts.map((p) => portArg("--ports", p.trim()));
        if (new Set(ps).size !== 3) throw new UsageError("--ports must be three different ports");
        opts.ports = [ps[0]!, ps[1]!, ps[2]!];
        explicitPorts = true;
        break;
      }
      case "--redis-port": opts.redisPort = portArg(flag, value(), true); break;
      case "--replica-port": opts.replicaPort = portArg(flag, value(), true); break;
      case "--host": {
        const h = value();
        if (!h) throw new UsageError("--host needs an address");
        opts.host = h;
        break;
      }
      case "--drain-ms": opts.drainMs = msArg(flag, value()); break;
      case "--timeout-ms": opts.startTimeoutMs = msArg(flag, value()); break;
      case "--json": opts.json = true; break;
      case "--quiet": opts.quiet = true; break;
      case "-h": case "--help": opts.help = true; break;
      default: throw new UsageError(`unknown option ${raw}`);
    }
  }
  const fixed = [...opts.ports, opts.redisPort, opts.replicaPort].filter((p) => p !== 0);
  if (new Set(fixed).size !== fixed.length) throw new UsageError("gateway and Redis ports must all differ");
  return opts;
}

export function planGateways(opts: Pick<ClusterOptions, "ports">): GatewaySpec[] {
  return REGIONS.map((region, i) => ({
    id: `${region}-1`,
    region,
    port: opts.ports[i]!,
    readsFrom: REPLICA_REGIONS.has(region) ? "replica" : "primary",
  }));
}

/** URLs need IPv6 literals in brackets. */
export function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** Environment for one gateway: the caller's WSGATE_* tuning, minus anything that would clash. */
export function gatewayEnv(
  spec: GatewaySpec,
  base: Record<string, string | undefined>,
  c: { host: string; redisUrl: string; replicaUrl: string; jwtSecret: string; adminToken: string; drainMs: number },
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    // FLY_* would make a local gateway believe it runs on Fly (identity, fly-replay); a shared
    // metrics port would make two of the three fail to start.
    if (v === undefined || k.startsWith("FLY_") || k === "WSGATE_METRICS_PORT") continue;
    env[k] = v;
  }
  Object.assign(env, {
    PORT: String(spec.port),
    HOST: c.host,
    REDIS_URL: c.redisUrl,
    WSGATE_REGION: spec.region,
    WSGATE_GATEWAY_ID: spec.id,
    WSGATE_JWT_SECRET: c.jwtSecret,
    WSGATE_ADMIN_TOKEN: c.adminToken,
    WSGATE_DRAIN_MS: String(c.drainMs),
  });
  if (spec.readsFrom === "replica") env.REDIS_REPLICA_URL = c.replicaUrl;
  else delete env.REDIS_REPLICA_URL;
  return env;
}

export async function mintDevToken(secret: string, sub: string, ttlS = TOKEN_TTL_S): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub, rooms: ["*"] })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt(now)
    .setExpirationTime(now + ttlS)
    .sign(new TextEncoder().encode(secret));
}

function randomToken(bytes = 32): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("base64url");
}

async function freePort(host: string): Promise<number> {
  const s = Bun.listen({ hostname: host, port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

function assertPortFree(host: string, port: number): void {
  try {
    Bun.listen({ hostname: host, port, socket: { data() {} } }).stop(true);
  } catch {
    throw new UsageError(`port ${port} on ${host} is in use (pick others with --base-port / --ports)`);
  }
}

/** One inline Redis command over a raw socket; null when Redis does not answer (yet). */
async function redisCommand(host: string, port: number, command: string, timeoutMs = 1000): Promise<string | null> {
  return new Promise((resolve) => {
    let buf = "";
    let done = false;
    const finish = (v: string | null, s?: { end(): void }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try { s?.end(); } catch {}
      resolve(v);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    Bun.connect({
      hostname: host,
      port,
      socket: {
        open(s) { s.write(`${command}\r\n`); },
        data(s, d) {
          buf += d.toString();
          const nl = buf.indexOf("\r\n");
          if (nl < 0) return;
          if (buf[0] !== "$") return finish(buf.slice(0, nl), s);
          const len = Number(buf.slice(1, nl));
          if (len < 0) return finish("", s);
          if (buf.length >= nl + 2 + len) finish(buf.slice(nl + 2, nl + 2 + len), s);
        },
        close() { finish(null); },
        error() { finish(null); },
        connectError() { finish(null); },
      },
    }).catch(() => finish(null));
  });
}

/** Calls onLine for every line of a byte stream until it ends (the last line may lack a newline). */
export async function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  let rest = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += dec.decode(value, { stream: true });
      const lines = rest.split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    }
  } catch {
    // The child went away mid-read; whatever arrived has been delivered.
  }
  if (rest) onLine(rest);
}

interface Child {
  name: string;
  kind: "redis" | "gateway";
  proc: Subprocess;
}

const alive = (p: Subprocess) => p.exitCode === null && p.signalCode === null;

/** Resolves true when the process exited within ms. */
async function exitedWithin(p: Subprocess, ms: number): Promise<boolean> {
  if (!alive(p)) return true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const r = await Promise.race([p.exited.then(() => true), new Promise<boolean>((res) => { timer = setTimeout(() => res(false), ms); })]);
  clearTimeout(timer);
  return r;
}

/** Owns every child process; the only way anything started here gets stopped. */
export class Cluster {
  readonly children: Child[] = [];
  private stopping: Promise<void> | null = null;
  private expectedExit = new Set<Subprocess>();

  constructor(private readonly opts: ClusterOptions, private readonly emit: (e: Record<string, unknown>) => void, private readonly log: (line: string) => void) {}

  start(name: string, kind: Child["kind"], cmd: string[], env?: Record<string, string>): Child {
    // A signal during start-up must not leave a child started after the stop began.
    if (this.stopping) throw new Error(`not starting ${name}: stopping`);
    // Own process group: a terminal's Ctrl-C reaches only this script, which then stops the children
    // in order (gateways drain while Redis is still up) instead of all of them dying at once.
    const proc = spawn(cmd, { cwd: ROOT, env, stdin: "ignore", stdout: "pipe", stderr: "pipe", detached: true });
    const child = { name, kind, proc };
    this.children.push(child);
    this.emit({ event: "spawn", name, kind, pid: proc.pid });
    void this.forward(name, proc.stdout as ReadableStream<Uint8Array>);
    void this.forward(name, proc.stderr as ReadableStream<Uint8Array>);
    void proc.exited.then((code) => {
      if (this.expectedExit.has(proc)) return;
      this.emit({ event: "exit", name, pid: proc.pid, code, signal: proc.signalCode ?? null });
      this.log(`[cluster] ${name} (pid ${proc.pid}) exited unexpectedly with ${proc.signalCode ?? `code ${code}`}`);
    });
    return child;
  }

  /** Always drains the pipes (a full pipe would block the child); prints them unless --quiet. */
  private async forward(name: string, stream: ReadableStream<Uint8Array>): Promise<void> {
    await readLines(stream, (line) => {
      if (!this.opts.quiet && line.trim()) this.log(`[${name}] ${line}`);
    });
  }

  /** Gateways first (their drain removes presence from Redis), then the replica, then the primary. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const gateways = this.children.filter((c) => c.kind === "gateway");
      await this.stopGroup(gateways, this.opts.drainMs + 5000);
      const redis = this.children.filter((c) => c.kind === "redis").reverse();
      for (const r of redis) await this.stopGroup([r], 3000);
    })();
    return this.stopping;
  }

  private async stopGroup(group: Child[], graceMs: number): Promise<void> {
    for (const c of group) {
      this.expectedExit.add(c.proc);
      if (alive(c.proc)) c.proc.kill("SIGTERM");
    }
    await Promise.all(
      group.map(async (c) => {
        if (await exitedWithin(c.proc, graceMs)) return;
        this.log(`[cluster] ${c.name} (pid ${c.proc.pid}) ignored SIGTERM for ${graceMs} ms: SIGKILL`);
        c.proc.kill("SIGKILL");
        await exitedWithin(c.proc, 2000);
      }),
    );
  }

  /** Last resort (second Ctrl-C, crash of this script): SIGKILL by pid, synchronously. */
  killAll(): void {
    for (const c of this.children) {
      this.expectedExit.add(c.proc);
      if (alive(c.proc)) c.proc.kill("SIGKILL");
    }
  }
}

async function waitFor(what: string, deadline: number, child: Child, check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 10_000; attempt++) {
    if (!alive(child.proc)) throw new Error(`${child.name} exited (${child.proc.signalCode ?? `code ${child.proc.exitCode}`}) before ${what}`);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${child.name}: timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
  throw new Error(`${child.name}: gave up waiting for ${what}`);
}

export interface ClusterInfo {
  pid: number;
  redis: { primary: { url: string; port: number; pid: number }; replica: { url: string; port: number; pid: number } };
  gateways: (GatewaySpec & { http: string; ws: string; pid: number })[];
  adminToken: string;
  jwtSecret: string;
  tokens: Record<string, string>;
}

export async function startCluster(cluster: Cluster, opts: ClusterOptions, env: Record<string, string | undefined>): Promise<ClusterInfo> {
  const { host } = opts;
  const specs = planGateways(opts);
  for (const p of [...opts.ports, opts.redisPort, opts.replicaPort]) if (p !== 0) assertPortFree(host, p);
  // A free port is only free until someone binds it: keep the picks apart from the gateway ports.
  const taken = new Set<number>([...opts.ports, opts.redisPort, opts.replicaPort]);
  const pick = async (fixed: number) => {
    if (fixed) return fixed;
    let p = await freePort(host);
    for (let i = 0; i < 10 && taken.has(p); i++) p = await freePort(host);
    taken.add(p);
    return p;
  };
  const redisPort = await pick(opts.redisPort);
  const replicaPort = await pick(opts.replicaPort);
  const deadline = Date.now() + opts.startTimeoutMs;

  // No persistence: a demo cluster starts empty, like a Redis that lost its data.
  const redisArgs = (port: number) => ["redis-server", "--port", String(port), "--bind", host, "--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"];
  const primary = cluster.start("redis-primary", "redis", redisArgs(redisPort));
  await waitFor("PING", deadline, primary, async () => (await redisCommand(host, redisPort, "PING")) === "+PONG");
  const replica = cluster.start("redis-replica", "redis", [...redisArgs(replicaPort), "--replicaof", host, String(redisPort)]);
  await waitFor("replication link", deadline, replica, async () => (await redisCommand(host, replicaPort, "INFO replication"))?.includes("master_link_status:up") ?? false);

  const redisUrl = `redis://${urlHost(host)}:${redisPort}`;
  const replicaUrl = `redis://${urlHost(host)}:${replicaPort}`;
  const jwtSecret = env.WSGATE_JWT_SECRET || randomToken();
  const adminToken = env.WSGATE_ADMIN_TOKEN || randomToken(24);

  const gateways = specs.map((spec) => ({
    spec,
    child: cluster.start(spec.id, "gateway", ["bun", "src/index.ts"], gatewayEnv(spec, env, { host, redisUrl, replicaUrl, jwtSecret, adminToken, drainMs: opts.drainMs })),
  }));
  await Promise.all(
    gateways.map(({ spec, child }) =>
      waitFor("/ready", deadline, child, async () => {
        try {
          const r = await fetch(`http://${urlHost(host)}:${spec.port}/ready`, { signal: AbortSignal.timeout(1000) });
          return r.status === 200;
        } catch {
          return false;
        }
      }),
    ),
  );

  const tokens: Record<string, string> = {};
  for (const u of DEMO_USERS) tokens[u] = await mintDevToken(jwtSecret, u);
  return {
    pid: process.pid,
    redis: {
      primary: { url: redisUrl, port: redisPort, pid: primary.proc.pid },
      replica: { url: replicaUrl, port: replicaPort, pid: replica.proc.pid },
    },
    gateways: gateways.map(({ spec, child }) => ({
      ...spec,
      http: `http://${urlHost(host)}:${spec.port}`,
      ws: `ws://${urlHost(host)}:${spec.port}/ws`,
      pid: child.proc.pid,
    })),
    adminToken,
    jwtSecret,
    tokens,
  };
}

export function banner(info: ClusterInfo, env: Record<string, string | undefined>): string {
  const g = info.gateways;
  const lines = [
    "",
    "wsgate cluster is up: Redis primary + replica, three gateways",
    "",
    `  redis primary  ${info.redis.primary.url}  (pid ${info.redis.primary.pid})`,
    `  redis replica  ${info.redis.replica.url}  (pid ${info.redis.replica.pid}, replica of the primary)`,
    "",
    "  gateway  region  reads from  http / ws",
    ...g.map((x) => `  ${x.id.padEnd(7)}  ${x.region.padEnd(6)}  ${x.readsFrom.padEnd(10)}  ${x.http}  ${x.ws}  (pid ${x.pid})`),
    "",
    `  admin token  ${info.adminToken}${env.WSGATE_ADMIN_TOKEN ? "  (from WSGATE_ADMIN_TOKEN)" : ""}`,
    `    curl -H "authorization: Bearer ${info.adminToken}" ${g[0]!.http}/v1/gateways`,
    `  JWT secret   ${env.WSGATE_JWT_SECRET ? "(from WSGATE_JWT_SECRET)" : info.jwtSecret}`,
    "",
    `  dev tokens (rooms ["*"], valid ${TOKEN_TTL_S / 3600} h); each user on a different region:`,
    ...DEMO_USERS.map((u, i) => `    ${u.padEnd(5)}  ${info.tokens[u]}\n           ${g[i % g.length]!.ws}?token=${info.tokens[u]}`),
    "",
    "Ctrl-C stops everything.",
    "",
  ];
  return lines.join("\n");
}

async function main(): Promise<void> {
  const env = process.env as Record<string, string | undefined>;
  let opts: ClusterOptions;
  try {
    opts = parseArgs(process.argv.slice(2), env);
  } catch (e) {
    console.error(`cluster: ${(e as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (opts.help) {
    console.log(USAGE);
    return;
  }
  const emit = (e: Record<string, unknown>) => { if (opts.json) process.stdout.write(`${JSON.stringify(e)}\n`); };
  // Logs go to stderr so --json leaves stdout to the events.
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const cluster = new Cluster(opts, emit, log);

  let signals = 0;
  let firstSignalAt = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    // `bun run cluster` forwards the terminal's SIGINT while the terminal also sends it to this
    // process group: two copies of one Ctrl-C arrive within milliseconds. Only a later one means "again".
    if (signals > 0 && Date.now() - firstSignalAt < 1000) return;
    if (signals === 0) firstSignalAt = Date.now();
    if (++signals > 1) {
      log(`[cluster] ${sig} again: killing everything now`);
      cluster.killAll();
      process.exit(130);
    }
    log(`[cluster] ${sig}: stopping gateways (drain ${opts.drainMs} ms), then Redis`);
    void cluster.stop().then(() => {
      emit({ event: "stopped" });
      process.exit(0);
    });
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, onSignal);
  // If this script dies of an exception, take the children with it rather than orphan them.
  process.on("exit", () => cluster.killAll());

  try {
    const info = await startCluster(cluster, opts, env);
    if (signals > 0) return; // stopped while starting; the signal handler finishes the job
    emit({ event: "ready", ...info });
    if (!opts.json) console.log(banner(info, env));
  } catch (e) {
    if (signals > 0) return;
    const usage = e instanceof UsageError;
    log(`cluster: ${(e as Error).message}`);
    await cluster.stop();
    emit({ event: "stopped", error: (e as Error).message });
    process.exit(usage ? 2 : 1);
  }
}

if (import.meta.main) await main();
