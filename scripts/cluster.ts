// `bun run cluster`: the production topology on one machine, with distance. The first region holds
// the Redis primary; every other region has a replica fed from the primary and reaches the primary
// through a delay proxy (half the pair's round trip each way), like Fly.io regions around an Upstash
// primary. Optional front door (Fly's proxy: nearest ready region), dev tokens for demo users, a
// control line on stdin (partition/heal a region, change a round trip), and everything stopped by pid
// on Ctrl-C or SIGTERM.
import { spawn, type Subprocess } from "bun";
import Redis from "ioredis";
import { startDelayProxy, type DelayProxy, type PartitionMode } from "../harness/delay-proxy.ts";
import { startFrontDoor, type FrontDoor } from "../harness/front-door.ts";
import { readLines } from "../harness/lines.ts";
import { freePort } from "../harness/ports.ts";
import { DEFAULT_REGIONS, parseRegions, parseRtt, planRegions, RegionArgError, RttTable, type GatewaySpec, type RegionPlan } from "../harness/regions.ts";
import { mintDevToken, randomToken } from "../harness/tokens.ts";
import { ALL_TOPOLOGIES, startTopology, type RedisSetup, type TopologyKind } from "../harness/topologies.ts";

export { readLines, mintDevToken };
export type { GatewaySpec };

const ROOT = new URL("..", import.meta.url).pathname;

export const DEMO_USERS = ["alice", "bob", "carol"] as const;
const TOKEN_TTL_S = 12 * 3600;

export class UsageError extends Error {}

export interface ClusterOptions {
  regions: string[];
  rtt: RttTable;
  perRegion: number;
  /** Gateway ports, region by region (perRegion each). */
  ports: number[];
  redisPort: number; // 0 = pick a free port
  /** single: the regional primary + replicas below; cluster / sentinel: a harness topology on loopback. */
  redis: TopologyKind;
  replicaPort: number; // first replica's port, the next ones follow; 0 = pick free ports
  front: number | null;
  host: string;
  drainMs: number;
  startTimeoutMs: number;
  json: boolean;
  quiet: boolean;
  help: boolean;
}

