// Entry point: `bun run start`. Bun serves the default export (PROTOCOL §1, §7).
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { createLogger } from "./log.ts";
import { createServer, type WsgateServer } from "./server.ts";

let config: Config;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`wsgate: invalid configuration: ${err.variable}: ${err.reason}`);
    process.exit(2);
  }
  throw err;
}

const log = createLogger(config.logLevel, { gateway: config.gatewayId, region: config.region });
// Bun announces a default-exported server with console.debug ("Started server: …"); stdout is JSON lines only.
console.debug = (...args: unknown[]) => log.debug(args.map(String).join(" "));
if (config.auth === "none")
  log.warn("DEV MODE: WSGATE_AUTH=none trusts ?user=<id> from anyone; set WSGATE_JWT_SECRET or WSGATE_JWKS_URL before exposing this gateway");

let srv: WsgateServer;
try {
  srv = await createServer(config, { log });
} catch (err) {
  log.error("start-up failed", { err });
  process.exit(1);
}

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info("shutdown", { signal });
  try {
    await srv.gateway.drain();
  } catch (err) {
    log.error("drain failed", { err });
  }
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

log.info("listening", { host: config.host, port: config.port, mode: config.redis ? "cluster" : "single", auth: config.auth });

// No `stop` property here: Bun treats an exported object with one as something else and exits (#26747).
export default {
  port: config.port,
  hostname: config.host,
  // Production error pages, never the development ones.
  development: false,
  fetch: srv.fetch,
  websocket: srv.websocket,
};
