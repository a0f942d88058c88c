// The real processes under test: one redis-server and N gateways on loopback, and the faults done to them.
import { readFileSync } from "node:fs";
import { startGateway, type GatewayProc } from "../../test/helpers/gateway.ts";
import { freePort } from "../ports.ts";
import { startRedis, type RedisServer } from "../redis.ts";

// "gateway-stall" SIGSTOPs one gateway for longer than the presence TTL: what CPU starvation does to it (its
// lease lapses, survivors reap it and announce leaves, then it wakes up and must come back).
export type FaultKind = "kill9" | "drain" | "redis-restart" | "redis-stall" | "gateway-stall";

export interface FaultRecord {
  kind: FaultKind;
  gateway?: number;
  start: number;
  end: number;
}

export interface WorldOptions {
  gateways: number;
  heartbeatMs: number;
  presenceTtlMs: number;
  /** Extra gateway environment. */
  env?: Record<string, string>;
}

export class World {
  redis!: RedisServer;
  gws: (GatewayProc | null)[] = [];
  ports: number[] = [];
  readonly faults: FaultRecord[] = [];
  /** Gateways that exited without a fault asking them to: bad input must never take one down. */
  readonly crashes: { gateway: number; code: number | null; output: string }[] = [];
  private restarts = 0;

  constructor(readonly o: WorldOptions) {}

  gatewayEnv(i: number): Record<string, string> {
    return {
      REDIS_URL: this.redis.url,
      PORT: String(this.ports[i]),
      WSGATE_GATEWAY_ID: `m${i}-${this.restarts}`,
      WSGATE_HEARTBEAT_MS: String(this.o.heartbeatMs),
      WSGATE_PRESENCE_TTL_MS: String(this.o.presenceTtlMs),
      WSGATE_DRAIN_MS: "300",
      WSGATE_RATE: "1000",
      WSGATE_HISTORY_SIZE: "100000",
      WSGATE_HISTORY_TTL_S: "3600",
      WSGATE_HISTORY_MAX_BYTES: String(64 * 1024 * 1024),
      ...this.o.env,
    };
  }

  async start() {
    this.redis = await startRedis();
    // One port per gateway slot, kept across restarts so clients keep one address per slot.
    for (let i = 0; i < this.o.gateways; i++) this.ports.push(await freePort());
    this.gws = await Promise.all(this.ports.map((_, i) => this.startGw(i)));
  }

  private async startGw(i: number) {
    this.restarts++;
    const gw = await startGateway(this.gatewayEnv(i));
    void gw.proc.exited.then((code) => {
      // A fault nulls the slot before it stops the process; a stop() empties the list.
      if (this.gws[i] === gw) this.crashes.push({ gateway: i, code, output: gw.output().slice(-2000) });
    });
    return gw;
  }

  up(i: number): boolean {
    return this.gws[i] !== null;
  }

  wsUrl(i: number) {
    return `ws://127.0.0.1:${this.ports[i]}/ws`;
  }

  httpUrl(i: number) {
    return `http://127.0.0.1:${this.ports[i]}`;
  }

  async fault(kind: FaultKind, gateway: number, now: () => number): Promise<FaultRecord> {
    const rec: FaultRecord = { kind, gateway: kind === "kill9" || kind === "drain" || kind === "gateway-stall" ? gateway : undefined, start: now(), end: Infinity };
    this.faults.push(rec);
    switch (kind) {
      case "kill9":
      case "drain": {
        const gw = this.gws[gateway]!;
        this.gws[gateway] = null;
        await gw.kill(kind === "kill9" ? "SIGKILL" : "SIGTERM");
        await Bun.sleep(200);
        this.gws[gateway] = await this.restartGw(gateway);
        break;
      }
      case "redis-restart":
        await this.redis.stop("SIGKILL");
        await Bun.sleep(200);
        await this.redis.start();
        break;
      case "gateway-stall": {
        const gw = this.gws[gateway];
        if (!gw) break;
        process.kill(gw.proc.pid, "SIGSTOP");
        await Bun.sleep(this.o.presenceTtlMs + 1000);
        process.kill(gw.proc.pid, "SIGCONT");
        break;
      }
      case "redis-stall": {
        const pid = this.redis.pid();
        process.kill(pid, "SIGSTOP");
        await Bun.sleep(2000);
        process.kill(pid, "SIGCONT");
        break;
      }
    }
    rec.end = now();
    return rec;
  }

  private async restartGw(i: number): Promise<GatewayProc> {
    // The port may be briefly held by the dying process; retry a few times.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.startGw(i);
      } catch (err) {
        // A starved machine can take long to bring a gateway up (its /ready waits for Redis to answer).
        if (attempt >= 9) throw err;
        await Bun.sleep(1000);
      }
    }
  }

  /** Resident memory of each live gateway, in bytes. */
  rss(): (number | null)[] {
    return this.gws.map((g) => {
      if (!g) return null;
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${g.proc.pid}/status`, "utf8"));
        return m ? Number(m[1]) * 1024 : null;
      } catch {
        return null;
      }
    });
  }

  async stop() {
    const gws = this.gws;
    this.gws = [];
    for (const g of gws) await g?.kill("SIGKILL");
    // A stalled redis-server must be resumed before it can be killed cleanly.
    try {
      process.kill(this.redis.pid(), "SIGCONT");
    } catch {}
    await this.redis?.stop("SIGKILL");
  }
}