export const USAGE = `Usage: bun run cluster [options]

Starts redis-server (from PATH): a primary in the first region and a replica in each other region,
and gateways in every region. Each non-primary region reaches the primary through a delay proxy
(half the pair's round trip each way); its gateways read and subscribe on their region's replica.

  --regions A,B,C    regions, the first holds the Redis primary (default ord,ams,sin)
  --rtt a-b=MS,...   round trip per region pair, every pair (default 0 everywhere)
  --per-region N     gateways per region, 1-4 (default 1)
  --front PORT       a front door on PORT: a new WebSocket goes to a ready gateway in ?region=,
                     else the nearest ready region by round trip (also proxies HTTP)
  --base-port N      gateway ports N, N+1, ... (default 8081)
  --ports A,B,...    explicit gateway ports, region by region (overrides --base-port)
  --redis KIND       single (default: primary + a replica per region, as above), cluster (a 6-node
                     Redis Cluster, 3 primaries + 3 replicas) or sentinel (primary, replica, 3 Sentinels);
                     cluster and sentinel run on 127.0.0.1 with free ports and no per-region links
  --redis-port N     Redis primary port (default: a free port)
  --replica-port N   first replica's port, the next replicas take N+1, ... (default: free ports)
  --host H           listen address for everything (default 127.0.0.1)
  --drain-ms N       gateway drain on shutdown (default WSGATE_DRAIN_MS or 2000)
  --timeout-ms N     how long start-up may take (default 30000)
  --json             print one JSON event per line on stdout (spawn, ready, exit, control, stopped)
  --quiet            do not forward gateway and Redis logs
  -h, --help         this text

While running, stdin takes one command per line:
  partition REGION [stall|reset]   cut REGION from the primary (default stall: bytes held)
  heal REGION                      restore the link (held bytes flow again)
  rtt A-B=MS                       change a round trip (A or B must be the primary's region)

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
    regions: [...DEFAULT_REGIONS],
    rtt: new RttTable([...DEFAULT_REGIONS]),
    perRegion: 1,
    ports: [],
    redisPort: 0,
    redis: "single",
    replicaPort: 0,
    front: null,
    host: "127.0.0.1",
    drainMs: envDrain && /^\d+$/.test(envDrain) ? Number(envDrain) : 2000,
    startTimeoutMs: 30_000,
    json: false,
    quiet: false,
    help: false,
  };
  let basePort = 8081;
  let explicitPorts: number[] | null = null;
  let rttArg: string | null = null;
  try {
    for (let i = 0; i < argv.length; i++) {
      const raw = argv[i]!;
      // Accept both "--flag value" and "--flag=value".
      const eq = raw.startsWith("--") ? raw.indexOf("=") : -1;
      const flag = eq > 0 ? raw.slice(0, eq) : raw;
      const value = () => (eq > 0 ? raw.slice(eq + 1) : argv[++i]);
      switch (flag) {
        case "--regions": opts.regions = parseRegions(value() ?? ""); break;
        case "--rtt": rttArg = value() ?? ""; break;
        case "--per-region": {
          const v = value();
          if (!v || !/^[1-4]$/.test(v)) throw new UsageError("--per-region needs a number from 1 to 4");
          opts.perRegion = Number(v);
          break;
        }
        case "--front": opts.front = portArg(flag, value()); break;
        case "--base-port": basePort = portArg(flag, value()); break;
        case "--ports": {
          const ps = (value() ?? "").split(",").map((p) => portArg("--ports", p.trim()));
          if (new Set(ps).size !== ps.length) throw new UsageError("--ports must all be different");
          explicitPorts = ps;
          break;
        }
        case "--redis-port": opts.redisPort = portArg(flag, value(), true); break;
        case "--redis": {
          const k = value() as TopologyKind;
          if (!ALL_TOPOLOGIES.includes(k)) throw new UsageError(`--redis must be one of ${ALL_TOPOLOGIES.join(", ")}`);
          opts.redis = k;
          break;
        }
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
    opts.rtt = rttArg === null ? new RttTable(opts.regions) : parseRtt(rttArg, opts.regions);
  } catch (e) {
    if (e instanceof RegionArgError) throw new UsageError(e.message);
    throw e;
  }
  const n = opts.regions.length * opts.perRegion;
  if (explicitPorts) {
    if (explicitPorts.length !== n) throw new UsageError(`--ports needs ${n} ports (${opts.regions.length} regions × ${opts.perRegion})`);
    opts.ports = explicitPorts;
  } else {
    if (basePort + n - 1 > 65535) throw new UsageError(`--base-port: ${basePort} leaves no room for ${n} ports`);
    opts.ports = Array.from({ length: n }, (_, i) => basePort + i);
  }
  const replicaPorts = opts.replicaPort ? opts.regions.slice(1).map((_, i) => opts.replicaPort + i) : [];
  if (replicaPorts.some((p) => p > 65535)) throw new UsageError(`--replica-port: ${opts.replicaPort} leaves no room for ${replicaPorts.length} replicas`);
  const fixed = [...opts.ports, opts.redisPort, ...replicaPorts, opts.front ?? 0].filter((p) => p !== 0);
  if (new Set(fixed).size !== fixed.length) throw new UsageError("gateway, front door and Redis ports must all differ");
  return opts;
}

export function planGateways(opts: Pick<ClusterOptions, "ports"> & Partial<Pick<ClusterOptions, "regions" | "rtt" | "perRegion">>): GatewaySpec[] {
  const regions = opts.regions ?? [...DEFAULT_REGIONS];
  return planRegions(regions, opts.rtt ?? new RttTable(regions), opts.ports, opts.perRegion ?? 1).gateways;
}

/** URLs need IPv6 literals in brackets. */
export function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** Environment for one gateway: the caller's WSGATE_* tuning, minus anything that would clash. */
export function gatewayEnv(
  spec: GatewaySpec,
  base: Record<string, string | undefined>,
  c: { host: string; redisUrl?: string; replicaUrl?: string; redisEnv?: Record<string, string>; jwtSecret: string; adminToken: string; drainMs: number },
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    // FLY_* would make a local gateway believe it runs on Fly (identity, fly-replay); a shared
    // metrics port would make all but one fail to start.
    if (v === undefined || k.startsWith("FLY_") || k === "WSGATE_METRICS_PORT") continue;
    env[k] = v;
  }
  Object.assign(env, {
    PORT: String(spec.port),
    HOST: c.host,
    WSGATE_REGION: spec.region,
    WSGATE_GATEWAY_ID: spec.id,
    WSGATE_JWT_SECRET: c.jwtSecret,
    WSGATE_ADMIN_TOKEN: c.adminToken,
    WSGATE_DRAIN_MS: String(c.drainMs),
  });
  for (const k of ["REDIS_URL", "REDIS_CLUSTER_URLS", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER"]) delete env[k];
  if (c.redisEnv) Object.assign(env, c.redisEnv);
  else if (c.redisUrl) env.REDIS_URL = c.redisUrl;
  if (spec.readsFrom === "replica" && c.replicaUrl && !c.redisEnv) env.REDIS_REPLICA_URL = c.replicaUrl;
  else delete env.REDIS_REPLICA_URL;
  return env;
}

function assertPortFree(host: string, port: number): void {
  try {
    Bun.listen({ hostname: host, port, socket: { data() {} } }).stop(true);
  } catch {
    throw new UsageError(`port ${port} on ${host} is in use (pick others with --base-port / --ports)`);
  }
}

/** One command through a short-lived ioredis connection; null when Redis does not answer (yet). */
async function redisAsk(url: string, ask: (r: Redis) => Promise<string>): Promise<string | null> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  r.on("error", () => {});
  try {
    await r.connect();
    return await ask(r);
  } catch {
    return null;
  } finally {
    r.disconnect();
  }
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
  /** Region → its link to the primary (in this process: the proxies live as long as the script). */
  readonly links = new Map<string, DelayProxy>();
  front: FrontDoor | null = null;
  /** A harness topology (--redis cluster|sentinel), stopped after the gateways. */
  topology: RedisSetup | null = null;
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

  /**
   * The front door first (no new clients), then gateways (their drain removes presence from Redis,
   * so the links stay up meanwhile), then the links, then the replicas, then the primary.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.front?.close();
      const gateways = this.children.filter((c) => c.kind === "gateway");
      // A cut region cannot finish its drain against Redis: give it its link back first.
      for (const l of this.links.values()) l.heal();
      await this.stopGroup(gateways, this.opts.drainMs + 5000);
      for (const l of this.links.values()) l.close();
      const redis = this.children.filter((c) => c.kind === "redis").reverse();
      for (const r of redis) await this.stopGroup([r], 3000);
      await this.topology?.stop();
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
    this.front?.close();
    for (const l of this.links.values()) l.close();
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

export interface RedisNodeInfo { region: string; url: string; port: number; pid: number }

/** Where each region's gateways find Redis: the primary (through the region's link) and a replica. */
export interface RedisTopology {
  primary: RedisNodeInfo;
  replicas: RedisNodeInfo[];
  urlsFor(region: string): { redisUrl: string; replicaUrl?: string };
}

export interface ClusterInfo {
  pid: number;
  regions: string[];
  primaryRegion: string;
  rtt: Record<string, number>;
  redis: Omit<RedisTopology, "urlsFor">;
  redisKind: TopologyKind;
  links: { region: string; port: number; upMs: number; downMs: number }[];
  gateways: (GatewaySpec & { http: string; ws: string; pid: number })[];
  front: { http: string; ws: string; port: number } | null;
  adminToken: string;
  jwtSecret: string;
  tokens: Record<string, string>;
}

type PortPicker = (fixed: number) => Promise<number>;

const redisArgs = (host: string, port: number) =>
  // No persistence: a demo cluster starts empty, like a Redis that lost its data. No diskless-sync
  // delay: replicas are ready in milliseconds, not after Redis's default 5 s wait for more replicas.
  ["redis-server", "--port", String(port), "--bind", host, "--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning", "--repl-diskless-sync-delay", "0"];

/**
 * A primary in the plan's first region; every other region gets a link (delay proxy, half the round
 * trip each way) to the primary, and a replica that replicates through that link.
 */
export async function startRegionRedis(cluster: Cluster, plan: RegionPlan, host: string, pick: PortPicker, fixed: { redisPort: number; replicaPort: number }, deadline: number): Promise<RedisTopology> {
  const url = (port: number) => `redis://${urlHost(host)}:${port}`;
  const primaryPort = await pick(fixed.redisPort);
  const primary = cluster.start("redis-primary", "redis", redisArgs(host, primaryPort));
  await waitFor("PING", deadline, primary, async () => (await redisAsk(url(primaryPort), (r) => r.ping())) === "PONG");
  const replicas: RedisNodeInfo[] = [];
  const links = new Map<string, string>();
  for (const [i, region] of plan.replicaRegions.entries()) {
    const oneWay = plan.rtt.oneWay(region, plan.primaryRegion);
    const link = startDelayProxy({ host, target: { host, port: primaryPort }, upMs: oneWay, downMs: oneWay });
    cluster.links.set(region, link);
    links.set(region, url(link.port));
    const port = await pick(fixed.replicaPort ? fixed.replicaPort + i : 0);
    const child = cluster.start(`redis-replica-${region}`, "redis", [...redisArgs(host, port), "--replicaof", host, String(link.port)]);
    replicas.push({ region, url: url(port), port, pid: child.proc.pid });
  }
  await Promise.all(
    replicas.map((r) =>
      waitFor("replication link", deadline, cluster.children.find((c) => c.proc.pid === r.pid)!, async () =>
        (await redisAsk(r.url, (c) => c.info("replication")))?.includes("master_link_status:up") ?? false),
    ),
  );
  return {
    primary: { region: plan.primaryRegion, url: url(primaryPort), port: primaryPort, pid: primary.proc.pid },
    replicas,
    urlsFor: (region) => ({
      redisUrl: links.get(region) ?? url(primaryPort),
      replicaUrl: replicas.find((r) => r.region === region)?.url,
    }),
  };
}

