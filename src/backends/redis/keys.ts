// Every Redis key and channel, in one place. Every name carries a {hash tag}: a user's keys share the slot of
// the user id, a room's the slot of the room name, a gateway instance's the slot of the instance id, so each
// script touches one slot on Redis Cluster (single Redis is a cluster of one slot owner: same names).
export const keys = {
  /**
   * Stream of direct messages, ids <epoch>-<seq>, one field b (frame head \x01 frame tail): see lua/append.lua.
   * Named wsg:hx since entries lost their byte count (c): histories written before start a new epoch instead of
   * being misread.
   */
  history: (user: string) => `wsg:hx:{${user}}`,
  /** Bytes of the history's big messages since its last byte check (lua/append.lua); expires on its own. */
  historyBytes: (user: string) => `wsg:hg:{${user}}`,
  /** Hash: conn -> entry naming the instance that holds it (see lua/entry.lua), plus tombstones. */
  presence: (user: string) => `wsg:p:{${user}}`,
  /** Hash: "<user> <process>" -> holder entry, "#<user>" -> live holders, "~<user>" -> leave announced. */
  roomMembers: (room: string) => `wsg:rm:{${room}}`,
  /** Set of instances that may still own keys: readers and reapers start here. Its own slot. */
  gateways: "wsg:gw:{gateways}",
  /** The instance's lease (a hash of its public info), alive while it exists: relative TTL, Redis's clock. */
  lease: (inst: string) => `wsg:gl:{${inst}}`,
  /** Index of the instance's connections (conn -> user), for reaping. */
  gatewayConns: (inst: string) => `wsg:gc:{${inst}}`,
  /** Index of the instance's room holdings ("<room> <user>" -> ticket), for reaping. */
  gatewayRooms: (inst: string) => `wsg:gr:{${inst}}`,
  /** Soft claim of a reaper on a dead instance (saves duplicate work; correctness does not depend on it). */
  reapClaim: (inst: string) => `wsg:gk:{${inst}}`,
};
export const channels = {
  user: (user: string) => `wsg:u:{${user}}`,
  room: (room: string) => `wsg:r:{${room}}`,
  broadcast: "wsg:b",
};
// Channel name → id without allocating a regexp match: both prefixes are 7 chars and end in "{".
export const USER_CH = "wsg:u:{";
export const ROOM_CH = "wsg:r:{";
