// The test harness's port picker (harness/ports.ts): suites start several servers at once, each asking for a port
// before any binds, so the picker itself must not hand the same port out twice (a full-suite run lost a whole
// file to EADDRINUSE when two of seven parallel gateways drew one port).
import { expect, test } from "bun:test";
import { freePort } from "../harness/ports.ts";

test("parallel callers never get the same port, and each is below the ephemeral range", async () => {
  // 2,000 draws from ~12,700 ports: without the memory of what was handed out, repeats are all but certain.
  const ports = await Promise.all(Array.from({ length: 2000 }, () => freePort()));
  expect(new Set(ports).size).toBe(ports.length);
  expect(ports.every((p) => p >= 20000 && p < 32768)).toBe(true);
});
