// What the HTTP side may read of a gateway: counts, counters and state, never its registry or sockets.
import type { Stats } from "../stats.ts";

export interface GatewayStatus {
  readonly id: string;
  readonly region: string;
  readonly mode: "cluster" | "single";
  /** ms since epoch, on the gateway's clock. */
  readonly started: number;
  /** The gateway's clock. */
  now(): number;
  connections(): number;
  users(): number;
  rooms(): number;
  isDraining(): boolean;
  /** Cut from Redis long enough to have sent its clients elsewhere (§8.4). */
  isRedisLost(): boolean;
  /** "none" in single-node mode. */
  backendState(): "none" | "ready" | "down";
  /** Counters since start, read-only. */
  readonly counters: Readonly<Omit<Stats, "error">>;
}
