// WebSocket close codes (PROTOCOL §4): one table for the gateway and its clients.
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
