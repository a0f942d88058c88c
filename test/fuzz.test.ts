// Bad inputs (issue 2 "Done when"): malformed JSON, wrong field types, unknown type, oversized and binary frames,
// broken WebSocket framing, and 2,000 frames of random bytes from one client while another pair keeps talking.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type Frame, type TestClient } from "./helpers/client.ts";
import { startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { OP, rawConnect } from "./helpers/rawws.ts";
import { received } from "./helpers/wait.ts";

/** Seeded so a failure can be replayed: the seed is in the test name. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);

let fast: GatewayProc; // rate high enough that every fuzz frame reaches the parser
let normal: GatewayProc; // default rate: a fuzzer gets throttled and cut off
const clients: TestClient[] = [];

beforeAll(async () => {
  [fast, normal] = await Promise.all([
    startGateway({ WSGATE_JWT_SECRET: undefined, WSGATE_RATE: "100000" }),
    startGateway({ WSGATE_JWT_SECRET: undefined }),
  ]);
});
afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all([fast, normal].filter(Boolean).map((g) => g.kill("SIGKILL")));
});

async function open(gw: GatewayProc, user: string) {
  const c = await connect(`${gw.ws}?user=${user}`);
  clients.push(c);
  return c;
}

/** One frame that no parser may accept, with the id its error must carry (if any). */
type Bad = { kind: "binary"; bytes: Uint8Array } | { kind: "text"; text: string; id?: string };

function badFrame(rnd: () => number, n: number): Bad {
  const int = (k: number) => Math.floor(rnd() * k);
  const bytes = (k: number) => Uint8Array.from({ length: k }, () => int(256));
  const pick = <T>(xs: T[]) => xs[int(xs.length)]!;
  const wrong = () => pick<unknown>([42, -1.5, true, null, {}, { a: 1 }, [], [1, 2], "", "has space", "x".repeat(129), "a#b"]);
  switch (n % 4) {
    case 0: // random bytes as a binary frame
      return { kind: "binary", bytes: bytes(1 + int(300)) };
    case 1: {
      // random characters (valid UTF-8, since a text frame must be) as a text frame
      const chars = Array.from({ length: 1 + int(200) }, () => String.fromCodePoint(pick([int(128), 0x80 + int(0x700), 0x4e00 + int(0x500), 0x1f600 + int(0x50)])));
      return { kind: "text", text: chars.join("") };
    }
    case 2: {
      // well-formed JSON with a valid id and the wrong type in a field
      const id = `f${n}`;
      const frames: Record<string, unknown>[] = [
        { type: "send", to: wrong(), data: 1, id },
        { type: "send", to: "bob" + "!".repeat(1 + int(3)), data: 1, id },
        { type: "send", to: "bob", id },
        { type: "join", room: wrong(), id },
        { type: "leave", room: wrong(), id },
        { type: "publish", room: wrong(), data: 1, id },
        { type: "presence", id },
        { type: "presence", users: ["a"], room: "r", id },
        { type: "presence", users: pick<unknown>([42, "bob", null, {}, [1, 2], ["a b"], [null]]), id }, // [] is valid
        { type: pick(["subscribe", "SEND", "", "pong", "welcome", "message"]), id },
        { type: wrong(), id },
        { id },
      ];
      return { kind: "text", text: JSON.stringify(pick(frames)), id };
    }
    default: {
      // a valid frame cut short: never valid JSON
      const valid = JSON.stringify(pick<Record<string, unknown>>([
        { type: "send", to: "bob", data: { x: [1, 2, 3] }, id: `t${n}` },
        { type: "join", room: "lobby", id: `t${n}` },
        { type: "ping", id: `t${n}` },
      ]));
      return { kind: "text", text: valid.slice(0, 1 + int(valid.length - 2)) };
    }
  }
}

describe("malformed input, frame by frame", () => {
  const cases: [string, string | Uint8Array, string | undefined][] = [
    ["empty text frame", "", undefined],
    ["malformed JSON", '{"type":"ping"', undefined],
    ["JSON that is not an object", '"ping"', undefined],
    ["unknown type", '{"type":"teleport","id":"u"}', "u"],
    ["type of the wrong type", '{"type":7,"id":"t"}', "t"],
    ["to of the wrong type", '{"type":"send","to":{"bob":1},"data":1,"id":"w"}', "w"],
    ["room of the wrong type", '{"type":"join","room":null,"id":"r"}', "r"],
    ["users of the wrong type", '{"type":"presence","users":"bob","id":"p"}', "p"],
    ["id of the wrong type (not echoed)", '{"type":"ping","id":{"x":1}}', undefined],
    ["deeply nested data", `{"type":"send","to":"nobody","data":${"[".repeat(5000)}${"]".repeat(5000)},"id":"deep"}`, undefined],
    ["binary frame", new Uint8Array([0x7b, 0x7d]), undefined],
  ];
  for (const [name, payload, id] of cases)
    test(name, async () => {
      const c = await open(fast, `m-${name.replace(/[^a-z]/g, "")}`);
      c.ws.send(payload);
      const got = await received(c);
      if (name === "deeply nested data") {
        // Either accepted (valid JSON) or refused as bad_request; never a crash, never a silent drop of the id.
        expect(got).toHaveLength(1);
        expect(got[0]!.id).toBe("deep");
        expect(["ack", "error"]).toContain(got[0]!.type);
      } else {
        expect(got).toEqual([id === undefined ? { type: "error", code: "bad_request", message: expect.any(String) } : { type: "error", id, code: "bad_request", message: expect.any(String) }]);
      }
      expect(c.closed).toBeNull();
    });

  test("a prototype-polluting payload is carried as plain data", async () => {
    const a = await open(fast, "proto-a");
    const b = await open(fast, "proto-b");
    a.send('{"type":"send","to":"proto-b","data":{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}}},"id":"pp"}');
    expect((await a.nextType("ack")).id).toBe("pp");
    const m = (await received(b)).find((f) => f.type === "message")!;
    expect(m.from).toBe("proto-a");
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });
});

describe("broken WebSocket framing (raw socket)", () => {
  test("invalid UTF-8 in a text frame closes with 1007", async () => {
    const ws = await rawConnect(fast.port, "/ws?user=utf8");
    await ws.nextJson((f) => f.type === "welcome");
    ws.sendFrame(OP.text, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
    expect((await ws.waitClose())?.code).toBe(1007);
  });

  test("a reserved opcode closes with 1002", async () => {
    const ws = await rawConnect(fast.port, "/ws?user=opcode");
    await ws.nextJson((f) => f.type === "welcome");
    ws.sendFrame(3, "x");
    expect((await ws.waitClose())?.code).toBe(1002);
  });

  test("a fragmented frame is reassembled and parsed once", async () => {
    const ws = await rawConnect(fast.port, "/ws?user=frag");
    await ws.nextJson((f) => f.type === "welcome");
    ws.sendFrame(OP.text, '{"type":"pi', { fin: false });
    ws.sendFrame(0, 'ng","id":"frag"}');
    expect(await ws.nextJson()).toEqual({ type: "pong", id: "frag" });
    ws.end();
  });

  test("oversized: one binary frame, and fragments adding up past the limit, close with 1009", async () => {
    const one = await rawConnect(fast.port, "/ws?user=big1");
    await one.nextJson((f) => f.type === "welcome");
    one.sendBinary(new Uint8Array(70_000));
    expect((await one.waitClose())?.code).toBe(1009);
    const frag = await rawConnect(fast.port, "/ws?user=big2");
    await frag.nextJson((f) => f.type === "welcome");
    frag.sendFrame(OP.text, '{"type":"ping","pad":"', { fin: false });
    frag.sendFrame(0, "x".repeat(40_000), { fin: false });
    frag.sendFrame(0, "x".repeat(40_000) + '"}');
    expect((await frag.waitClose())?.code).toBe(1009);
  });
});

/** Two users trading `n` messages each way while `during` runs; returns what each received. */
async function conversation(gw: GatewayProc, tag: string, n: number, during: () => Promise<void>) {
  const a = await open(gw, `${tag}-alice`);
  const b = await open(gw, `${tag}-bob`);
  const talk = async () => {
    for (let i = 0; i < n; i++) {
      a.send({ type: "send", to: `${tag}-bob`, data: { i }, id: `a${i}` });
      b.send({ type: "send", to: `${tag}-alice`, data: { i }, id: `b${i}` });
      if (i % 10 === 9) await Bun.sleep(5); // stay under WSGATE_RATE's burst on the default-rate gateway
    }
  };
  await Promise.all([talk(), during()]);
  const [ra, rb] = [await received(a, 5000), await received(b, 5000)];
  const data = (fs: Frame[], from: string) => fs.filter((f) => f.type === "message" && f.from === from).map((f) => f.data.i);
  const acks = (fs: Frame[]) => fs.filter((f) => f.type === "ack").length;
  return { aGot: data(ra, `${tag}-bob`), bGot: data(rb, `${tag}-alice`), aAcks: acks(ra), bAcks: acks(rb), aErr: ra.filter((f) => f.type === "error"), bErr: rb.filter((f) => f.type === "error") };
}

describe("2,000 frames of random bytes", () => {
  test(`from one client while another pair keeps exchanging messages: nothing lost (seed ${SEED})`, async () => {
    const rnd = prng(SEED);
    const fuzzer = await open(fast, "fuzzer");
    const expectedIds: string[] = [];
    const fuzz = async () => {
      for (let n = 0; n < 2000; n++) {
        const f = badFrame(rnd, n);
        if (f.kind === "binary") fuzzer.ws.send(f.bytes);
        else {
          fuzzer.ws.send(f.text);
          if (f.id) expectedIds.push(f.id);
        }
        if (n % 100 === 99) await Bun.sleep(2);
      }
    };
    const before = await (await fast.admin("/stats")).json();
    const r = await conversation(fast, "pair", 200, fuzz);
    const seq = Array.from({ length: 200 }, (_, i) => i);
    expect(r.aGot).toEqual(seq);
    expect(r.bGot).toEqual(seq);
    expect([r.aAcks, r.bAcks]).toEqual([200, 200]);
    expect([r.aErr, r.bErr]).toEqual([[], []]);

    // Every random frame got exactly one bad_request, and the ones with an id got it back.
    const errors = await received(fuzzer, 5000);
    expect(errors.filter((f) => !(f.type === "error" && f.code === "bad_request"))).toEqual([]);
    expect(errors).toHaveLength(2000);
    expect(errors.filter((f) => f.id !== undefined).map((f) => f.id)).toEqual(expectedIds);
    expect(fuzzer.closed).toBeNull();

    const after = await (await fast.admin("/stats")).json();
    expect(after.errors.bad_request - (before.errors.bad_request ?? 0)).toBe(2000);
    expect((await fetch(`${fast.http}/health`)).status).toBe(200);
    expect((await fetch(`${fast.http}/ready`)).status).toBe(200);
    const late = await open(fast, "late");
    expect(await late.request({ type: "ping", id: "ok" })).toEqual({ type: "pong", id: "ok" });
  }, 30_000);

  test("at the default WSGATE_RATE the fuzzer is throttled and cut off with 4008; the pair loses nothing", async () => {
    const rnd = prng(SEED + 1);
    const fuzzer = await open(normal, "fuzzer");
    const fuzz = async () => {
      for (let n = 0; n < 2000 && !fuzzer.closed; n++) {
        const f = badFrame(rnd, n);
        fuzzer.ws.send(f.kind === "binary" ? f.bytes : f.text);
      }
    };
    const r = await conversation(normal, "pair", 60, fuzz);
    const seq = Array.from({ length: 60 }, (_, i) => i);
    expect(r.aGot).toEqual(seq);
    expect(r.bGot).toEqual(seq);
    expect((await fuzzer.waitClose()).code).toBe(4008);
    const codes = new Set(fuzzer.frames.filter((f) => f.type === "error").map((f) => f.code));
    expect([...codes].sort()).toEqual(["bad_request", "rate_limited"]);
    expect((await fetch(`${normal.http}/health`)).status).toBe(200);
  }, 30_000);
});