/** Starts every planned gateway and resolves once each answers /ready. */
export async function startGateways(
  cluster: Cluster,
  plan: RegionPlan,
  redis: { urlsFor(region: string): { redisUrl?: string; replicaUrl?: string; redisEnv?: Record<string, string> } },
  env: Record<string, string | undefined>,
  c: { host: string; jwtSecret: string; adminToken: string; drainMs: number },
  deadline: number,
): Promise<(GatewaySpec & { http: string; ws: string; pid: number })[]> {
  const started = plan.gateways.map((spec) => ({
    spec,
    child: cluster.start(spec.id, "gateway", ["bun", "src/index.ts"], gatewayEnv(spec, env, { ...c, ...redis.urlsFor(spec.region) })),
  }));
  await Promise.all(
    started.map(({ spec, child }) =>
      waitFor("/ready", deadline, child, async () => {
        try {
          const r = await fetch(`http://${urlHost(c.host)}:${spec.port}/ready`, { signal: AbortSignal.timeout(1000) });
          return r.status === 200;
        } catch {
          return false;
        }
      }),
    ),
  );
  return started.map(({ spec, child }) => ({
    ...spec,
    http: `http://${urlHost(c.host)}:${spec.port}`,
    ws: `ws://${urlHost(c.host)}:${spec.port}/ws`,
    pid: child.proc.pid,
  }));
}

