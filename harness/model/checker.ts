// The model's own connections, one per gateway, that ask the cluster what it thinks (presence) after the
// chaos. A checker is not a user under test: on a starved machine it can be closed 4002 like any idle client
// (soak seed 3023 lost the one on gateway 0 and reported two violations about itself). Losing it is noted and
// it is reconnected and asked again; only a gateway that cannot take or answer it at all is a finding.
import { ModelConn, type Frame, type Reply } from "./client.ts";
import type { World } from "./world.ts";

export const CHECKER = "zz-checker";
const CONNECT_ATTEMPTS = 3;
const WELCOME_MS = 10_000;
const REQUEST_MS = 5_000;

export class Checkers {
  private readonly conns: (ModelConn | null)[];
  /** What happened to the checkers (closes, reconnects): printed with the round, never a violation. */
  readonly notes: string[] = [];

  constructor(
    private readonly world: World,
    private readonly token: string,
  ) {
    this.conns = world.gws.map(() => null);
  }

  /** An open checker on gateway i, reconnected if the last one was closed; null if none could connect. */
  async get(i: number): Promise<ModelConn | null> {
    const cur = this.conns[i];
    if (cur?.open) return cur;
    if (cur?.closed) this.notes.push(`checker on gateway ${i} was closed ${cur.closed.code}; reconnecting`);
    for (let attempt = 0; attempt < CONNECT_ATTEMPTS; attempt++) {
      const c = new ModelConn(CHECKER, i, `${this.world.wsUrl(i)}?token=${this.token}`, performance.now(), undefined);
      this.conns[i] = c;
      if (await c.welcomed(WELCOME_MS)) return c;
      c.close();
      this.notes.push(`checker on gateway ${i}: connect attempt ${attempt + 1} failed`);
    }
    this.conns[i] = null;
    return null;
  }

  /** True when gateway i holds an open checker now (it counts in that gateway's /stats). */
  isOpen(i: number): boolean {
    return this.conns[i]?.open ?? false;
  }

  /**
   * Asks gateway i; a checker closed while it waited is reconnected and asked again. Returns the reply, or a
   * reason there is none (no connection, a timeout on an open connection, closed twice).
   */
  async ask(i: number, frame: Frame): Promise<Reply | string> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const c = await this.get(i);
      if (!c) return `checker could not connect after ${CONNECT_ATTEMPTS} attempts`;
      const rep = await c.request(frame, REQUEST_MS).reply;
      if (rep && rep.f.type !== "__timeout__") return rep;
      if (c.open) return `no reply within ${REQUEST_MS} ms on an open connection`;
    }
    return "checker closed twice while asking";
  }

  closeAll() {
    for (const c of this.conns) c?.close();
  }
}
