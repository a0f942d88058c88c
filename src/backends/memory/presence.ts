// Single-node presence: this gateway is the whole cluster, so its own state is the truth.
import type { ConnInfo, ConnRef, GatewayInfo, LocalState, Presence, UserPresence } from "../types.ts";

export class MemoryPresence implements Presence {
  private readonly conns = new Map<string, Map<string, ConnRef>>();
  private readonly rooms = new Map<string, Set<string>>();
  private local: LocalState | null = null;

  constructor(private readonly self: { id: string; region: string; started: number }, private readonly now: () => number = Date.now) {}

  async start(local: LocalState) {
    this.local = local;
  }
  async stop() {
    this.conns.clear();
    this.rooms.clear();
  }

  async connect(c: ConnRef) {
    let m = this.conns.get(c.user);
    if (!m) this.conns.set(c.user, (m = new Map()));
    m.set(c.conn, c);
  }
  async disconnect(c: ConnRef) {
    const m = this.conns.get(c.user);
    if (!m) return;
    m.delete(c.conn);
    if (m.size === 0) this.conns.delete(c.user);
  }

  async joinRoom(room: string, user: string) {
    let s = this.rooms.get(room);
    if (!s) this.rooms.set(room, (s = new Set()));
    const before = s.size;
    s.add(user);
    return s.size > before;
  }
  async leaveRoom(room: string, user: string) {
    const s = this.rooms.get(room);
    if (!s || !s.delete(user)) return false;
    if (s.size === 0) this.rooms.delete(room);
    return true;
  }

  async users(users: readonly string[]) {
    // No prototype: a user named __proto__ must be an ordinary key.
    const out: Record<string, UserPresence> = Object.create(null);
    for (const u of users) {
      const n = this.conns.get(u)?.size ?? 0;
      out[u] = { online: n > 0, connections: n, regions: n > 0 ? [this.self.region] : [] };
    }
    return out;
  }
  async roomUsers(room: string) {
    return [...(this.rooms.get(room) ?? [])].sort();
  }
  async connections(user: string): Promise<ConnInfo[]> {
    return [...(this.conns.get(user)?.values() ?? [])].map((c) => ({
      conn: c.conn,
      gateway: this.self.id,
      region: this.self.region,
      since: c.since,
    }));
  }
  async gateways(): Promise<GatewayInfo[]> {
    const c = this.local?.counts() ?? { connections: 0, users: 0 };
    return [
      {
        id: this.self.id,
        region: this.self.region,
        connections: c.connections,
        users: c.users,
        started: this.self.started,
        last_seen: this.now(),
      },
    ];
  }
}