/** --redis cluster|sentinel: the harness's topology, every region's gateways pointed at it (no links). */
async function startHarnessRedis(cluster: Cluster, kind: TopologyKind, plan: RegionPlan): Promise<Omit<RedisTopology, "urlsFor"> & { urlsFor(region: string): { redisEnv: Record<string, string> } }> {
  const setup = await startTopology(kind);
  cluster.topology = setup;
  const nodes = setup.cluster?.nodes ?? setup.sentinel?.servers ?? [];
  const primaries = new Set((await setup.primaries()).map((n) => n.port));
  const info = (n: { url: string; port: number; pid(): number }, role: string) => ({ region: role, url: n.url, port: n.port, pid: n.pid() });
  return {
    primary: info(nodes.find((n) => primaries.has(n.port))!, `${kind} primary`),
    replicas: [
      ...nodes.filter((n) => !primaries.has(n.port)).map((n) => info(n, `${kind} replica`)),
      ...nodes.filter((n) => primaries.has(n.port)).slice(1).map((n) => info(n, `${kind} primary`)),
      ...(setup.sentinel?.sentinels ?? []).map((n) => info(n, "sentinel")),
    ],
    urlsFor: () => ({ redisEnv: setup.env }),
  };
}

export async function startCluster(cluster: Cluster, opts: ClusterOptions, env: Record<string, string | undefined>): Promise<ClusterInfo> {
  const { host } = opts;
  const plan = planRegions(opts.regions, opts.rtt, opts.ports, opts.perRegion);
  const replicaPorts = opts.replicaPort ? plan.replicaRegions.map((_, i) => opts.replicaPort + i) : [];
  const fixedPorts = [...opts.ports, opts.redisPort, ...replicaPorts, opts.front ?? 0].filter((p) => p !== 0);
  for (const p of fixedPorts) assertPortFree(host, p);
  // A free port is only free until someone binds it: keep the picks apart from the fixed ports.
  const taken = new Set<number>(fixedPorts);
  const pick: PortPicker = async (fixed) => {
    if (fixed) return fixed;
    let p = await freePort(host);
    for (let i = 0; i < 10 && taken.has(p); i++) p = await freePort(host);
    taken.add(p);
    return p;
  };
  const deadline = Date.now() + opts.startTimeoutMs;
  const redis = opts.redis === "single" ? await startRegionRedis(cluster, plan, host, pick, opts, deadline) : await startHarnessRedis(cluster, opts.redis, plan);
  const jwtSecret = env.WSGATE_JWT_SECRET || randomToken();
  const adminToken = env.WSGATE_ADMIN_TOKEN || randomToken(24);
  const gateways = await startGateways(cluster, plan, redis, env, { host, jwtSecret, adminToken, drainMs: opts.drainMs }, deadline);
  if (opts.front !== null) {
    cluster.front = await startFrontDoor({ host, port: opts.front, rtt: plan.rtt, gateways: gateways.map((g) => ({ id: g.id, region: g.region, http: g.http })) });
  }

  const tokens: Record<string, string> = {};
  for (const u of DEMO_USERS) tokens[u] = await mintDevToken(jwtSecret, u, TOKEN_TTL_S);
  const { urlsFor: _, ...redisInfo } = redis;
  return {
    pid: process.pid,
    regions: plan.regions,
    primaryRegion: plan.primaryRegion,
    rtt: plan.rtt.toJSON(),
    redis: redisInfo,
    redisKind: opts.redis,
    links: [...cluster.links].map(([region, l]) => ({ region, port: l.port, upMs: l.settings().upMs, downMs: l.settings().downMs })),
    gateways,
    front: cluster.front ? { http: `http://${urlHost(host)}:${cluster.front.port}`, ws: `ws://${urlHost(host)}:${cluster.front.port}/ws`, port: cluster.front.port } : null,
    adminToken,
    jwtSecret,
    tokens,
  };
}

