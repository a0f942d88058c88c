// PROTOCOL §8.3: the Redis topology variables, their exclusivity (exit 2 naming the variable) and WAIT.
import { expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../src/config.ts";

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

test("no Redis: single-node mode, WAIT 0 within 250 ms by default", () => {
  const c = loadConfig({});
  expect(c.redis).toBeUndefined();
  expect([c.redisWait, c.redisWaitMs]).toEqual([0, 250]);
});

test("REDIS_URL is the single topology (with replica and password)", () => {
  const c = loadConfig({ REDIS_URL: "redis://10.0.0.1:6379", REDIS_REPLICA_URL: "redis://10.0.0.2:6379", REDIS_PASSWORD: "pw" });
  expect(c.redis).toEqual({ kind: "single", url: "redis://10.0.0.1:6379", replicaUrl: "redis://10.0.0.2:6379", password: "pw" });
});

test("REDIS_CLUSTER_URLS: comma-separated seeds, whitespace ignored", () => {
  const c = loadConfig({ REDIS_CLUSTER_URLS: "redis://a:7000, redis://b:7001 ,rediss://c:7002", WSGATE_REDIS_WAIT: "1", WSGATE_REDIS_WAIT_MS: "500" });
  expect(c.redis).toEqual({ kind: "cluster", urls: ["redis://a:7000", "redis://b:7001", "rediss://c:7002"], password: undefined });
  expect([c.redisWait, c.redisWaitMs]).toEqual([1, 500]);
});

test("WSGATE_REDIS_BATCH_MS: 1 by default, 0 turns the hold off", () => {
  expect(loadConfig({ REDIS_URL: "redis://a:1" }).redisBatchMs).toBe(1);
  expect(loadConfig({ REDIS_URL: "redis://a:1", WSGATE_REDIS_BATCH_MS: "0" }).redisBatchMs).toBe(0);
});

test("REDIS_SENTINELS + REDIS_SENTINEL_MASTER: host:port entries, IPv6 in brackets", () => {
  const c = loadConfig({ REDIS_SENTINELS: "s1:26379,[fdaa::3]:26380", REDIS_SENTINEL_MASTER: "mymaster", REDIS_PASSWORD: "pw" });
  expect(c.redis).toEqual({ kind: "sentinel", sentinels: [{ host: "s1", port: 26379 }, { host: "fdaa::3", port: 26380 }], master: "mymaster", password: "pw" });
});

test("exit-2 rules name the variable", () => {
  const cases: [Record<string, string>, string][] = [
    [{ REDIS_URL: "redis://a:1", REDIS_CLUSTER_URLS: "redis://b:2" }, "REDIS_CLUSTER_URLS"],
    [{ REDIS_URL: "redis://a:1", REDIS_SENTINELS: "s:1", REDIS_SENTINEL_MASTER: "m" }, "REDIS_SENTINELS"],
    [{ REDIS_CLUSTER_URLS: "redis://b:2", REDIS_SENTINELS: "s:1", REDIS_SENTINEL_MASTER: "m" }, "REDIS_SENTINELS"],
    [{ REDIS_SENTINEL_MASTER: "m" }, "REDIS_SENTINEL_MASTER"],
    [{ REDIS_SENTINELS: "s:1" }, "REDIS_SENTINEL_MASTER"],
    [{ REDIS_SENTINELS: "redis://s:1", REDIS_SENTINEL_MASTER: "m" }, "REDIS_SENTINELS"],
    [{ REDIS_SENTINELS: "s:99999", REDIS_SENTINEL_MASTER: "m" }, "REDIS_SENTINELS"],
    [{ REDIS_CLUSTER_URLS: "http://a:1" }, "REDIS_CLUSTER_URLS"],
    [{ REDIS_CLUSTER_URLS: " , " }, "REDIS_CLUSTER_URLS"],
    [{ REDIS_PASSWORD: "pw" }, "REDIS_PASSWORD"],
    [{ WSGATE_REDIS_WAIT: "1" }, "WSGATE_REDIS_WAIT"],
    [{ REDIS_URL: "redis://a:1", WSGATE_REDIS_WAIT: "-1" }, "WSGATE_REDIS_WAIT"],
    [{ REDIS_URL: "redis://a:1", WSGATE_REDIS_WAIT: "17" }, "WSGATE_REDIS_WAIT"],
    [{ REDIS_URL: "redis://a:1", WSGATE_REDIS_WAIT_MS: "0" }, "WSGATE_REDIS_WAIT_MS"],
    [{ REDIS_URL: "redis://a:1", WSGATE_REDIS_BATCH_MS: "51" }, "WSGATE_REDIS_BATCH_MS"],
    [{ REDIS_URL: "redis://a:1", WSGATE_REDIS_BATCH_MS: "0.5" }, "WSGATE_REDIS_BATCH_MS"],
  ];
  for (const [env, variable] of cases) expect([JSON.stringify(env), configError(env).variable]).toEqual([JSON.stringify(env), variable]);
});

test("a real gateway process exits 2 with one line naming the variable", async () => {
  const proc = Bun.spawn(["bun", "src/index.ts"], {
    cwd: new URL("..", import.meta.url).pathname,
    env: { PATH: process.env.PATH ?? "", REDIS_URL: "redis://127.0.0.1:1", REDIS_CLUSTER_URLS: "redis://127.0.0.1:2" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  expect(code).toBe(2);
  expect(out + err).toContain("REDIS_CLUSTER_URLS");
});
