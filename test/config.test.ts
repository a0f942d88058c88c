// PROTOCOL §1: every variable, its default, the dev-mode rules, and exit 2 with one line naming the variable.
import { describe, expect, test } from "bun:test";
import { hostname } from "node:os";
import { ConfigError, loadConfig } from "../src/config.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const S32 = "s".repeat(32);
const A16 = "a".repeat(16);

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe("defaults", () => {
  test("an empty environment is a dev-mode single node with every documented default", () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.host).toBe("0.0.0.0");
    expect(c.redisUrl).toBeUndefined();
    expect(c.redisReplicaUrl).toBeUndefined();
    expect(c.gatewayId).toBe(`${hostname()}-${process.pid}`);
    expect(c.region).toBe("local");
    expect(c.auth).toBe("none");
    expect(c.adminToken).toBeUndefined();
    expect(c.metricsPort).toBeUndefined();
    expect(c.heartbeatMs).toBe(25000);
    expect(c.presenceTtlMs).toBe(30000);
    expect(c.maxPayload).toBe(65536);
    expect(c.rate).toBe(50);
    expect(c.historySize).toBe(1000);
    expect(c.historyTtlS).toBe(300);
    expect(c.drainMs).toBe(10000);
    expect(c.sessions).toBe("multi");
    expect(c.production).toBe(false);
  });

  test("gateway id and region fall back to FLY_MACHINE_ID and FLY_REGION", () => {
    const c = loadConfig({ FLY_MACHINE_ID: "abc123", FLY_REGION: "ord" });
    expect(c.gatewayId).toBe("abc123");
    expect(c.region).toBe("ord");
  });

  test("explicit WSGATE_GATEWAY_ID and WSGATE_REGION win over Fly's", () => {
    const c = loadConfig({ FLY_MACHINE_ID: "abc123", FLY_REGION: "ord", WSGATE_GATEWAY_ID: "gw-1", WSGATE_REGION: "ams" });
    expect(c.gatewayId).toBe("gw-1");
    expect(c.region).toBe("ams");
  });

  test("every variable is read", () => {
    const c = loadConfig({
      PORT: "9001",
      HOST: "::",
      REDIS_URL: "redis://127.0.0.1:6379",
      REDIS_REPLICA_URL: "redis://127.0.0.1:6380",
      WSGATE_JWT_SECRET: "s3cret",
      WSGATE_JWKS_URL: "http://127.0.0.1:1/jwks.json",
      WSGATE_ADMIN_TOKEN: "adm",
      WSGATE_METRICS_PORT: "9091",
      WSGATE_HEARTBEAT_MS: "1000",
      WSGATE_PRESENCE_TTL_MS: "2000",
      WSGATE_MAX_PAYLOAD: "1024",
      WSGATE_RATE: "7",
      WSGATE_HISTORY_SIZE: "0",
      WSGATE_HISTORY_TTL_S: "5",
      WSGATE_DRAIN_MS: "0",
      WSGATE_SESSIONS: "single",
    });
    expect(c).toMatchObject({
      port: 9001,
      host: "::",
      redisUrl: "redis://127.0.0.1:6379",
      redisReplicaUrl: "redis://127.0.0.1:6380",
      auth: "jwt",
      jwtSecret: "s3cret",
      jwksUrl: "http://127.0.0.1:1/jwks.json",
      adminToken: "adm",
      metricsPort: 9091,
      heartbeatMs: 1000,
      presenceTtlMs: 2000,
      maxPayload: 1024,
      rate: 7,
      historySize: 0,
      historyTtlS: 5,
      drainMs: 0,
      sessions: "single",
    });
  });

  test("an empty string means unset (shells and fly.toml)", () => {
    const c = loadConfig({ PORT: "", WSGATE_JWT_SECRET: "", WSGATE_ADMIN_TOKEN: "" });
    expect(c.port).toBe(8080);
    expect(c.auth).toBe("none");
    expect(c.adminToken).toBeUndefined();
  });
});

