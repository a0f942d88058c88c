// PROTOCOL §3 client frames: parseFrame accepts every documented frame, refuses everything else with the right
// code, recovers the id for correlation, and names the offending field.
import { describe, expect, test } from "bun:test";
import { MAX_TARGETS } from "../src/protocol/grammar.ts";
import { errorFrame } from "../src/protocol/outbound.ts";
import { FrameError, parseFrame } from "../src/protocol/parse.ts";

function refuse(text: string): FrameError {
  try {
    parseFrame(text);
  } catch (err) {
    if (err instanceof FrameError) return err;
    throw err;
  }
  throw new Error(`expected a FrameError for ${text.slice(0, 200)}`);
}
const j = (v: unknown) => JSON.stringify(v);
const users = (n: number) => Array.from({ length: n }, (_, i) => `u${i}`);

describe("valid frames", () => {
  test("send to one user", () => {
    expect(parseFrame(j({ type: "send", to: "bob", data: { hi: 1 } }))).toEqual({ type: "send", to: "bob", data: { hi: 1 } });
  });
  test("send to several users, with id", () => {
    expect(parseFrame(j({ type: "send", to: ["bob", "carol"], data: "x", id: "1" }))).toEqual({
      type: "send",
      to: ["bob", "carol"],
      data: "x",
      id: "1",
    });
  });
  test(`send to exactly ${MAX_TARGETS} users`, () => {
    expect((parseFrame(j({ type: "send", to: users(100), data: 1 })) as { to: string[] }).to).toHaveLength(100);
  });
  test("data may be any JSON value, null and false included", () => {
    for (const data of [null, false, 0, "", [], {}, [1, { a: [null] }], "ünïcødé ✓"])
      expect(parseFrame(j({ type: "send", to: "bob", data }))).toMatchObject({ data });
  });
  test("join, leave, publish", () => {
    expect(parseFrame(j({ type: "join", room: "chat:1", id: "a" }))).toEqual({ type: "join", room: "chat:1", id: "a" });
    expect(parseFrame(j({ type: "leave", room: "chat:1" }))).toEqual({ type: "leave", room: "chat:1" });
    expect(parseFrame(j({ type: "publish", room: "a/b-c_d.e:f@g", data: [1] }))).toEqual({
      type: "publish",
      room: "a/b-c_d.e:f@g",
      data: [1],
    });
  });
  test("room of 128 chars", () => {
    expect(parseFrame(j({ type: "join", room: "r".repeat(128) }))).toMatchObject({ room: "r".repeat(128) });
  });
  test("presence by users and by room", () => {
    expect(parseFrame(j({ type: "presence", users: ["bob"], id: "p" }))).toEqual({ type: "presence", users: ["bob"], id: "p" });
    expect(parseFrame(j({ type: "presence", room: "lobby" }))).toEqual({ type: "presence", room: "lobby" });
    expect(parseFrame(j({ type: "presence", users: users(100) }))).toMatchObject({ type: "presence" });
  });
  test("ping, with and without id", () => {
    expect(parseFrame(j({ type: "ping" }))).toEqual({ type: "ping" });
    expect(parseFrame(j({ type: "ping", id: "x".repeat(64) }))).toEqual({ type: "ping", id: "x".repeat(64) });
  });
  test("a client-supplied from is dropped (the gateway sets it)", () => {
    const f = parseFrame(j({ type: "send", to: "bob", data: 1, from: "mallory" })) as Record<string, unknown>;
    expect(f.from).toBeUndefined();
  });
  test("type need not come first", () => {
    expect(parseFrame('{"data":1,"to":"bob","type":"send"}')).toMatchObject({ type: "send" });
  });
});

