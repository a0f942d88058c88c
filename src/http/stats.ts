// GET /stats: this gateway's counters, or (?gateway=<id>) another's via fly-replay or the cluster registry.
import type { Context } from "hono";
import type { Config } from "../config.ts";
import type { Commands } from "../gateway/commands.ts";
import type { GatewayStatus } from "../gateway/status.ts";
import { ID_RE } from "../protocol/grammar.ts";
import type { BuildInfo } from "../version.ts";
import { errorBody, needsStore } from "./reply.ts";

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

export function statsRoute(config: Config, status: GatewayStatus, build: BuildInfo, commands: Commands) {
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
