// Bun 1.4's TracingChannel has no `hasSubscribers`; ioredis 6 reads `hasSubscribers !== false` and so wraps
// every command in a traced promise with sanitised args (~4% of a gateway's CPU under load). Node's
// definition: any of the five tracing channels has a subscriber.
import dc from "node:diagnostics_channel";

export function patchTracingChannel(): void {
  const proto = Object.getPrototypeOf(dc.tracingChannel("wsgate:probe")) as object;
  if ("hasSubscribers" in proto) return;
  Object.defineProperty(proto, "hasSubscribers", {
    configurable: true,
    get(this: Record<string, { hasSubscribers?: boolean } | undefined>) {
      return ["start", "end", "asyncStart", "asyncEnd", "error"].some((k) => this[k]?.hasSubscribers === true);
    },
  });
}
