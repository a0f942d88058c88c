// The Broker/Presence contract against the in-memory backends (single-node mode). The Redis run reuses
// backendContract from ./helpers/backend-contract.ts with { shared: true }.
import { MemoryBroker } from "../src/backends/memory/broker.ts";
import { MemoryPresence } from "../src/backends/memory/presence.ts";
import { backendContract } from "./helpers/backend-contract.ts";

backendContract("memory", async (o) => ({
  broker: new MemoryBroker({ historySize: o.historySize, historyTtlS: o.historyTtlS }),
  presence: new MemoryPresence({ id: o.gatewayId, region: o.region, started: o.started }),
}));
