// docs/DEPLOY.md's smoke test runs as written: scripts/smoke.ts against two gateways sharing a Redis
// (WSGATE_URL instead of APP, since there is no Fly here), and it fails when delivery does.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startRedis, type RedisServer } from "../harness/redis.ts";
import { ADMIN_TOKEN, startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { TEST_SECRET } from "./helpers/token.ts";

const ROOT = new URL("..", import.meta.url).pathname;
let redis: RedisServer;
let gws: GatewayProc[] = [];

beforeAll(async () => {
  redis = await startRedis();
  gws = await Promise.all(["ams", "sin"].map((r) => startGateway({ REDIS_URL: redis.url, WSGATE_REGION: r })));
});
afterAll(async () => {
  for (const g of gws) await g.kill("SIGKILL");
  await redis?.stop();
});

async function smoke(env: Record<string, string>) {
  const proc = Bun.spawn(["bun", "scripts/smoke.ts"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { out, err, code };
}

test("smoke: health, gateways with versions, a direct message delivered", async () => {
  const r = await smoke({ WSGATE_URL: gws[0]!.http, WSGATE_JWT_SECRET: TEST_SECRET, WSGATE_ADMIN_TOKEN: ADMIN_TOKEN });
  expect(r.code, r.err).toBe(0);
  expect(r.out).toContain("health: ok, version");
  for (const g of gws) expect(r.out).toContain(`gateway ${g.id} in `);
  expect(r.out).toContain("delivered");
  expect(r.out.trim().split("\n").at(-1)).toBe("smoke: ok");
});

test("smoke: a missing variable is named; a wrong secret fails with exit 1", async () => {
  const missing = await smoke({ WSGATE_URL: gws[0]!.http, WSGATE_ADMIN_TOKEN: ADMIN_TOKEN });
  expect(missing.code).toBe(2);
  expect(missing.err).toContain("WSGATE_JWT_SECRET is not set");
  const wrong = await smoke({ WSGATE_URL: gws[0]!.http, WSGATE_JWT_SECRET: "another-secret-that-is-long-enough-xx", WSGATE_ADMIN_TOKEN: ADMIN_TOKEN });
  expect(wrong.code).toBe(1);
  expect(wrong.err).toContain("smoke: FAILED");
});