describe("auth mode rules", () => {
  test("jwt by default when a secret is set", () => {
    expect(loadConfig({ WSGATE_JWT_SECRET: "x" }).auth).toBe("jwt");
  });
  test("jwt by default when a JWKS URL is set", () => {
    expect(loadConfig({ WSGATE_JWKS_URL: "https://example.invalid/.well-known/jwks.json" }).auth).toBe("jwt");
  });
  test("WSGATE_AUTH=none wins over a secret", () => {
    expect(loadConfig({ WSGATE_JWT_SECRET: "x", WSGATE_AUTH: "none" }).auth).toBe("none");
  });
  test("none is refused in production, explicitly or by default", () => {
    expect(configError({ NODE_ENV: "production", WSGATE_ADMIN_TOKEN: "a" }).variable).toBe("WSGATE_AUTH");
    expect(configError({ NODE_ENV: "production", WSGATE_ADMIN_TOKEN: "a", WSGATE_AUTH: "none", WSGATE_JWT_SECRET: "x" }).variable).toBe("WSGATE_AUTH");
  });
  test("jwt without a secret or JWKS URL is refused", () => {
    expect(configError({ WSGATE_AUTH: "jwt" }).variable).toBe("WSGATE_AUTH");
  });
  test("the admin token is required in production", () => {
    expect(configError({ NODE_ENV: "production", WSGATE_JWT_SECRET: "x" }).variable).toBe("WSGATE_ADMIN_TOKEN");
  });
  test("production with a secret and an admin token loads", () => {
    const c = loadConfig({ NODE_ENV: "production", WSGATE_JWT_SECRET: S32, WSGATE_ADMIN_TOKEN: A16 });
    expect(c.production).toBe(true);
    expect(c.auth).toBe("jwt");
  });
  test("NODE_ENV is compared case-insensitively", () => {
    for (const v of ["Production", "PRODUCTION", " production "]) {
      expect(configError({ NODE_ENV: v }).variable).toBe("WSGATE_AUTH");
      expect(loadConfig({ NODE_ENV: v, WSGATE_JWT_SECRET: S32, WSGATE_ADMIN_TOKEN: A16 }).production).toBe(true);
    }
    expect(loadConfig({ NODE_ENV: "development" }).production).toBe(false);
  });
  test("§8.1 production minimums: every secret ≥ 32 bytes, every admin token ≥ 16 chars", () => {
    expect(configError({ NODE_ENV: "production", WSGATE_JWT_SECRET: "x", WSGATE_ADMIN_TOKEN: A16 }).variable).toBe("WSGATE_JWT_SECRET");
    expect(configError({ NODE_ENV: "production", WSGATE_JWT_SECRET: `${S32},short`, WSGATE_ADMIN_TOKEN: A16 }).variable).toBe("WSGATE_JWT_SECRET");
    expect(configError({ NODE_ENV: "production", WSGATE_JWT_SECRET: S32, WSGATE_ADMIN_TOKEN: "a" }).variable).toBe("WSGATE_ADMIN_TOKEN");
    expect(configError({ NODE_ENV: "production", WSGATE_JWT_SECRET: S32, WSGATE_ADMIN_TOKEN: `${A16}, b` }).variable).toBe("WSGATE_ADMIN_TOKEN");
    // Bytes, not characters: 11 three-byte characters are 33 bytes.
    expect(loadConfig({ NODE_ENV: "production", WSGATE_JWT_SECRET: "€".repeat(11), WSGATE_ADMIN_TOKEN: A16 }).jwtSecrets).toHaveLength(1);
    // Outside production, short values are fine (tests, dev).
    expect(loadConfig({ WSGATE_JWT_SECRET: "x", WSGATE_ADMIN_TOKEN: "a" }).auth).toBe("jwt");
  });
});

