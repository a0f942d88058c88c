// Prometheus exposition via prom-client, on a registry of this gateway's own (no global default registry).
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { GatewayStatus } from "./gateway/status.ts";

export function createMetrics(status: GatewayStatus, redis?: { waitTimeouts: number }): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ gateway: status.id, region: status.region });
  collectDefaultMetrics({ register: registry });
  const s = status.counters;
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
  // Counters mirror our plain fields at scrape time, so the hot path never touches prom-client.
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  gauge("wsgate_connections", "Open WebSocket connections", () => status.connections());
  gauge("wsgate_users", "Distinct users connected here", () => status.users());
  gauge("wsgate_rooms", "Rooms with at least one local member", () => status.rooms());
  gauge("wsgate_draining", "1 while draining", () => (status.isDraining() ? 1 : 0));
  counter("wsgate_frames_in_total", "Client frames received", () => s.framesIn);
  counter("wsgate_frames_out_total", "Frames sent to clients", () => s.framesOut);
  counter("wsgate_messages_routed_total", "Messages routed (one per recipient user or room)", () => s.messagesRouted);
  counter("wsgate_connections_opened_total", "Connections accepted", () => s.connectionsOpened);
  counter("wsgate_replayed_total", "History frames replayed on resume", () => s.replayed);
  if (redis)
    counter("wsgate_redis_wait_timeouts_total", "Direct messages refused with `unavailable` because WAIT saw too few replicas in time", () => redis.waitTimeouts);
  const errors = new Counter({
    name: "wsgate_errors_total",
    help: "Error frames and refusals by code",
    labelNames: ["code"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [code, n] of Object.entries(s.errors)) this.inc({ code }, n);
    },
  });
  void errors;
  return registry;
}
