// A system under test: N gateways (wsgate) or N floor relays sharing one Redis, plus what the
// scenarios need to know about it (URLs spread over loopback addresses, auth, pids to meter).
import Redis from "ioredis";
import { startRedis, type RedisServer } from "../../harness/redis.ts";
import { freePort } from "../../harness/ports.ts";
import type { Compare } from "./compare.ts";
import { startService, type Service } from "./procs.ts";

export type Kind = "wsgate" | "floor";
export const SECRET = "bench-secret-that-is-long-enough-for-hs256";
export const ADMIN = "bench-admin-token";

export interface Options {
  host: string; // listen address of gateways/relays
  spread: number; // how many loopback addresses clients spread over (needs host 0.0.0.0)
  cpuProf: string | null; // directory for wsgate --cpu-prof output, or null
  gatewayEnv: Record<string, string>; // --env: extra wsgate settings for every scenario (a scenario's own win)
  /** --compare: the floor kind runs wsgate from this earlier checkout instead of the raw relay. */
  compare: Compare | null;
  /** --compare OLD..NEW: the wsgate kind runs this checkout instead of the current one. */
  subject: Compare | null;
  /** Kill-everything hooks for an interrupted run; a started Target adds one and removes it on stop. */
  reap: Set<() => void>;
}

export class Target {
  private constructor(
    readonly kind: Kind,
    readonly redis: RedisServer,
    readonly services: Service[],
    readonly info: Redis,
    private readonly opts: Options,
  ) {}

  static async start(kind: Kind, instances: number, opts: Options, env: Record<string, string> = {}): Promise<Target> {
    const redis = await startRedis();
    const services: Service[] = [];
    try {
      for (let i = 0; i < instances; i++) {
        const port = await freePort();
        const id = `${kind === "wsgate" ? "gw" : "relay"}-${String.fromCharCode(97 + i)}`;
        services.push(await startService(kind === "wsgate" ? gatewaySpec(id, port, redis.url, opts, env, opts.subject?.dir) : floorSpec(id, port, redis.url, opts, env)));
      }
    } catch (e) {
      await Promise.all(services.map((s) => s.stop("SIGKILL")));
      await redis.stop();
      throw e;
    }
    const info = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 2 });
    const t = new Target(kind, redis, services, info, opts);
    opts.reap.add(t.kill);
    return t;
  }

  /** Client URLs for instance i, one per loopback address, so no address/port pair runs out of ports. */
  urls(i: number): string[] {
    const port = this.services[i]!.port;
    if (this.opts.host !== "0.0.0.0") return [`ws://${this.opts.host === "::" ? "[::1]" : this.opts.host}:${port}/ws`];
    return Array.from({ length: this.opts.spread }, (_, k) => `ws://127.0.0.${k + 2}:${port}/ws`);
  }

  /** Whether this target speaks wsgate's auth (wsgate, or the floor slot when it holds an earlier wsgate). */
  get isGateway(): boolean { return this.kind === "wsgate" || this.opts.compare !== null; }

  get auth(): { secret: string; rooms?: string[] } | null { return this.isGateway ? { secret: SECRET } : null; }

  /** Processes whose CPU counts as "the system": every instance and Redis, never the load generators. */
  pids(): number[] { return [...this.services.map((s) => s.pid), this.redis.pid()]; }

  /** Redis calls per command name (INFO commandstats), minus the INFO calls this harness makes. */
  async commandstats(): Promise<Record<string, number>> {
    const text = await this.info.info("commandstats");
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (m[1] !== "info") out[m[1]!] = Number(m[2]);
    return out;
  }

  /** Redis's own time per command name (INFO commandstats usec), to split Redis CPU by command. */
  async commandUsec(): Promise<Record<string, { calls: number; usec: number }>> {
    const text = await this.info.info("commandstats");
    const out: Record<string, { calls: number; usec: number }> = {};
    for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) if (m[1] !== "info") out[m[1]!] = { calls: Number(m[2]), usec: Number(m[3]) };
    return out;
  }

  async redisMemory(): Promise<number> {
    const text = await this.info.info("memory");
    return Number(/^used_memory:(\d+)/m.exec(text)?.[1] ?? NaN);
  }

  /** Fails loudly if an instance died mid-run instead of reporting numbers from a dead system. */
  assertAlive(): void {
    for (const s of this.services) {
      if (s.proc.exitCode !== null || s.proc.signalCode !== null) throw new Error(`${s.name} died (${s.proc.exitCode ?? s.proc.signalCode}):\n${s.output().slice(-3000)}`);
    }
  }

  /** Last resort on an interrupted run: SIGKILL by pid, no waiting. */
  readonly kill = (): void => {
    for (const s of this.services) try { s.proc.kill("SIGKILL"); } catch {}
    void this.redis.stop("SIGKILL");
  };

  async stop(): Promise<void> {
    this.opts.reap.delete(this.kill);
    this.info.disconnect();
    await Promise.all(this.services.map((s) => s.stop("SIGTERM")));
    await this.redis.stop();
  }
}

function gatewaySpec(id: string, port: number, redisUrl: string, opts: Options, extra: Record<string, string>, cwd?: string) {
  const prof = opts.cpuProf ? ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${opts.cpuProf}`] : [];
  return {
    name: id,
    port,
    cwd,
    cmd: ["bun", ...prof, "src/index.ts"],
    env: {
      PORT: String(port),
      HOST: opts.host,
      REDIS_URL: redisUrl,
      WSGATE_GATEWAY_ID: id,
      WSGATE_JWT_SECRET: SECRET,
      WSGATE_ADMIN_TOKEN: ADMIN,
      LOG_LEVEL: "warn",
      // The load is many frames/s on few connections; the per-connection limit must not shape it.
      WSGATE_RATE: "1000000",
      // Stopping a gateway between scenarios should not take the default 10 s (and --cpu-prof
      // writes its profile only on a clean exit).
      WSGATE_DRAIN_MS: "1000",
      ...opts.gatewayEnv,
      ...extra,
    },
    readyPath: "/ready",
  };
}

/** `extra` is the relay's own settings (RELAY_STORE=1 makes it the plain-XADD floor); --env is wsgate's only. */
function floorSpec(id: string, port: number, redisUrl: string, opts: Options, extra: Record<string, string>) {
  if (opts.compare) return gatewaySpec(`${id}-${opts.compare.rev}`, port, redisUrl, opts, extra, opts.compare.dir);
  return {
    name: id,
    port,
    cmd: ["bun", ...(opts.cpuProf ? ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${opts.cpuProf}`] : []), "bench/baseline/relay.ts"],
    env: { PORT: String(port), HOST: opts.host, REDIS_URL: redisUrl, RELAY_ID: id, ...extra },
    readyPath: "/ready",
  };
}
