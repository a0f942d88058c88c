// Every Redis key and channel, in one place. Per-user and per-room names carry a {hash tag} so the
// send path's script (history + publish of one recipient) stays within one slot on Redis Cluster.
export const PREFIX = "wsg:";
export const keys = {
  history: (user: string) => `wsg:h:{${user}}`,
  historyMeta: (user: string) => `wsg:hm:{${user}}`,
  presence: (user: string) => `wsg:p:{${user}}`,
  roomMembers: (room: string) => `wsg:rm:{${room}}`,
  gateways: "wsg:gateways",
  gatewayInfo: (inst: string) => `wsg:gi:${inst}`,
  gatewayConns: (inst: string) => `wsg:gc:${inst}`,
  gatewayRooms: (inst: string) => `wsg:gr:${inst}`,
  /** Set by whoever reaps an instance: its users' leave events went out, so a comeback owes join events. */
  reaped: (inst: string) => `wsg:reaped:${inst}`,
};
export const channels = {
  user: (user: string) => `wsg:u:{${user}}`,
  room: (room: string) => `wsg:r:{${room}}`,
  broadcast: "wsg:b",
};
// Channel name → id without allocating a regexp match: both prefixes are 7 chars and end in "{".
export const USER_CH = "wsg:u:{";
export const ROOM_CH = "wsg:r:{";
