// HTTP routes (PROTOCOL §6) on Hono: health, readiness, stats, metrics and the admin API.
import { createHash } from "node:crypto";
import { Hono, type Context, type MiddlewareHandler } from "hono";
import type { Registry } from "prom-client";
import { z } from "zod";
import { adminTokenMatches } from "./auth.ts";
import { RETRY_AFTER } from "./protocol/codes.ts";
import { ID_RE, MAX_TARGETS, ROOM_RE } from "./protocol/grammar.ts";
import { dataSchema as data, userIdSchema as userId } from "./protocol/schemas.ts";
import type { Config } from "./config.ts";
import type { Commands } from "./gateway/commands.ts";
import type { GatewayStatus } from "./gateway/status.ts";
import type { Logger } from "./log.ts";
import { buildInfo, type BuildInfo } from "./version.ts";

const sendBody = z.object({
  to: z.union([userId, z.array(userId).min(1, "must name at least one user").max(MAX_TARGETS, `at most ${MAX_TARGETS} users`)]),
  data,
});
const dataBody = z.object({ data });

const errorBody = (code: string, message: string) => ({ error: { code, message } });

/** Names an admin token in logs without revealing it: 8 hex chars of its SHA-256. */
export const tokenTag = (token: string) => createHash("sha256").update(token).digest("hex").slice(0, 8);

/** Any of the configured tokens (§8.1 rotation), each compared in constant time. */
function adminAuth(tokens: readonly string[]): MiddlewareHandler {
  return async (c, next) => {
    // No token: the admin surface does not exist (never open by accident).
    if (tokens.length === 0) return c.json(errorBody("not_found", "not found"), 404);
    const m = /^Bearer\s+(.+)$/i.exec(c.req.header("authorization") ?? "");
    if (!m || !adminTokenMatches(m[1]!, tokens))
      return c.json(errorBody("unauthorized", "admin bearer token missing or wrong"), 401, { "www-authenticate": "Bearer" });
    c.set("adminTag" as never, tokenTag(m[1]!) as never);
    await next();
  };
}

async function body<T>(c: Context, schema: z.ZodType<T>): Promise<{ ok: true; value: T } | { ok: false; res: Response }> {
  let raw: unknown;
  try {
    raw = await c.req.json();
  } catch {
    return { ok: false, res: c.json(errorBody("bad_request", "body must be JSON"), 400) };
  }
  const r = schema.safeParse(raw);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0]!;
  const field = issue.path.join(".") || "body";
  return { ok: false, res: c.json(errorBody("bad_request", `${field}: ${issue.message}`), 400) };
}

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

/** Routes that need the cluster store answer 503 + Retry-After when it fails, never a 500. */
const needsStore =
  (h: (c: Context) => Promise<Response>) =>
  async (c: Context): Promise<Response> => {
    try {
      return await h(c);
    } catch (err) {
      return c.json(errorBody("unavailable", `cluster store unreachable: ${(err as Error).message}`), 503, { "retry-after": RETRY_AFTER.store });
    }
  };

/** GET /stats of this gateway. */
function ownStats(config: Config, status: GatewayStatus, build: BuildInfo) {
  const stats = status.counters;
  return {
    id: config.gatewayId,
    region: config.region,
    version: build.version,
    build: build.build,
    mode: status.mode,
    uptime: Math.floor((status.now() - status.started) / 1000),
    connections: status.connections(),
    users: status.users(),
    rooms: status.rooms(),
    frames_in: stats.framesIn,
    frames_out: stats.framesOut,
    messages_routed: stats.messagesRouted,
    errors: stats.errors,
    redis: status.backendState(),
  };
}

