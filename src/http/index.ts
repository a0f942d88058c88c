// The HTTP side of a gateway (PROTOCOL §6) on Hono: probes, stats, metrics and the admin API. It sees the
// gateway only through its commands and a status view, so it stands beside the WebSocket side, not on it.
import { Hono } from "hono";
import type { Registry } from "prom-client";
import type { Config } from "../config.ts";
import type { Commands } from "../gateway/commands.ts";
import type { GatewayStatus } from "../gateway/status.ts";
import type { Logger } from "../log.ts";
import { buildInfo, type BuildInfo } from "../version.ts";
import { adminAuth, adminRoutes } from "./admin.ts";
import { probeRoutes } from "./probes.ts";
import { errorBody } from "./reply.ts";
import { statsRoute } from "./stats.ts";

export { tokenTag } from "./admin.ts";
export { createMetrics, type MetricsOptions } from "./metrics.ts";

export interface HttpDeps {
  config: Config;
  /** What a gateway can do: the admin API calls the same commands as WebSocket clients. */
  commands: Commands;
  /** What it can tell: counts, counters, state. */
  status: GatewayStatus;
  metrics: Registry;
  /** Default: read from config.build and git. */
  build?: BuildInfo;
  /** Where the audit lines of admin actions go. */
  log?: Logger;
  /** Extra routes mounted at / (dashboard, demo). */
  extra?: Hono;
}

export function createHttpApp({ config, commands, status, metrics, build = buildInfo(config.build), log, extra }: HttpDeps) {
  const app = new Hono();
  const admin = adminAuth(config.adminTokens);
  probeRoutes(app, status, build);
  app.get("/stats", admin, statsRoute(config, status, build, commands));
  app.get("/metrics", admin, async (c) => c.text(await metrics.metrics(), 200, { "content-type": metrics.contentType }));
  adminRoutes(app, admin, commands, log);
  if (extra) app.route("/", extra);

  app.notFound((c) => c.json(errorBody("not_found", "not found"), 404));
  // The message of an unexpected error (a Redis address, a stack detail) is for the log, never for the caller.
  app.onError((err, c) => {
    log?.warn("http route failed", { path: c.req.path, err });
    return c.json(errorBody("internal", "internal error"), 500);
  });
  return app;
}

/** The unauthenticated /metrics listener for Fly.io's scraper (WSGATE_METRICS_PORT). */
export function createMetricsApp(metrics: Registry) {
  const app = new Hono();
  app.get("/metrics", async (c) => c.text(await metrics.metrics(), 200, { "content-type": metrics.contentType }));
  return app;
}
