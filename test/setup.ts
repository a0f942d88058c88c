// Preloaded by bunfig.toml for every test file: whatever a file left running is stopped when it ends.
import { afterAll } from "bun:test";
import { killStrayGateways } from "./helpers/gateway.ts";

afterAll(() => {
  killStrayGateways();
});
