// Bounded polling and "nothing else arrived" checks for tests against real gateways.
import type { Frame, TestClient } from "./client.ts";

/** Polls fn until it returns a value that passes ok, or throws with the last value after timeoutMs. */
export async function eventually<T>(fn: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 3000, stepMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T = await fn();
  while (!ok(last)) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(last)}`);
    await Bun.sleep(stepMs);
    last = await fn();
  }
  return last;
}

let fenceSeq = 0;

/**
 * Everything the client received that no waiter took, up to now: sends an application ping and waits for its pong,
 * which the gateway writes after every frame it already queued for this connection.
 */
export async function received(c: TestClient, timeoutMs = 3000): Promise<Frame[]> {
  const id = `fence-${++fenceSeq}`;
  c.send({ type: "ping", id });
  await c.next((f) => f.type === "pong" && f.id === id, timeoutMs);
  return c.frames.splice(0);
}