/** One stdin control line; returns the event to emit, or throws a UsageError. */
export function control(cluster: Cluster, primaryRegion: string, line: string): Record<string, unknown> {
  const words = line.trim().split(/\s+/);
  const link = (region: string | undefined) => {
    const l = region ? cluster.links.get(region) : undefined;
    if (!l) throw new UsageError(`${region ?? "(none)"} has no link to the primary (regions with one: ${[...cluster.links.keys()].join(", ") || "none"})`);
    return l;
  };
  if (words[0] === "partition") {
    const mode = (words[2] ?? "stall") as PartitionMode;
    if (mode !== "stall" && mode !== "reset") throw new UsageError("partition REGION [stall|reset]");
    link(words[1]).partition(mode);
    return { event: "control", action: "partition", region: words[1], mode, at: Date.now() };
  }
  if (words[0] === "heal") {
    link(words[1]).heal();
    return { event: "control", action: "heal", region: words[1], at: Date.now() };
  }
  const m = words[0] === "rtt" ? /^([a-z0-9]+)-([a-z0-9]+)=(\d+(?:\.\d+)?)$/.exec(words[1] ?? "") : null;
  if (m) {
    const region = m[1] === primaryRegion ? m[2] : m[2] === primaryRegion ? m[1] : undefined;
    if (!region) throw new UsageError(`rtt: one side must be the primary's region ${primaryRegion}`);
    const oneWay = Number(m[3]) / 2;
    link(region).set({ upMs: oneWay, downMs: oneWay });
    return { event: "control", action: "rtt", region, upMs: oneWay, downMs: oneWay, at: Date.now() };
  }
  throw new UsageError(`unknown command "${line.trim()}" (partition REGION [stall|reset] | heal REGION | rtt A-B=MS)`);
}

