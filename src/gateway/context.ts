// What every part of one gateway shares, built once by createGateway and passed in (no module state).
import type { Broker, ConnRef, History, Presence } from "../backends/types.ts";
import type { Config } from "../config.ts";
import type { Conn, Connections } from "../connections.ts";
import type { Logger } from "../log.ts";
import type { Stats } from "../stats.ts";
import type { Ticks } from "../ticks.ts";

export interface GatewayContext {
  readonly config: Config;
  readonly broker: Broker;
  readonly presence: Presence;
  /** null with history off. */
  readonly history: History | null;
  readonly log: Logger;
  readonly now: () => number;
  readonly stats: Stats;
  /** The local registry: conn ↔ user ↔ room. */
  readonly conns: Connections;
  readonly started: number;
  /** The periodic jobs' shared timer (one wake-up for all of them). */
  readonly ticks: Ticks;
}

/** A client whose unsent bytes pass this is closed 4029: at least 1 MiB, or 16 maximal frames. */
const MIN_SLOW_BYTES = 1 << 20;
const SLOW_FRAMES = 16;
export const slowConsumerBytes = (config: Config) => Math.max(MIN_SLOW_BYTES, config.maxPayload * SLOW_FRAMES);

/** Rate-limit bucket size: two seconds' worth of frames. */
export const rateBurst = (config: Config) => config.rate * 2;

export function connRef(c: Conn): ConnRef {
  return { conn: c.id, user: c.user, since: c.since };
}
