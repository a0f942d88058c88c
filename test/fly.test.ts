// fly.toml, the Dockerfile and src/config.ts describe the same process from three sides; these
// checks make them fail together instead of drifting apart (no Fly account or Docker daemon needed).
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import fly from "../fly.toml";
import pkg from "../package.json";
import { ConfigError, loadConfig, type Config } from "../src/config.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const FD_CAP = 20_000; // open files per process on the benchmark machine
const CONNS_PER_PROCESS = 19_900; // benchmark target per process

/** What `fly secrets set` provides in production (fake values; a 6PN IPv6 Redis address). */
const SECRETS = {
  WSGATE_JWT_SECRET: "fly-test-secret-that-is-long-enough-for-hs256",
  WSGATE_ADMIN_TOKEN: "fly-test-admin-token",
  REDIS_URL: "redis://default:pw@[fdaa:0:6d6b:0:1::3]:6379?family=6",
};
/** What Fly sets on every machine. */
const FLY_RUNTIME = { FLY_MACHINE_ID: "3d8d9016b24d89", FLY_REGION: "ams", FLY_APP_NAME: "wsgate", PRIMARY_REGION: "ord" };

/** [env] as the machine sees it: Fly passes every value as a string. */
function flyEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries((fly.env ?? {}) as Record<string, unknown>)) env[k] = String(v);
  return env;
}

function machineConfig(): Config {
  return loadConfig({ ...flyEnv(), ...SECRETS, ...FLY_RUNTIME });
}

/** fly.toml accepts 30 or "30s" for kill_timeout. */
function seconds(v: unknown): number {
  if (typeof v === "number") return v;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(v));
  if (!m) throw new Error(`not a duration: ${v}`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n / 1000 : m[2] === "m" ? n * 60 : n;
}

interface Check { path?: string; port?: number; method?: string; type?: string }
function allChecks(): { where: string; check: Check }[] {
  const out: { where: string; check: Check }[] = [];
  for (const c of (fly.http_service?.checks ?? []) as Check[]) out.push({ where: "http_service.checks", check: c });
  for (const [name, c] of Object.entries((fly.checks ?? {}) as Record<string, Check>)) out.push({ where: `checks.${name}`, check: c });
  return out;
}

