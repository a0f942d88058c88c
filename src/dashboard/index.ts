// GET /dashboard (admin API enabled) and GET /demo (dev mode): static pages as strings, no build step.
// The pages hold no data; the dashboard reads the admin API with a token the user types in.
import { createHash } from "node:crypto";
import { Hono, type Context } from "hono";
import { DASHBOARD_JS } from "./dashboard-app.ts";
import { DASHBOARD_HTML } from "./dashboard-page.ts";
import { DEMO_HTML, DEMO_JS } from "./demo-page.ts";
import { sdkBundle } from "./sdk-bundle.ts";
import { STYLE } from "./style.ts";

export interface DashboardOptions {
  /** WSGATE_AUTH=none: serve /demo. */
  devMode: boolean;
  /** WSGATE_ADMIN_TOKEN set: serve /dashboard (like every admin route, 404 otherwise). */
  adminEnabled: boolean;
}

// Scripts only from our own origin, the one inline <style> pinned by its hash, no framing.
const styleHash = `'sha256-${createHash("sha256").update(STYLE).digest("base64")}'`;
const csp = (connect: string) =>
  [
    "default-src 'none'",
    "script-src 'self'",
    `style-src ${styleHash}`,
    `connect-src ${connect}`,
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");

const COMMON_HEADERS = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

function notFound(c: Context) {
  return c.json({ error: { code: "not_found", message: "not found" } }, 404);
}

function page(c: Context, html: string, connect: string) {
  return c.body(html, 200, { ...COMMON_HEADERS, "content-type": "text/html; charset=utf-8", "content-security-policy": csp(connect) });
}

function script(c: Context, js: string) {
  return c.body(js, 200, { ...COMMON_HEADERS, "content-type": "text/javascript; charset=utf-8" });
}

export function dashboardRoutes(opts: DashboardOptions): Hono {
  const app = new Hono();
  const sdk = sdkBundle();

  app.get("/dashboard", (c) => (opts.adminEnabled ? page(c, DASHBOARD_HTML, "'self'") : notFound(c)));
  app.get("/dashboard/app.js", (c) => (opts.adminEnabled ? script(c, DASHBOARD_JS) : notFound(c)));

  // The demo's WebSocket goes to this same host; ws:/wss: are listed because not every browser
  // counts them as 'self'.
  const wsSelf = (c: Context) => {
    // Only host[:port] characters, so a forged Host header cannot add CSP directives.
    const host = (c.req.header("host") ?? "").replace(/[^A-Za-z0-9.:\[\]-]/g, "");
    return `'self' ws://${host} wss://${host}`;
  };
  app.get("/demo", (c) => (opts.devMode ? page(c, DEMO_HTML, wsSelf(c)) : notFound(c)));
  app.get("/demo/app.js", (c) => (opts.devMode ? script(c, DEMO_JS) : notFound(c)));
  app.get("/demo/wsgate-client.js", async (c) => {
    if (!opts.devMode) return notFound(c);
    try {
      return script(c, await sdk());
    } catch (err) {
      return c.json({ error: { code: "internal", message: `SDK build failed: ${(err as Error).message}` } }, 500);
    }
  });
  return app;
}
