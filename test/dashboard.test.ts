// /dashboard and /demo: route gating without a browser, then the real pages in headless Chromium
// (Debian's chromium driven by playwright-core) against a three-gateway cluster in two regions.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { WsgateClient } from "../src/client/index.ts";
import { dashboardRoutes } from "../src/dashboard/index.ts";
import { connect } from "./helpers/client.ts";
import pkg from "../package.json";
import { ADMIN_TOKEN, startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { startRedis, type RedisServer } from "../harness/redis.ts";

const CHROMIUM = "/usr/bin/chromium";
// The docs' screenshots are refreshed on request (UPDATE_SCREENSHOTS=1); a plain run must not dirty the tree.
const SHOTS = process.env.UPDATE_SCREENSHOTS
  ? new URL("../docs/screenshots/", import.meta.url).pathname
  : mkdtempSync(join(tmpdir(), "wsgate-shots-"));

describe("routes", () => {
  test("/dashboard only with the admin API enabled, /demo only in dev mode", async () => {
    const off = dashboardRoutes({ devMode: false, adminEnabled: false });
    for (const p of ["/dashboard", "/dashboard/app.js", "/demo", "/demo/app.js", "/demo/wsgate-client.js"]) {
      expect((await off.request(p)).status).toBe(404);
    }
    const on = dashboardRoutes({ devMode: true, adminEnabled: true });
    const page = await on.request("/dashboard");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(page.headers.get("cache-control")).toBe("no-store");
    expect((await on.request("/dashboard/app.js")).headers.get("content-type")).toContain("javascript");
    expect((await on.request("/demo")).status).toBe(200);
    const sdk = await on.request("/demo/wsgate-client.js");
    expect(sdk.status).toBe(200);
    expect(await sdk.text()).toContain("class WsgateClient");
  });

  test("served by real gateways: 404 without an admin token, /demo 404 outside dev mode", async () => {
    const jwt = await startGateway();
    const noAdmin = await startGateway({ WSGATE_ADMIN_TOKEN: undefined });
    try {
      const html = await (await fetch(`${jwt.http}/dashboard`)).text();
      expect(html).toContain("wsgate dashboard");
      expect(html).not.toContain(jwt.id); // the page itself holds no data
      expect((await fetch(`${jwt.http}/demo`)).status).toBe(404);
      expect((await fetch(`${noAdmin.http}/dashboard`)).status).toBe(404);
      expect((await fetch(`${noAdmin.http}/dashboard/app.js`)).status).toBe(404);
    } finally {
      await jwt.kill();
      await noAdmin.kill();
    }
  });
});

describe.skipIf(!existsSync(CHROMIUM))("in headless Chromium", () => {
  let redis: RedisServer;
  let ams1: GatewayProc, ams2: GatewayProc, ord: GatewayProc;
  let ctx: BrowserContext;
  let profile: string;
  const sdkClients: WsgateClient[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    // Dev mode (?user=) so /demo is served; the admin token still guards /dashboard.
    const base = { REDIS_URL: redis.url, WSGATE_JWT_SECRET: undefined };
    [ams1, ams2, ord] = await Promise.all([
      // Mid rolling deploy: ord already runs the new build.
      startGateway({ ...base, WSGATE_REGION: "ams", WSGATE_GATEWAY_ID: "gw-ams-1", WSGATE_BUILD: "old-build" }),
      startGateway({ ...base, WSGATE_REGION: "ams", WSGATE_GATEWAY_ID: "gw-ams-2", WSGATE_BUILD: "old-build" }),
      startGateway({ ...base, WSGATE_REGION: "ord", WSGATE_GATEWAY_ID: "gw-ord-1", WSGATE_BUILD: "new-build" }),
    ]);
    profile = mkdtempSync(join(tmpdir(), "wsgate-chromium-"));
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1280, height: 900 },
      colorScheme: "light",
    });
  }, 60_000);

  afterAll(async () => {
    for (const c of sdkClients) c.close();
    await ctx?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    for (const g of [ams1, ams2, ord]) await g?.kill();
    await redis?.stop();
  });

  /** A page that fails the test on any script error. */
  async function open(url: string): Promise<{ page: Page; errors: string[] }> {
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    await page.goto(url);
    return { page, errors };
  }

  test("dashboard: token gate, gateways by region, live counts, errors, presence drill-down", async () => {
    const { page, errors } = await open(`${ams1.http}/dashboard?interval=500`);
    await page.waitForSelector("#login-view:not(.hidden)");

    await page.fill("#token", "wrong-token");
    await page.click("#login button[type=submit]");
    await page.waitForSelector("#login-error:has-text('401')");
    expect(await page.evaluate(() => sessionStorage.getItem("wsgate.adminToken"))).toBeNull();

    await page.fill("#token", ADMIN_TOKEN);
    await page.click("#login button[type=submit]");
    await page.waitForSelector("[data-gateway='gw-ord-1']");
    const regions = await page.$$eval("[data-region]", (els) =>
      els.map((e) => ({ region: e.getAttribute("data-region"), gateways: Array.from(e.querySelectorAll("[data-gateway]")).map((r) => r.getAttribute("data-gateway")) })),
    );
    expect(regions).toEqual([
      { region: "ams", gateways: ["gw-ams-1", "gw-ams-2"] },
      { region: "ord", gateways: ["gw-ord-1"] },
    ]);
    expect(await page.textContent("#redis")).toBe("redis ready");

    // Live: three users connect to ord, traffic flows through ams-1; the page follows without reload.
    for (const u of ["carol", "dave", "erin"]) sdkClients.push(new WsgateClient({ url: ord.ws, user: u }));
    const talker = new WsgateClient({ url: ams1.ws, user: "talker" });
    sdkClients.push(talker);
    await Promise.all(sdkClients.map((c) => c.waitOpen()));
    await page.waitForSelector("[data-gateway='gw-ord-1'] [data-field='connections']:text-is('3')", { timeout: 10_000 });
    // Each gateway's version and build, so a rolling deploy can be followed machine by machine.
    expect(await page.textContent("[data-gateway='gw-ord-1'] [data-field='version']")).toBe(`${pkg.version} (new-build)`);
    expect(await page.textContent("[data-gateway='gw-ams-1'] [data-field='version']")).toBe(`${pkg.version} (old-build)`);
    const bad = await connect(`${ams1.ws}?user=clumsy`);
    bad.send("not json");
    await bad.nextType("error");
    for (let i = 0; i < 30; i++) await talker.send("carol", { i });
    await page.waitForSelector("[data-code='bad_request']", { timeout: 10_000 });
    expect(await page.textContent("[data-code='bad_request'] [data-field='recent']")).toBe("1");
    // The rate is a delta between polls, so look at the peak rather than the current value.
    await page.waitForFunction(() => /peak [1-9]/.test(document.querySelector("#spark-label")?.textContent ?? ""), null, { timeout: 10_000 });

    await page.fill("#presence-user", "carol");
    await page.click("#presence-form button[type=submit]");
    await page.waitForSelector("#presence [data-online='true']");
    expect(await page.$$eval("#presence [data-conn] td:nth-child(2)", (tds) => tds.map((t) => t.textContent))).toEqual(["gw-ord-1"]);

    // A few seconds of varying traffic so the screenshot in the docs shows a rate curve.
    // Paced under the talker's 50 frames/s (one token per recipient): unpaced, a fast machine ran it dry.
    for (let i = 0; i < 24; i++) {
      const n = 2 + (i % 6) * 3;
      await Promise.all(Array.from({ length: n }, (_, k) => talker.send(["carol", "dave", "erin"][k % 3]!, { i, k })));
      await Bun.sleep(Math.max(120, n * 25));
    }
    await page.screenshot({ path: join(SHOTS, "dashboard.png"), fullPage: true });

    // The token survives a reload of the tab, and signing out forgets it.
    await page.reload();
    await page.waitForSelector("[data-gateway='gw-ams-2']");
    await page.click("#signout");
    await page.waitForSelector("#login-view:not(.hidden)");
    expect(await page.evaluate(() => sessionStorage.getItem("wsgate.adminToken"))).toBeNull();
    bad.close();
    expect(errors.filter((e) => !e.includes("401"))).toEqual([]);
    await page.close();
  }, 60_000);

  test("demo: two users in two tabs on gateways in two regions", async () => {
    const alice = await open(`${ams2.http}/demo?user=alice`);
    const bob = await open(`${ord.http}/demo?user=bob`);
    await alice.page.waitForSelector("#state:text-is('open')");
    await bob.page.waitForSelector("#state:text-is('open')");
    expect(await alice.page.textContent("#where")).toContain("gw-ams-2");
    expect(await bob.page.textContent("#where")).toContain("gw-ord-1");

    // Playwright waits for animation frames before clicking, and background tabs get few: focus first.
    await alice.page.bringToFront();
    await alice.page.fill("#send-to", "bob");
    await alice.page.fill("#send-text", "hi bob");
    await alice.page.click("#send-form button");
    await bob.page.waitForSelector("#log div[data-kind='message']:has-text('alice → you: hi bob')");

    await bob.page.bringToFront();
    await bob.page.click("#join-form button[type=submit]");
    await bob.page.waitForSelector("#rooms:text-is('lobby')");
    await alice.page.bringToFront();
    await alice.page.click("#join-form button[type=submit]");
    await bob.page.waitForSelector("#log div[data-kind='room']:has-text('[lobby] alice joined')");
    await alice.page.fill("#publish-text", "hello lobby");
    await alice.page.click("#publish-form button");
    for (const p of [alice.page, bob.page]) await p.waitForSelector("#log div:has-text('[lobby] alice: hello lobby')");

    await alice.page.fill("#presence-users", "bob, nobody");
    await alice.page.click("#presence-form button[type=submit]");
    await alice.page.waitForSelector("#presence-result:has-text('bob: online (1 conn, ord)')");
    expect(await alice.page.textContent("#presence-result")).toContain("nobody: offline");
    await alice.page.click("#who-room");
    await alice.page.waitForSelector("#presence-result:has-text('lobby: ')");
    const inRoom = (await alice.page.textContent("#presence-result"))!.replace("lobby: ", "").split(", ").sort();
    expect(inRoom).toEqual(["alice", "bob"]);

    await alice.page.screenshot({ path: join(SHOTS, "demo-alice.png") });
    await bob.page.screenshot({ path: join(SHOTS, "demo-bob.png") });
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  }, 60_000);
});
