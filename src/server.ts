// The one wiring of a gateway: backends, authenticator, the WebSocket side, and beside it the HTTP app (admin
// API, dashboard) and metrics, which see only its commands and status. The entry point, in-process tests and
// anything else that runs a gateway build it here; backends and clock can be injected.
import type { Server } from "bun";
import { createAuthenticator, type Authenticator } from "./auth.ts";
import { createBackends } from "./backends/index.ts";
import type { Backends } from "./backends/types.ts";
import type { Config } from "./config.ts";
import type { Conn } from "./connections.ts";
import { createGateway } from "./gateway/index.ts";
import { dashboardRoutes } from "./dashboard/index.ts";
import { createHttpApp, createMetrics, createMetricsApp } from "./http/index.ts";
import { createLogger, type Logger } from "./log.ts";
import { buildInfo } from "./version.ts";
import { createTicks } from "./ticks.ts";

export interface ServerOptions {
  log?: Logger;
  /** Default: from config (memory, or Redis when configured). */
  backends?: Backends;
  auth?: Authenticator;
  /** The clock of the gateway (ms since epoch). */
  now?: () => number;
  /** Start the unauthenticated metrics listener when config.metricsPort is set (default true). */
  metricsListener?: boolean;
}

export type WsgateServer = Awaited<ReturnType<typeof createServer>>;

export async function createServer(config: Config, opts: ServerOptions = {}) {
  const log = opts.log ?? createLogger(config.logLevel, { gateway: config.gatewayId, region: config.region });
  const now = opts.now ?? Date.now;
  const build = buildInfo(config.build);
  // One timer for every periodic job of this gateway, backends included: an idle gateway pays per wake-up.
  const ticks = createTicks();
  const backends = opts.backends ?? (await createBackends(config, log, now(), now, build, ticks));
  const gateway = createGateway({ config, backends, auth: opts.auth ?? createAuthenticator(config), log, now, ticks });
  await gateway.start();
  const metrics = createMetrics(gateway.status, { build, redis: backends.redisCounters });
  const app = createHttpApp({
    config,
    build,
    log,
    commands: gateway.commands,
    status: gateway.status,
    metrics,
    extra: dashboardRoutes({ devMode: config.auth === "none", adminEnabled: config.adminTokens.length > 0 }),
  });
  // Fly.io's scraper reads /metrics on a port of its own, without the admin token.
  const metricsServer =
    config.metricsPort && opts.metricsListener !== false
      ? Bun.serve({ port: config.metricsPort, hostname: config.host, fetch: createMetricsApp(metrics).fetch })
      : null;
  return {
    config,
    build,
    gateway,
    metrics,
    metricsServer,
    app,
    log,
    fetch(req: Request, server: Server<Conn>): Response | Promise<Response | undefined> | undefined {
      // Only /ws upgrades; Hono never sees the socket, so Bun's backpressure signals stay ours.
      const url = new URL(req.url);
      if (url.pathname === "/ws")
        return gateway.upgrade(req, url, server).catch((err) => {
          // The caller is not authenticated (or not yet): the error's text stays in the log.
          log.warn("upgrade failed", { err });
          return Response.json({ error: { code: "internal", message: "internal error" } }, { status: 500 });
        });
      return app.fetch(req, { server });
    },
    websocket: gateway.websocket,
  };
}
