// The delay proxy: delay per direction (measured loosely: a shared machine only adds time), byte
// order under jitter (exact), stall and reset partitions, and heal.
import { afterAll, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { startDelayProxy, type DelayProxy } from "../harness/delay-proxy.ts";

/**
 * An echo server that also records what it received. It keeps what the kernel did not take and writes it on
 * `drain`: on a loaded machine a partial write is common, and dropping the rest would fail the test, not the proxy.
 */
function echoServer(): { listener: TCPSocketListener<Uint8Array[]>; received: () => Uint8Array; conns: () => number } {
  const chunks: Uint8Array[] = [];
  let conns = 0;
  const flush = (s: { write(d: Uint8Array): number; data: Uint8Array[] }) => {
    while (s.data.length) {
      const d = s.data[0]!;
      const n = s.write(d);
      if (n < d.length) { s.data[0] = d.subarray(Math.max(0, n)); return; }
      s.data.shift();
    }
  };
  const listener = Bun.listen<Uint8Array[]>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) { conns++; s.data = []; },
      data(s, d) {
        const copy = new Uint8Array(d);
        chunks.push(copy);
        s.data.push(copy);
        flush(s);
      },
      drain(s) { flush(s); },
      close() { conns--; },
    },
  });
  return { listener, received: () => Buffer.concat(chunks), conns: () => conns };
}

interface Client { sock: Socket<undefined>; got: () => Uint8Array; closed: () => boolean; wait(n: number, ms: number): Promise<boolean> }

async function dial(port: number): Promise<Client> {
  const chunks: Uint8Array[] = [];
  let closed = false;
  let wake: (() => void) | null = null;
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) { chunks.push(new Uint8Array(d)); wake?.(); },
      close() { closed = true; wake?.(); },
      error() { closed = true; wake?.(); },
    },
  });
  const got = () => Buffer.concat(chunks);
  return {
    sock,
    got,
    closed: () => closed,
    async wait(n, ms) {
      const deadline = Date.now() + ms;
      while (got().length < n && !closed && Date.now() < deadline) {
        await new Promise<void>((r) => { const t = setTimeout(r, 20); wake = () => { clearTimeout(t); r(); }; });
      }
      return got().length >= n;
    },
  };
}

const cleanup: (() => void)[] = [];
afterAll(() => { for (const f of cleanup) try { f(); } catch {} });

function setup(opts: Partial<Parameters<typeof startDelayProxy>[0]> = {}): { echo: ReturnType<typeof echoServer>; proxy: DelayProxy } {
  const echo = echoServer();
  const proxy = startDelayProxy({ target: { host: "127.0.0.1", port: echo.listener.port }, ...opts });
  cleanup.push(() => proxy.close(), () => echo.listener.stop(true));
  return { echo, proxy };
}

describe("delay proxy", () => {
  test("adds the configured one-way delays (round trip ≥ up + down, not wildly more)", async () => {
    const { proxy } = setup({ upMs: 40, downMs: 60 });
    const c = await dial(proxy.port);
    const rtts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = c.got().length;
      const t0 = performance.now();
      c.sock.write(`ping${i}`);
      expect(await c.wait(before + 5, 5000)).toBe(true);
      rtts.push(performance.now() - t0);
    }
    const min = Math.min(...rtts);
    expect(min).toBeGreaterThanOrEqual(99);
    expect(min).toBeLessThan(100 + 400); // loose: a loaded machine only adds
    // Changed while running: applies to bytes from now on.
    proxy.set({ upMs: 0, downMs: 0 });
    const t0 = performance.now();
    const before = c.got().length;
    c.sock.write("fast");
    expect(await c.wait(before + 4, 5000)).toBe(true);
    expect(performance.now() - t0).toBeLessThan(90);
    expect(() => proxy.set({ upMs: -1 })).toThrow(RangeError);
    c.sock.end();
  });

  test("jitter delays but never reorders bytes", async () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const { echo, proxy } = setup({ upMs: 2, downMs: 2, jitterMs: 15, random });
    const c = await dial(proxy.port);
    const n = 300;
    let expected = "";
    for (let i = 0; i < n; i++) {
      const piece = `<${i}>`;
      expected += piece;
      c.sock.write(piece);
      if (i % 10 === 0) await Bun.sleep(1); // separate chunks, each with its own jitter draw
    }
    expect(await c.wait(expected.length, 10_000)).toBe(true);
    expect(new TextDecoder().decode(echo.received())).toBe(expected);
    expect(new TextDecoder().decode(c.got())).toBe(expected);
    expect(proxy.bytes()).toEqual({ up: expected.length, down: expected.length });
    c.sock.end();
  });

  test("stall holds bytes (and new links) until heal, then delivers them in order", async () => {
    const { echo, proxy } = setup();
    const c = await dial(proxy.port);
    c.sock.write("a");
    expect(await c.wait(1, 5000)).toBe(true);
    proxy.partition("stall");
    expect(proxy.state()).toBe("stall");
    c.sock.write("b");
    const late = await dial(proxy.port); // accepted locally, but nothing reaches the target
    late.sock.write("x");
    await Bun.sleep(300);
    expect(new TextDecoder().decode(c.got())).toBe("a");
    expect(late.got().length).toBe(0);
    expect(echo.conns()).toBe(1);
    expect(c.closed()).toBe(false);
    proxy.heal();
    expect(await c.wait(2, 5000)).toBe(true);
    expect(await late.wait(1, 5000)).toBe(true);
    expect(new TextDecoder().decode(c.got())).toBe("ab");
    expect(new TextDecoder().decode(late.got())).toBe("x");
    c.sock.end();
    late.sock.end();
  });

  test("reset closes every link and refuses new ones until heal", async () => {
    const { proxy } = setup({ upMs: 1, downMs: 1 });
    const c = await dial(proxy.port);
    c.sock.write("a");
    expect(await c.wait(1, 5000)).toBe(true);
    proxy.partition("reset");
    await c.wait(2, 2000);
    expect(c.closed()).toBe(true);
    const refused = await dial(proxy.port);
    refused.sock.write("y");
    await refused.wait(1, 2000);
    expect(refused.closed()).toBe(true);
    expect(refused.got().length).toBe(0);
    proxy.heal();
    const again = await dial(proxy.port);
    again.sock.write("z");
    expect(await again.wait(1, 5000)).toBe(true);
    expect(new TextDecoder().decode(again.got())).toBe("z");
    again.sock.end();
  });

  test("large transfers survive backpressure intact", async () => {
    const { proxy } = setup({ upMs: 1, downMs: 1 });
    const c = await dial(proxy.port);
    const big = new Uint8Array(4 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    let off = 0;
    // Write respecting our own backpressure too (bounded: 4 MB in 64 KB pieces).
    for (let i = 0; off < big.length && i < 100_000; i++) {
      const n = c.sock.write(big.subarray(off, off + 65536));
      off += n > 0 ? n : 0;
      if (n <= 0) await Bun.sleep(5);
    }
    expect(await c.wait(big.length, 20_000)).toBe(true);
    expect(Buffer.compare(Buffer.from(c.got()), Buffer.from(big))).toBe(0);
    c.sock.end();
  });
});