describe("§8.1/§8.2 variables", () => {
  test("secret and admin token lists: comma-separated, trimmed, empty entries ignored", () => {
    const c = loadConfig({ WSGATE_JWT_SECRET: " one , two,three ", WSGATE_ADMIN_TOKEN: "a1,  a2 ," });
    expect(c.jwtSecrets).toEqual(["one", "two", "three"]);
    expect(c.jwtSecret).toBe("one");
    expect(c.adminTokens).toEqual(["a1", "a2"]);
    expect(c.adminToken).toBe("a1");
    expect(configError({ WSGATE_JWT_SECRET: " , " }).variable).toBe("WSGATE_JWT_SECRET");
    expect(configError({ WSGATE_ADMIN_TOKEN: "," }).variable).toBe("WSGATE_ADMIN_TOKEN");
  });
  test("defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ maxConnsPerUser: 100, maxRooms: 100, historyMaxBytes: 1048576, jwtSecrets: [], adminTokens: [] });
    expect(c.jwtAudience).toBeUndefined();
    expect(c.jwtIssuer).toBeUndefined();
  });
  test("read", () => {
    const c = loadConfig({
      WSGATE_JWT_AUDIENCE: "aud1",
      WSGATE_JWT_ISSUER: "https://iss",
      WSGATE_MAX_CONNS_PER_USER: "3",
      WSGATE_MAX_ROOMS: "4",
      WSGATE_HISTORY_MAX_BYTES: "65536",
    });
    expect(c).toMatchObject({ jwtAudience: "aud1", jwtIssuer: "https://iss", maxConnsPerUser: 3, maxRooms: 4, historyMaxBytes: 65536 });
  });
  for (const [name, value] of [
    ["WSGATE_MAX_CONNS_PER_USER", "0"],
    ["WSGATE_MAX_ROOMS", "x"],
    ["WSGATE_HISTORY_MAX_BYTES", "-1"],
  ])
    test(`${name}=${value} is refused`, () => expect(configError({ [name!]: value! }).variable).toBe(name!));
});

describe("invalid values name the variable", () => {
  const cases: [string, string][] = [
    ["PORT", "abc"],
    ["PORT", "0"],
    ["PORT", "70000"],
    ["PORT", "80.5"],
    ["REDIS_URL", "http://127.0.0.1:6379"],
    ["REDIS_URL", "not a url"],
    ["WSGATE_JWKS_URL", "ftp://example.invalid/jwks"],
    ["WSGATE_AUTH", "basic"],
    ["WSGATE_METRICS_PORT", "-1"],
    ["WSGATE_HEARTBEAT_MS", "-5"],
    ["WSGATE_HEARTBEAT_MS", "1e3"],
    ["WSGATE_PRESENCE_TTL_MS", "soon"],
    ["WSGATE_MAX_PAYLOAD", "big"],
    ["WSGATE_RATE", "0"],
    ["WSGATE_HISTORY_SIZE", "-1"],
    ["WSGATE_HISTORY_TTL_S", "x"],
    ["WSGATE_DRAIN_MS", "-1"],
    ["WSGATE_SESSIONS", "many"],
    ["LOG_LEVEL", "verbose"],
    ["WSGATE_GATEWAY_ID", "has space"],
  ];
  for (const [name, value] of cases)
    test(`${name}=${JSON.stringify(value)}`, () => {
      const err = configError({ [name]: value });
      expect(err.variable).toBe(name);
      expect(err.reason.length).toBeGreaterThan(0);
    });

  test("a replica without a primary is refused", () => {
    expect(configError({ REDIS_REPLICA_URL: "redis://127.0.0.1:6380" }).variable).toBe("REDIS_REPLICA_URL");
  });
});

describe("the process", () => {
  async function run(env: Record<string, string>) {
    const proc = Bun.spawn(["bun", "src/index.ts"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", HOST: "127.0.0.1", ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    clearTimeout(timer);
    return { code, stdout, stderr };
  }

  for (const [env, variable] of [
    [{ PORT: "abc" }, "PORT"],
    [{ WSGATE_SESSIONS: "many" }, "WSGATE_SESSIONS"],
    [{ NODE_ENV: "production", WSGATE_ADMIN_TOKEN: "a" }, "WSGATE_AUTH"],
    [{ NODE_ENV: "production", WSGATE_JWT_SECRET: "x" }, "WSGATE_ADMIN_TOKEN"],
    [{ NODE_ENV: "Production", WSGATE_JWT_SECRET: "x", WSGATE_ADMIN_TOKEN: "a".repeat(16) }, "WSGATE_JWT_SECRET"],
    [{ NODE_ENV: "production", WSGATE_JWT_SECRET: "s".repeat(32), WSGATE_ADMIN_TOKEN: "short" }, "WSGATE_ADMIN_TOKEN"],
  ] as [Record<string, string>, string][]) {
    test(`exits 2 with one line naming ${variable} (${JSON.stringify(env)})`, async () => {
      const r = await run(env);
      expect(r.code).toBe(2);
      const lines = (r.stdout + r.stderr).split("\n").filter((l) => l.trim() !== "");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(variable);
    });
  }
});
