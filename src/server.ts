// Wires one gateway from a Config: backends, auth, WebSocket handlers and the Hono app behind one fetch.
import type { Server } from "bun";
import { createAuthenticator } from "./auth.ts";
import { createBackends } from "./backends/index.ts";
import type { Config } from "./config.ts";
import type { Conn } from "./connections.ts";
import { createGateway } from "./gateway/index.ts";
import { dashboardRoutes } from "./dashboard/index.ts";
import { createHttpApp } from "./http.ts";
import { createLogger, type Logger } from "./log.ts";
import { createMetrics } from "./metrics.ts";

export async function createServer(config: Config, log: Logger = createLogger(config.logLevel, { gateway: config.gatewayId, region: config.region })) {
  const started = Date.now();
  const backends = await createBackends(config, log, started);
  const gateway = createGateway({ config, backends, auth: createAuthenticator(config), log });
  await gateway.start();
  const metrics = createMetrics(gateway, backends.redisCounters);
  const app = createHttpApp({
    gateway,
    presence: backends.presence,
    metrics,
    extra: dashboardRoutes({ devMode: config.auth === "none", adminEnabled: config.adminTokens.length > 0 }),
    log,
  });
  return {
    config,
    gateway,
    metrics,
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
