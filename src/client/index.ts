// @wsgate/client: dependency-free SDK for browsers, Bun and Node 22+ (standard WebSocket).
export { WsgateClient, createClient } from "./client.ts";
export { UnauthorizedError, WsgateError } from "./errors.ts";
export { backoffDelay } from "./backoff.ts";
export { gatewayUrl } from "./url.ts";
export { OffsetTracker, parseOffset } from "./offsets.ts";
export type * from "./types.ts";
