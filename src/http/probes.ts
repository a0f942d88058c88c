// Unauthenticated probes: /health says the process answers, /ready says it should be sent traffic.
import type { Hono } from "hono";
import type { GatewayStatus } from "../gateway/status.ts";
import type { BuildInfo } from "../version.ts";

export function probeRoutes(app: Hono, status: GatewayStatus, build: BuildInfo): void {
  app.get("/health", (c) => c.json({ status: "ok", version: build.version, build: build.build }));
  app.get("/ready", (c) => {
    if (status.isDraining()) return c.json({ status: "draining" }, 503);
    if (status.isRedisLost()) return c.json({ status: "redis_lost" }, 503);
    if (status.backendState() === "down") return c.json({ status: "redis_down" }, 503);
    return c.json({ status: "ready" });
  });
}
