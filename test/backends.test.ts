// The Broker/History/Presence contract against the in-memory backends (single-node mode). The Redis run reuses
// backendContract from ./helpers/backend-contract.ts with { shared: true }.
import { MemoryBroker } from "../src/backends/memory/broker.ts";
import { MemoryHistory } from "../src/backends/memory/history.ts";
import { MemoryPresence } from "../src/backends/memory/presence.ts";
import { backendContract } from "./helpers/backend-contract.ts";

backendContract("memory", async (o) => {
  const history = o.historySize > 0 ? new MemoryHistory({ size: o.historySize, ttlMs: o.historyTtlS * 1000, maxBytes: o.historyMaxBytes }) : null;
  return {
    history,
    broker: new MemoryBroker(history),
    presence: new MemoryPresence({ id: o.gatewayId, region: o.region, started: o.started }),
  };
});
