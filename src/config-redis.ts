// The Redis part of the configuration (PROTOCOL §1 and §8.3): which topology, and the WAIT rule for acks.
// Kept beside config.ts so the topology rules stay in one place; config.ts spreads these in.
import { z } from "zod";
import type { ConfigError } from "./config.ts";

export type RedisTopology =
  | { kind: "single"; url: string; replicaUrl?: string; password?: string }
  | { kind: "cluster"; urls: string[]; password?: string }
  | { kind: "sentinel"; sentinels: { host: string; port: number }[]; master: string; password?: string };

export interface RedisConfig {
  /** Unset: single-node mode, everything in memory. */
  redis?: RedisTopology;
  /** Replicas that must confirm a direct message before its ack (WAIT); 0 = the primary's reply is enough. */
  redisWait: number;
  redisWaitMs: number;
  /** With history, how long a loaded gateway may hold direct messages to share one script call (broker.ts). */
  redisBatchMs: number;
}

const urlList = z
  .string()
  .transform((s) => s.split(",").map((x) => x.trim()).filter(Boolean))
  .refine((xs) => xs.length > 0, "needs at least one URL")
  .refine(
    (xs) =>
      xs.every((x) => {
        try {
          return ["redis:", "rediss:"].includes(new URL(x).protocol);
        } catch {
          return false;
        }
      }),
    "must be comma-separated redis:// or rediss:// URLs",
  );

const hostPort = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;
const sentinelList = z
  .string()
  .transform((s) => s.split(",").map((x) => x.trim()).filter(Boolean))
  .refine((xs) => xs.length > 0, "needs at least one host:port")
  .refine((xs) => xs.every((x) => hostPort.test(x) && Number(hostPort.exec(x)![2]) <= 65535 && Number(hostPort.exec(x)![2]) > 0), "must be comma-separated host:port entries (no scheme)")
  .transform((xs) =>
    xs.map((x) => {
      const [, host, port] = hostPort.exec(x)!;
      return { host: host!.replace(/^\[|\]$/g, ""), port: Number(port) };
    }),
  );

const count = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

/** Schema entries, spread into config.ts's object. */
export const redisSchemaShape = {
  REDIS_CLUSTER_URLS: urlList.optional(),
  REDIS_SENTINELS: sentinelList.optional(),
  REDIS_SENTINEL_MASTER: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, "must be 1-128 chars of [A-Za-z0-9_.:-]").optional(),
  REDIS_PASSWORD: z.string().min(1).optional(),
  WSGATE_REDIS_WAIT: count(0, 16).default(0),
  WSGATE_REDIS_WAIT_MS: count(1, 60_000).default(250),
  WSGATE_REDIS_BATCH_MS: count(0, 50).default(1),
};

type Parsed = {
  REDIS_URL?: string;
  REDIS_REPLICA_URL?: string;
  REDIS_CLUSTER_URLS?: string[];
  REDIS_SENTINELS?: { host: string; port: number }[];
  REDIS_SENTINEL_MASTER?: string;
  REDIS_PASSWORD?: string;
  WSGATE_REDIS_WAIT: number;
  WSGATE_REDIS_WAIT_MS: number;
  WSGATE_REDIS_BATCH_MS: number;
};

/** The exclusivity rules of §8.3; `fail` builds the ConfigError (exit 2 naming the variable). */
export function redisConfig(e: Parsed, fail: (variable: string, reason: string) => ConfigError): RedisConfig {
  if (e.REDIS_CLUSTER_URLS && e.REDIS_URL) throw fail("REDIS_CLUSTER_URLS", "set either REDIS_URL or REDIS_CLUSTER_URLS, not both");
  if (e.REDIS_SENTINELS && e.REDIS_URL) throw fail("REDIS_SENTINELS", "set either REDIS_URL or REDIS_SENTINELS, not both");
  if (e.REDIS_SENTINELS && e.REDIS_CLUSTER_URLS) throw fail("REDIS_SENTINELS", "set either REDIS_CLUSTER_URLS or REDIS_SENTINELS, not both");
  if (e.REDIS_SENTINEL_MASTER && !e.REDIS_SENTINELS) throw fail("REDIS_SENTINEL_MASTER", "needs REDIS_SENTINELS");
  if (e.REDIS_SENTINELS && !e.REDIS_SENTINEL_MASTER) throw fail("REDIS_SENTINEL_MASTER", "required with REDIS_SENTINELS (the name the sentinels monitor)");
  let redis: RedisTopology | undefined;
  if (e.REDIS_URL) redis = { kind: "single", url: e.REDIS_URL, replicaUrl: e.REDIS_REPLICA_URL, password: e.REDIS_PASSWORD };
  else if (e.REDIS_CLUSTER_URLS) redis = { kind: "cluster", urls: e.REDIS_CLUSTER_URLS, password: e.REDIS_PASSWORD };
  else if (e.REDIS_SENTINELS) redis = { kind: "sentinel", sentinels: e.REDIS_SENTINELS, master: e.REDIS_SENTINEL_MASTER!, password: e.REDIS_PASSWORD };
  if (!redis && e.REDIS_PASSWORD) throw fail("REDIS_PASSWORD", "needs REDIS_URL, REDIS_CLUSTER_URLS or REDIS_SENTINELS");
  if (!redis && e.WSGATE_REDIS_WAIT > 0) throw fail("WSGATE_REDIS_WAIT", "needs Redis (REDIS_URL, REDIS_CLUSTER_URLS or REDIS_SENTINELS)");
  return { redis, redisWait: e.WSGATE_REDIS_WAIT, redisWaitMs: e.WSGATE_REDIS_WAIT_MS, redisBatchMs: e.WSGATE_REDIS_BATCH_MS };
}