describe("fly.toml against the config schema", () => {
  test("the machine environment loads, with identity from FLY_MACHINE_ID and FLY_REGION", () => {
    const cfg = machineConfig();
    expect(cfg.production).toBe(true);
    expect(cfg.gatewayId).toBe(FLY_RUNTIME.FLY_MACHINE_ID);
    expect(cfg.region).toBe(FLY_RUNTIME.FLY_REGION);
    expect(cfg.redisUrl).toBe(SECRETS.REDIS_URL); // IPv6 literal accepted
    expect(cfg.auth).toBe("jwt");
    expect(cfg.flyMachineId).toBe(FLY_RUNTIME.FLY_MACHINE_ID);
  });

  test("secrets and per-machine identity are not in [env]", () => {
    const env = flyEnv();
    for (const k of ["WSGATE_JWT_SECRET", "WSGATE_ADMIN_TOKEN", "REDIS_URL", "REDIS_REPLICA_URL", "WSGATE_GATEWAY_ID", "WSGATE_REGION"])
      expect(env[k]).toBeUndefined();
  });

  test("without the secrets, production refuses to start (so DEPLOY.md's secrets are required)", () => {
    let err: unknown;
    try {
      loadConfig({ ...flyEnv(), ...FLY_RUNTIME });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(["WSGATE_AUTH", "WSGATE_JWT_SECRET", "WSGATE_ADMIN_TOKEN"]).toContain((err as ConfigError).variable);
  });

  test("internal_port is PORT, and HOST is :: so 6PN reaches it", () => {
    const cfg = machineConfig();
    expect(fly.http_service.internal_port).toBe(cfg.port);
    expect(flyEnv().HOST).toBe("::");
    expect(cfg.host).toBe("::");
  });

  test("health on /health, readiness on /ready, both on the service port", () => {
    const cfg = machineConfig();
    const checks = allChecks();
    const paths = checks.map((c) => c.check.path);
    expect(paths).toContain("/health");
    expect(paths).toContain("/ready");
    for (const { where, check } of checks) {
      if (check.port !== undefined) expect({ where, port: check.port }).toEqual({ where, port: cfg.port });
      if (check.method !== undefined) expect(check.method.toUpperCase()).toBe("GET");
    }
    // The routing check must be readiness: a draining machine leaves rotation before it closes.
    expect(((fly.http_service.checks ?? []) as Check[]).map((c) => c.path)).toContain("/ready");
  });

  test("kill_signal is SIGTERM and kill_timeout outlasts the drain delay plus the drain", () => {
    const cfg = machineConfig();
    expect(fly.kill_signal).toBe("SIGTERM");
    const kill = seconds(fly.kill_timeout);
    expect(kill).toBeGreaterThan((cfg.drainDelayMs + cfg.drainMs) / 1000);
    expect(kill).toBeLessThanOrEqual(300); // Fly's maximum
  });

  test("[metrics] scrapes WSGATE_METRICS_PORT, apart from the public port", () => {
    const cfg = machineConfig();
    expect(cfg.metricsPort).toBeDefined();
    expect(fly.metrics.port).toBe(cfg.metricsPort!);
    expect(fly.metrics.path).toBe("/metrics");
    expect(cfg.metricsPort).not.toBe(cfg.port);
  });

  test("the drain delay outlasts the routing check (interval + timeout), so the proxy stops routing before closes start", () => {
    const cfg = machineConfig();
    const routing = ((fly.http_service.checks ?? []) as (Check & { interval?: string; timeout?: string })[]).find((c) => c.path === "/ready")!;
    expect(cfg.drainDelayMs / 1000).toBeGreaterThanOrEqual(seconds(routing.interval) + seconds(routing.timeout));
  });

  test("machines are never auto-stopped, HTTPS is forced, deploys roll", () => {
    expect(fly.http_service.auto_stop_machines).toBe("off");
    expect(fly.http_service.force_https).toBe(true);
    expect(fly.deploy.strategy).toBe("rolling");
    expect(fly.primary_region).toBe("ord");
  });

  test("concurrency counts connections, sized under the per-process targets", () => {
    const c = fly.http_service.concurrency;
    expect(c.type).toBe("connections");
    expect(c.soft_limit).toBeGreaterThan(0);
    expect(c.soft_limit).toBeLessThan(c.hard_limit);
    expect(c.hard_limit).toBeLessThanOrEqual(CONNS_PER_PROCESS);
    expect(c.hard_limit).toBeLessThan(FD_CAP); // descriptors left for Redis, metrics, health checks
  });

  test("connection limits match the machine size (docs/DEPLOY.md §6), and the size has a core for the load", () => {
    // Largest hard_limit per size: what its CPU covers (shared sizes are throttled to 1/16 of a core per
    // vCPU once their burst balance is spent; idle upkeep and reconnect waves scale with connections).
    const MAX_HARD: Record<string, number> = {
      "shared-cpu-1x": 2000,
      "shared-cpu-2x": 4000,
      "shared-cpu-4x": 8000,
      "performance-1x": 19000,
      "performance-2x": 19000, // one Bun process uses one core: the second helps GC and TLS only
    };
    const vm = (fly.vm as { size: string; memory: string }[])[0]!;
    expect(Object.keys(MAX_HARD)).toContain(vm.size);
    expect(fly.http_service.concurrency.hard_limit).toBeLessThanOrEqual(MAX_HARD[vm.size]!);
    const deploy = readFileSync(`${ROOT}docs/DEPLOY.md`, "utf8");
    expect(deploy).toContain(`\`${vm.size}\``); // the chosen size is in the guide's table
    // Memory: the benchmark's ~3 KB per connection plus ~60 MB of runtime, with ample room for buffers.
    const mb = Number(/^(\d+)\s*(gb|mb)$/i.exec(vm.memory)!.slice(1, 2)[0]) * (/gb/i.test(vm.memory) ? 1024 : 1);
    expect(mb).toBeGreaterThanOrEqual(60 + (fly.http_service.concurrency.hard_limit * 3) / 1024 * 4);
  });

  test("no min_machines_running: it only limits auto-stop, which is off", () => {
    expect(fly.http_service.min_machines_running).toBeUndefined();
  });

  test("history outlives the drain, so a drained client resumes everything", () => {
    const cfg = machineConfig();
    expect(cfg.historySize).toBeGreaterThan(0);
    expect(cfg.historyTtlS).toBeGreaterThan(seconds(fly.kill_timeout));
  });
});

// --- Dockerfile: what can be checked without a daemon ---

interface Instr { op: string; args: string }
function dockerfile(): Instr[] {
  const text = readFileSync(`${ROOT}Dockerfile`, "utf8").replace(/\\\r?\n/g, " ");
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const m = /^(\S+)\s*(.*)$/.exec(l)!;
      return { op: m[1]!.toUpperCase(), args: m[2]! };
    });
}