export function banner(info: ClusterInfo, env: Record<string, string | undefined>): string {
  const g = info.gateways;
  const lines = [
    "",
    `wsgate cluster is up: regions ${info.regions.join(", ")}, Redis primary in ${info.primaryRegion}`,
    "",
    ...(info.redisKind !== "single"
      ? [info.redis.primary, ...info.redis.replicas].map((r) => `  redis  ${r.url}  (${r.region}, pid ${r.pid})`)
      : [
          `  redis primary  ${info.redis.primary.url}  (${info.primaryRegion}, pid ${info.redis.primary.pid})`,
          ...info.redis.replicas.map((r) => `  redis replica  ${r.url}  (${r.region}, pid ${r.pid}, fed through its link)`),
        ]),
    ...info.links.map((l) => `  link ${l.region}→primary  port ${l.port}, ${l.upMs} ms each way`),
    "",
    "  gateway  region  reads from  to primary  http / ws",
    ...g.map((x) => `  ${x.id.padEnd(7)}  ${x.region.padEnd(6)}  ${(info.redisKind === "single" ? x.readsFrom : info.redisKind).padEnd(10)}  ${`${x.delays.toPrimaryMs} ms`.padEnd(10)}  ${x.http}  ${x.ws}  (pid ${x.pid})`),
    ...(info.front ? ["", `  front door  ${info.front.http}  ${info.front.ws}?region=<region>  (nearest ready region)`, `  demo        ${info.front.http}/demo?region=${info.regions.at(-1)}  (dev mode only: WSGATE_AUTH=none bun run cluster --front …)`] : []),
    "",
    `  admin token  ${info.adminToken}${env.WSGATE_ADMIN_TOKEN ? "  (from WSGATE_ADMIN_TOKEN)" : ""}`,
    `    curl -H "authorization: Bearer ${info.adminToken}" ${g[0]!.http}/v1/gateways`,
    `  JWT secret   ${env.WSGATE_JWT_SECRET ? "(from WSGATE_JWT_SECRET)" : info.jwtSecret}`,
    "",
    `  dev tokens (rooms ["*"], valid ${TOKEN_TTL_S / 3600} h); each user on a different region:`,
    ...DEMO_USERS.map((u, i) => `    ${u.padEnd(5)}  ${info.tokens[u]}\n           ${g[(i * info.gateways.length / info.regions.length) % g.length]!.ws}?token=${info.tokens[u]}`),
    "",
    "stdin: partition REGION [stall|reset] | heal REGION | rtt A-B=MS.  Ctrl-C stops everything.",
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
    void (async () => {
      for await (const line of console) {
        if (!line.trim()) continue;
        try {
          const e = control(cluster, info.primaryRegion, line);
          emit(e);
          log(`[cluster] ${line.trim()}: done`);
        } catch (err) {
          emit({ event: "control", error: (err as Error).message });
          log(`[cluster] ${(err as Error).message}`);
        }
      }
    })();
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