describe("bad_request", () => {
  const cases: [string, string, RegExp | null][] = [
    ["not JSON", "{nope", /JSON/],
    ["empty", "", /JSON/],
    ["a JSON array", "[1,2]", /object/],
    ["a JSON string", '"send"', /object/],
    ["JSON null", "null", /object/],
    ["a number", "42", /object/],
    ["no type", j({ to: "bob", data: 1 }), /type/],
    ["unknown type", j({ type: "subscribe", room: "a" }), /unknown frame type "subscribe"/],
    ["type not a string", j({ type: 1 }), /type/],
    ["send without data", j({ type: "send", to: "bob" }), /data/],
    ["send without to", j({ type: "send", data: 1 }), /to/],
    ["send to a number", j({ type: "send", to: 7, data: 1 }), /to/],
    ["send to an empty list", j({ type: "send", to: [], data: 1 }), /to/],
    ["send to a bad user id", j({ type: "send", to: "bad user", data: 1 }), /to/],
    ["send to a list with a bad user id", j({ type: "send", to: ["ok", "x".repeat(129)], data: 1 }), /to/],
    ["send to a list with a non-string", j({ type: "send", to: ["ok", 3], data: 1 }), /to/],
    ["join without room", j({ type: "join" }), /room/],
    ["join a room of 129 chars", j({ type: "join", room: "r".repeat(129) }), /room/],
    ["join an empty room", j({ type: "join", room: "" }), /room/],
    ["join a room with a space", j({ type: "join", room: "a b" }), /room/],
    ["join a room that is a number", j({ type: "join", room: 5 }), /room/],
    ["leave a bad room", j({ type: "leave", room: "a#b" }), /room/],
    ["publish without data", j({ type: "publish", room: "a" }), /data/],
    ["publish without room", j({ type: "publish", data: 1 }), /room/],
    ["presence with neither users nor room", j({ type: "presence" }), /users or room/],
    ["presence with both", j({ type: "presence", users: ["a"], room: "r" }), /users or room/],
    ["presence users not a list", j({ type: "presence", users: "bob" }), /users/],
    ["presence with a bad user id", j({ type: "presence", users: ["a b"] }), /users/],
    ["id not a string", j({ type: "ping", id: 5 }), /id/],
    ["id over 64 chars", j({ type: "ping", id: "x".repeat(65) }), /id/],
  ];
  for (const [name, text, msg] of cases)
    test(name, () => {
      const e = refuse(text);
      expect(e.code).toBe("bad_request");
      if (msg) expect(e.message).toMatch(msg);
    });
});

describe("too_large", () => {
  test(`send to ${MAX_TARGETS + 1} users`, () => {
    const e = refuse(j({ type: "send", to: users(101), data: 1, id: "big" }));
    expect(e.code).toBe("too_large");
    expect(e.id).toBe("big");
  });
  test(`presence for ${MAX_TARGETS + 1} users`, () => {
    const e = refuse(j({ type: "presence", users: users(101), id: "p" }));
    expect(e.code).toBe("too_large");
    expect(e.id).toBe("p");
  });
});

describe("id correlation on errors", () => {
  test("a valid id is kept on a schema error", () => {
    expect(refuse(j({ type: "join", room: "a b", id: "j1" })).id).toBe("j1");
    expect(refuse(j({ type: "nope", id: "n1" })).id).toBe("n1");
    expect(refuse(j({ type: "send", to: "bob", id: "s1" })).id).toBe("s1");
  });
  test("an unusable id is not echoed", () => {
    expect(refuse(j({ type: "ping", id: 5 })).id).toBeUndefined();
    expect(refuse(j({ type: "ping", id: "x".repeat(65) })).id).toBeUndefined();
    expect(refuse("{nope").id).toBeUndefined();
  });
});

describe("errorFrame", () => {
  test("with and without id", () => {
    expect(JSON.parse(errorFrame("forbidden", "no", "7"))).toEqual({ type: "error", id: "7", code: "forbidden", message: "no" });
    expect(JSON.parse(errorFrame("bad_request", "bad"))).toEqual({ type: "error", code: "bad_request", message: "bad" });
  });
  test("the id is JSON-escaped", () => {
    const id = 'a"b\\c\n';
    expect(JSON.parse(errorFrame("internal", "x", id)).id).toBe(id);
  });
});
