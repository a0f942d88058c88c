// Environment → validated Config (PROTOCOL §1). Pure: the caller decides what to do with a ConfigError.
import { hostname } from "node:os";
import { z } from "zod";
import { ID_RE, ID_RULE, REGION_RE, REGION_RULE } from "./protocol/grammar.ts";
import { redisConfig, redisSchemaShape, type RedisConfig } from "./config-redis.ts";

export class ConfigError extends Error {
  constructor(readonly variable: string, readonly reason: string) {
    super(`${variable}: ${reason}`);
  }
}

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^\d+$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const optionalUrl = (protocols: string[]) =>
  z
    .string()
    .refine((s) => {
      try {
        return protocols.includes(new URL(s).protocol);
      } catch {
        return false;
      }
    }, `must be a URL (${protocols.join(" or ")})`)
    .optional();

/** Comma-separated, whitespace around entries ignored (§8.1: rotation lists). */
const list = (what: string) =>
  z
    .string()
    .transform((s) => s.split(",").map((x) => x.trim()).filter((x) => x.length > 0))
    .refine((xs) => xs.length > 0, `needs at least one ${what} (comma-separated list)`);

/** §8.1 production minimums: a short HS256 secret or admin token can be brute-forced offline or online. */
const MIN_SECRET_BYTES = 32;
const MIN_ADMIN_TOKEN_CHARS = 16;

const schema = z.object({
  PORT: int(1, 65535).default(8080),
  HOST: z.string().min(1).default("0.0.0.0"),
  REDIS_URL: optionalUrl(["redis:", "rediss:"]),
  REDIS_REPLICA_URL: optionalUrl(["redis:", "rediss:"]),
  WSGATE_GATEWAY_ID: z.string().regex(ID_RE, `must be ${ID_RULE}`).optional(),
  WSGATE_REGION: z.string().regex(REGION_RE, `must be ${REGION_RULE}`).optional(),
  WSGATE_JWT_SECRET: list("secret").optional(),
  WSGATE_JWT_AUDIENCE: z.string().min(1).optional(),
  WSGATE_JWT_ISSUER: z.string().min(1).optional(),
  WSGATE_JWKS_URL: optionalUrl(["http:", "https:"]),
  WSGATE_AUTH: z.enum(["jwt", "none"], { message: 'must be "jwt" or "none"' }).optional(),
  WSGATE_ADMIN_TOKEN: list("token").optional(),
  WSGATE_METRICS_PORT: int(1, 65535).optional(),
  WSGATE_HEARTBEAT_MS: int(100).default(25000),
  WSGATE_PRESENCE_TTL_MS: int(200).default(30000),
  WSGATE_MAX_PAYLOAD: int(64, 16 * 1024 * 1024).default(65536),
  WSGATE_RATE: int(1).default(50),
  WSGATE_HISTORY_SIZE: int(0, 1_000_000).default(1000),
  WSGATE_HISTORY_TTL_S: int(1).default(300),
  WSGATE_HISTORY_MAX_BYTES: int(1024).default(1_048_576),
  WSGATE_DRAIN_MS: int(0).default(10000),
  WSGATE_MAX_CONNS_PER_USER: int(1).default(100),
  WSGATE_MAX_ROOMS: int(1).default(100),
  WSGATE_DRAIN_DELAY_MS: int(0, 300_000).default(0),
  WSGATE_BUILD: z.string().regex(/^[A-Za-z0-9_.:+-]{1,64}$/, "must be 1-64 chars of [A-Za-z0-9_.:+-]").optional(),
  WSGATE_REDIS_LOST_DRAIN_MS: int(0).default(10000),
  WSGATE_SESSIONS: z.enum(["multi", "single"], { message: 'must be "multi" or "single"' }).default("multi"),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"], { message: "must be debug, info, warn or error" }).default("info"),
  NODE_ENV: z.string().optional(),
  FLY_MACHINE_ID: z.string().optional(),
  FLY_REGION: z.string().optional(),
  ...redisSchemaShape,
});

