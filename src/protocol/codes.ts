// Error codes (PROTOCOL §3) and WebSocket close codes (§4): one table for the gateway and its clients.

export const ERROR_CODES = ["bad_request", "forbidden", "too_large", "too_many_rooms", "rate_limited", "unavailable", "internal", "unauthorized"] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Codes the gateway closes with. */
export const CLOSE = {
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  internal: 1011,
  tokenExpired: 4001,
  heartbeat: 4002,
  flood: 4008,
  replaced: 4009,
  slow: 4029,
} as const;

/** The code a client closes with when it gives up on a socket itself (no traffic, bad frame). */
export const CLIENT_ABANDON = 4000;

/** Retry-After seconds of a 503: a draining or full gateway at once (elsewhere), a store outage a little later. */
export const RETRY_AFTER = { busy: "1", store: "2" } as const;