/** GET /stats: this gateway's counters, or (?gateway=<id>) another's. */
function statsRoute(config: HttpDeps["config"], status: HttpDeps["status"], build: ReturnType<typeof buildInfo>, commands: HttpDeps["commands"]) {
  return async (c: Context) => {
    const target = c.req.query("gateway");
    if (target === undefined || target === config.gatewayId) return c.json(ownStats(config, status, build));
    // The id goes into a header (fly-replay) and a registry lookup: only the gateway id grammar passes.
    if (!ID_RE.test(target)) return c.json(errorBody("bad_request", "gateway: must be a gateway id: 1-128 chars of [A-Za-z0-9_.:@-]"), 400);
    // Another machine's stats: on Fly.io its proxy replays the request there; elsewhere the registry answers.
    if (config.flyMachineId) return c.body(null, 200, { "fly-replay": `instance=${target}` });
    return needsStore(async () => {
      const row = (await commands.gateways()).find((g) => g.id === target);
      if (!row) return c.json(errorBody("not_found", `no live gateway ${target}`), 404);
      return c.json({ ...row, note: `summary from the cluster registry; GET /stats on ${target} itself for its counters` });
    })(c);
  };
}

export function createHttpApp({ config, commands, status, metrics, build = buildInfo(config.build), log, extra }: HttpDeps) {
  const app = new Hono();
  const admin = adminAuth(config.adminTokens);
  /** One line per admin action that reaches users: which route, at whom, which admin token (by tag). */
  const audit = (c: Context, target: string | string[]) =>
    log?.info("admin", { route: `${c.req.method} ${c.req.routePath}`, target, admin: c.get("adminTag" as never) as string });

  app.get("/health", (c) => c.json({ status: "ok", version: build.version, build: build.build }));
  app.get("/ready", (c) => {
    if (status.isDraining()) return c.json({ status: "draining" }, 503);
    if (status.isRedisLost()) return c.json({ status: "redis_lost" }, 503);
    if (status.backendState() === "down") return c.json({ status: "redis_down" }, 503);
    return c.json({ status: "ready" });
  });

  app.get("/stats", admin, statsRoute(config, status, build, commands));

  app.get("/metrics", admin, async (c) => c.text(await metrics.metrics(), 200, { "content-type": metrics.contentType }));

  app.get("/v1/gateways", admin, needsStore(async (c) => c.json({ gateways: await commands.gateways() })));

  app.get("/v1/presence/:user", admin, needsStore(async (c) => {
    const user = c.req.param("user")!;
    if (!ID_RE.test(user)) return c.json(errorBody("bad_request", "user: must be a user id"), 400);
    const connections = await commands.connections(user);
    return c.json({ user, online: connections.length > 0, connections });
  }));

  app.post("/v1/send", admin, needsStore(async (c) => {
    const b = await body(c, sendBody);
    if (!b.ok) return b.res;
    const to = typeof b.value.to === "string" ? [b.value.to] : [...new Set(b.value.to)];
    audit(c, to);
    const offsets = await commands.send(null, to, JSON.stringify(b.value.data));
    return c.json({ offsets: offsets ?? {} }, 202);
  }));

  app.post("/v1/rooms/:room/publish", admin, needsStore(async (c) => {
    const room = c.req.param("room")!;
    if (!ROOM_RE.test(room)) return c.json(errorBody("bad_request", "room: must be a room name"), 400);
    const b = await body(c, dataBody);
    if (!b.ok) return b.res;
    audit(c, room);
    await commands.publish(null, room, JSON.stringify(b.value.data));
    return c.json({}, 202);
  }));

  app.post("/v1/broadcast", admin, needsStore(async (c) => {
    const b = await body(c, dataBody);
    if (!b.ok) return b.res;
    audit(c, "*");
    await commands.broadcast(JSON.stringify(b.value.data));
    return c.json({}, 202);
  }));

  app.delete("/v1/users/:user/connections", admin, needsStore(async (c) => {
    const user = c.req.param("user")!;
    if (!ID_RE.test(user)) return c.json(errorBody("bad_request", "user: must be a user id"), 400);
    audit(c, user);
    return c.json({ closed: await commands.kick(user) });
  }));

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