export interface Config extends RedisConfig {
  port: number;
  host: string;
  redisUrl?: string;
  redisReplicaUrl?: string;
  gatewayId: string;
  region: string;
  auth: "jwt" | "none";
  /** First of jwtSecrets (kept for callers that only need to know a secret is set). */
  jwtSecret?: string;
  /** Any of these verifies an HS256 token (rotation). */
  jwtSecrets: string[];
  jwtAudience?: string;
  jwtIssuer?: string;
  jwksUrl?: string;
  /** First of adminTokens; set exactly when the admin surface is enabled. */
  adminToken?: string;
  /** Any of these is accepted as the admin bearer token (rotation). */
  adminTokens: string[];
  metricsPort?: number;
  heartbeatMs: number;
  presenceTtlMs: number;
  maxPayload: number;
  rate: number;
  historySize: number;
  historyTtlS: number;
  historyMaxBytes: number;
  drainMs: number;
  /** After SIGTERM, how long /ready fails with every connection still open before the closes start. */
  drainDelayMs: number;
  /** Build id (commit) from the environment; the version module falls back to git. */
  build?: string;
  /** Redis unreachable this long → close clients with 1001 (PROTOCOL §8.4); 0 = never. */
  redisLostDrainMs: number;
  sessions: "multi" | "single";
  maxConnsPerUser: number;
  maxRooms: number;
  logLevel: "debug" | "info" | "warn" | "error";
  production: boolean;
  /** Set when FLY_MACHINE_ID is present: admin calls for another machine answer with fly-replay. */
  flyMachineId?: string;
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  // Empty strings are how shells and fly.toml say "unset".
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== "") clean[k] = v;
  const parsed = schema.safeParse(clean);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(String(issue.path[0] ?? "environment"), issue.message);
  }
  const e = parsed.data;
  const production = e.NODE_ENV?.trim().toLowerCase() === "production";
  const auth = e.WSGATE_AUTH ?? (e.WSGATE_JWT_SECRET || e.WSGATE_JWKS_URL ? "jwt" : "none");
  if (auth === "none" && production)
    throw new ConfigError("WSGATE_AUTH", "dev mode (none) is refused when NODE_ENV=production; set WSGATE_JWT_SECRET or WSGATE_JWKS_URL");
  if (auth === "jwt" && !e.WSGATE_JWT_SECRET && !e.WSGATE_JWKS_URL)
    throw new ConfigError("WSGATE_AUTH", "jwt needs WSGATE_JWT_SECRET or WSGATE_JWKS_URL");
  if (production && !e.WSGATE_ADMIN_TOKEN)
    throw new ConfigError("WSGATE_ADMIN_TOKEN", "required when NODE_ENV=production");
  if (production) checkProductionMinimums(e.WSGATE_JWT_SECRET ?? [], e.WSGATE_ADMIN_TOKEN ?? []);
  if (e.REDIS_REPLICA_URL && !e.REDIS_URL)
    throw new ConfigError("REDIS_REPLICA_URL", "needs REDIS_URL (writes always go to the primary)");
  const redis = redisConfig(e, (variable, reason) => new ConfigError(variable, reason));
  return {
    ...redis,
    port: e.PORT,
    host: e.HOST,
    redisUrl: e.REDIS_URL,
    redisReplicaUrl: e.REDIS_REPLICA_URL,
    gatewayId: e.WSGATE_GATEWAY_ID ?? e.FLY_MACHINE_ID ?? `${hostname()}-${process.pid}`,
    region: e.WSGATE_REGION ?? e.FLY_REGION ?? "local",
    auth,
    jwtSecret: e.WSGATE_JWT_SECRET?.[0],
    jwtSecrets: e.WSGATE_JWT_SECRET ?? [],
    jwtAudience: e.WSGATE_JWT_AUDIENCE,
    jwtIssuer: e.WSGATE_JWT_ISSUER,
    jwksUrl: e.WSGATE_JWKS_URL,
    adminToken: e.WSGATE_ADMIN_TOKEN?.[0],
    adminTokens: e.WSGATE_ADMIN_TOKEN ?? [],
    metricsPort: e.WSGATE_METRICS_PORT,
    heartbeatMs: e.WSGATE_HEARTBEAT_MS,
    presenceTtlMs: e.WSGATE_PRESENCE_TTL_MS,
    maxPayload: e.WSGATE_MAX_PAYLOAD,
    rate: e.WSGATE_RATE,
    historySize: e.WSGATE_HISTORY_SIZE,
    historyTtlS: e.WSGATE_HISTORY_TTL_S,
    historyMaxBytes: e.WSGATE_HISTORY_MAX_BYTES,
    drainMs: e.WSGATE_DRAIN_MS,
    drainDelayMs: e.WSGATE_DRAIN_DELAY_MS,
    build: e.WSGATE_BUILD,
    redisLostDrainMs: e.WSGATE_REDIS_LOST_DRAIN_MS,
    sessions: e.WSGATE_SESSIONS,
    maxConnsPerUser: e.WSGATE_MAX_CONNS_PER_USER,
    maxRooms: e.WSGATE_MAX_ROOMS,
    logLevel: e.LOG_LEVEL,
    production,
    flyMachineId: e.FLY_MACHINE_ID,
  };
}

function checkProductionMinimums(secrets: string[], adminTokens: string[]): void {
  if (secrets.some((s) => Buffer.byteLength(s, "utf8") < MIN_SECRET_BYTES))
    throw new ConfigError("WSGATE_JWT_SECRET", `each secret must be at least ${MIN_SECRET_BYTES} bytes when NODE_ENV=production`);
  if (adminTokens.some((t) => t.length < MIN_ADMIN_TOKEN_CHARS))
    throw new ConfigError("WSGATE_ADMIN_TOKEN", `each token must be at least ${MIN_ADMIN_TOKEN_CHARS} characters when NODE_ENV=production`);
}
