// Prometheus exposition via prom-client, on a registry of this gateway's own (no global default registry).
// Label names avoid `region`, `instance` and `app`: Fly.io's scraper sets those itself and would overwrite ours.
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from "prom-client";
import type { GatewayStatus } from "../gateway/status.ts";
import { LATENCY_BOUNDS_S, type LatencyHistogram } from "../stats.ts";
import type { BuildInfo } from "../version.ts";

/** How often the event-loop lag is sampled (see createMetrics). */
const LAG_SAMPLE_MS = 1000;

export interface MetricsOptions {
  build?: BuildInfo;
  redis?: { waitTimeouts: number };
}

/** prom-client's exposition of a histogram we keep ourselves (the hot path only bumps an array slot). */
function histogramMetric(name: string, help: string, h: LatencyHistogram): Metric {
  const get = async () => {
    let cumulative = 0;
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = LATENCY_BOUNDS_S.map((le, i) => {
      cumulative += h.counts[i]!;
      return { labels: { le }, value: cumulative, metricName: `${name}_bucket` };
    });
    values.push({ labels: { le: "+Inf" }, value: h.count, metricName: `${name}_bucket` });
    return {
      name,
      help,
      type: "histogram",
      aggregator: "sum",
      values: [...values, { labels: {}, value: h.sum, metricName: `${name}_sum` }, { labels: {}, value: h.count, metricName: `${name}_count` }],
    };
  };
  return { name, help, type: "histogram", aggregator: "sum", get, reset() {}, labelNames: ["le"] } as unknown as Metric;
}

export function createMetrics(status: GatewayStatus, opts: MetricsOptions | { waitTimeouts: number } = {}): Registry {
  // Older callers passed the Redis counters alone.
  const o: MetricsOptions = "waitTimeouts" in opts ? { redis: opts } : opts;
  const registry = new Registry();
  registry.setDefaultLabels({ gateway: status.id, gateway_region: status.region });
  // Event-loop lag sampled once a second, not prom-client's every 10 ms: an idle gateway is charged per wake-up
  // (the 10 ms timer alone was 0.6 % of a core, 100 ms still ~0.1 %). A CPU-bound process (what the lag alert,
  // p99 > 0.1 s, is for) is late on most samples; a single shorter stall shows only if it covers a sample.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: LAG_SAMPLE_MS });
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
  const byLabel = (name: string, help: string, label: string, read: () => Record<string | number, number>) =>
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        this.reset();
        for (const [k, n] of Object.entries(read())) this.inc({ [label]: k }, n);
      },
    });
  if (o.build)
    new Gauge({ name: "wsgate_build_info", help: "1, labelled with the version and build this gateway runs", labelNames: ["version", "build"], registers: [registry] }).set(
      { version: o.build.version, build: o.build.build },
      1,
    );
  gauge("wsgate_connections", "Open WebSocket connections", () => status.connections());
  gauge("wsgate_users", "Distinct users connected here", () => status.users());
  gauge("wsgate_rooms", "Rooms with at least one local member", () => status.rooms());
  gauge("wsgate_draining", "1 while draining", () => (status.isDraining() ? 1 : 0));
  if (status.mode === "cluster") gauge("wsgate_redis_up", "1 while Redis answers, 0 while it is unreachable", () => (status.backendState() === "down" ? 0 : 1));
  counter("wsgate_frames_in_total", "Client frames received", () => s.framesIn);
  counter("wsgate_frames_out_total", "Frames sent to clients", () => s.framesOut);
  counter("wsgate_frames_dropped_total", "Frames the socket dropped instead of sending; each closed its connection 4029", () => s.framesDropped);
  counter("wsgate_messages_routed_total", "Messages routed (one per recipient user or room)", () => s.messagesRouted);
  counter("wsgate_connections_opened_total", "Connections accepted", () => s.connectionsOpened);
  counter("wsgate_replayed_total", "History frames replayed on resume", () => s.replayed);
  if (o.redis) {
    const redis = o.redis;
    counter("wsgate_redis_wait_timeouts_total", "Direct messages refused with `unavailable` because WAIT saw too few replicas in time", () => redis.waitTimeouts);
  }
  byLabel("wsgate_errors_total", "Error frames and refusals by code", "code", () => s.errors);
  byLabel("wsgate_frames_refused_total", "Client frames answered with an error frame, by error code", "code", () => s.refused);
  byLabel("wsgate_closes_total", "Closed WebSocket connections by close code", "code", () => s.closes);
  registry.registerMetric(
    histogramMetric("wsgate_delivery_seconds", "Age of a message (its ts) when written to local recipients, once per message and gateway", s.delivery),
  );
  return registry;
}