/** Instructions of the last stage (the image that runs). */
function finalStage(all: Instr[]): Instr[] {
  const i = all.map((x) => x.op).lastIndexOf("FROM");
  return all.slice(i);
}

describe("Dockerfile", () => {
  const all = dockerfile();
  const froms = all.filter((i) => i.op === "FROM").map((i) => i.args.split(/\s+/));
  const stageNames = new Set(froms.map((f) => (f[1]?.toUpperCase() === "AS" ? f[2] : undefined)).filter(Boolean));

  test("multi-stage, every base image the official Bun image pinned to package.json's Bun version", () => {
    expect(froms.length).toBeGreaterThanOrEqual(2);
    const bunVersion = (pkg.devDependencies as Record<string, string>)["bun-types"];
    for (const f of froms) {
      const image = f.filter((w) => !w.startsWith("--"))[0]!;
      if (stageNames.has(image)) continue;
      expect(image).not.toMatch(/:latest\b/);
      const m = /^oven\/bun:(\d+\.\d+\.\d+)(-[a-z0-9-]+)?(@sha256:[0-9a-f]{64})?$/.exec(image);
      expect(m).not.toBeNull();
      expect(m![1]).toBe(bunVersion);
    }
  });

  test("production dependencies only, exactly as locked", () => {
    const installs = all.filter((i) => i.op === "RUN" && /\bbun install\b/.test(i.args));
    expect(installs.length).toBeGreaterThan(0);
    for (const i of installs) {
      expect(i.args).toContain("--frozen-lockfile");
      expect(i.args).toContain("--production");
    }
    expect(all.some((i) => i.op === "COPY" && /\bbun\.lock\b/.test(i.args))).toBe(true);
  });

  test("runs as a non-root user", () => {
    const users = finalStage(all).filter((i) => i.op === "USER");
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!.args.split(":")[0]!.trim();
    expect(["root", "0", ""]).not.toContain(user);
  });

  test("CMD is `bun run start`, and the start script's entry file is in the image", () => {
    const cmd = finalStage(all).filter((i) => i.op === "CMD").at(-1);
    expect(cmd).toBeDefined();
    // Exec form: the process gets SIGTERM directly, not through /bin/sh -c.
    const argv = JSON.parse(cmd!.args) as string[];
    expect(argv).toEqual(["bun", "run", "start"]);
    const start = pkg.scripts.start;
    expect(start).toBeDefined();
    const entry = start.split(/\s+/).find((w) => /\.(ts|js)$/.test(w))!;
    expect(existsSync(`${ROOT}${entry}`)).toBe(true);
    const copies = finalStage(all).filter((i) => i.op === "COPY" && !i.args.includes("--from"));
    const copied = copies.flatMap((c) => c.args.split(/\s+/).slice(0, -1));
    expect(copied.some((src) => entry === src || entry.startsWith(`${src.replace(/\/$/, "")}/`))).toBe(true);
    expect(copied).toContain("package.json");
  });

  test("EXPOSE lists fly.toml's service and metrics ports", () => {
    const exposed = finalStage(all).filter((i) => i.op === "EXPOSE").flatMap((i) => i.args.split(/\s+/)).map((p) => Number(p.split("/")[0]));
    expect(exposed).toContain(fly.http_service.internal_port);
    expect(exposed).toContain(fly.metrics.port);
  });

  test(".dockerignore keeps local state out and the sources in", () => {
    const lines = readFileSync(`${ROOT}.dockerignore`, "utf8").split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
    for (const must of ["node_modules", ".git", ".env"]) expect(lines).toContain(must);
    for (const needed of ["src", "package.json", "bun.lock"]) expect(lines).not.toContain(needed);
  });
});
