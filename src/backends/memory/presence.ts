// Single-node presence: this gateway is the whole cluster, so its own state is the truth.
import type { BuildInfo } from "../../version.ts";
import type { ConnInfo, ConnRef, GatewayInfo, LocalState, Presence, UserPresence } from "../types.ts";

/** How long a removal is remembered to refuse an older write that arrives after it. */
const TOMBSTONE_MS = 60_000;

export class MemoryPresence implements Presence {
  private readonly conns = new Map<string, Map<string, ConnRef>>();
  private readonly rooms = new Map<string, Set<string>>();
  /** "room user" -> the newest ticket applied (members) or the leave's ticket and when (tombstones). */
  private readonly applied = new Map<string, { ticket: number; at: number | null }>();
  /** Closed connections and when: a registration that arrives after its removal never lands. */
  private readonly closed = new Map<string, number>();
  private tickets = 0;
  private leaves = 0;
  private local: LocalState | null = null;

  constructor(private readonly self: { id: string; region: string; started: number; build?: BuildInfo }, private readonly now: () => number = Date.now) {}

  async start(local: LocalState) {
    this.local = local;
  }
  async stop() {
    this.conns.clear();
    this.rooms.clear();
    this.applied.clear();
    this.closed.clear();
  }

  async connect(c: ConnRef) {
    if (this.closed.has(c.conn)) return;
    let m = this.conns.get(c.user);
    if (!m) this.conns.set(c.user, (m = new Map()));
    m.set(c.conn, c);
  }
  async disconnect(c: ConnRef) {
    this.closed.set(c.conn, this.now());
    if (this.closed.size % 1024 === 0) this.sweep(this.closed, (at) => at);
    const m = this.conns.get(c.user);
    if (!m) return;
    m.delete(c.conn);
    if (m.size === 0) this.conns.delete(c.user);
  }

  ticket() {
    return ++this.tickets;
  }

  /** False when a newer decision for (room, user) was applied already; records `ticket` otherwise. */
  private order(room: string, user: string, ticket: number, left: boolean) {
    const k = `${room} ${user}`;
    if ((this.applied.get(k)?.ticket ?? 0) >= ticket) return false;
    this.applied.set(k, { ticket, at: left ? this.now() : null });
    if (left && ++this.leaves % 1024 === 0) this.sweep(this.applied, (v) => v.at);
    return true;
  }

  private sweep<V>(m: Map<string, V>, at: (v: V) => number | null) {
    const old = this.now() - TOMBSTONE_MS;
    for (const [k, v] of m) {
      const t = at(v);
      if (t !== null && t < old) m.delete(k);
    }
  }

  /** One process: the gateway publishes events in the order it decides them. */
  readonly announces = false;

  async joinRoom(room: string, user: string, ticket = this.ticket()) {
    if (!this.order(room, user, ticket, false)) return false;
    let s = this.rooms.get(room);
    if (!s) this.rooms.set(room, (s = new Set()));
    const before = s.size;
    s.add(user);
    return s.size > before;
  }
  async leaveRoom(room: string, user: string, ticket = this.ticket()) {
    if (!this.order(room, user, ticket, true)) return false;
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
        ...(this.self.build ? { version: this.self.build.version, build: this.self.build.build } : {}),
      },
    ];
  }
}
