// The wsgate command line as a real process: help, exit codes, token minting, the admin commands
// and a piped `connect` session, all against a real gateway.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { jwtVerify } from "jose";
import { connect, type TestClient } from "./helpers/client.ts";
import { ADMIN_TOKEN, startGateway, type GatewayProc } from "./helpers/gateway.ts";
import pkg from "../package.json";
import { splitArgs } from "../src/client/cli/main.ts";
import { freePort } from "../harness/ports.ts";
import { mintToken, TEST_SECRET } from "./helpers/token.ts";

const ROOT = new URL("..", import.meta.url).pathname;

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs `bun bin/wsgate.ts …` with only the env given (plus PATH/HOME), killed after timeoutMs. */
async function wsgate(args: string[], env: Record<string, string> = {}, stdin?: string, timeoutMs = 15_000): Promise<Run> {
  const proc = Bun.spawn(["bun", "bin/wsgate.ts", ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdin: stdin === undefined ? "ignore" : new Blob([stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, out, err };
}

const COMMANDS = ["token", "connect", "send", "presence", "gateways", "kick", "stats"];

describe("usage", () => {
  test("--help on the program and on every command, exit 0", async () => {
    const main = await wsgate(["--help"]);
    expect(main.code).toBe(0);
    for (const c of COMMANDS) expect(main.out).toContain(c);
    const runs = await Promise.all(COMMANDS.map((c) => wsgate([c, "--help"])));
    runs.forEach((r, i) => {
      expect(r.code).toBe(0);
      expect(r.out).toContain(`Usage: wsgate ${COMMANDS[i]}`);
    });
    expect((await wsgate(["help", "kick"])).out).toContain("Usage: wsgate kick");
  });

  test("usage errors exit 2 with a readable line on stderr", async () => {
    const cases: [string[], string][] = [
      [[], "Usage: wsgate"],
      [["frobnicate"], 'unknown command "frobnicate"'],
      [["token", "--sub", "alice", "--bogus"], "--bogus"],
      [["token"], "--sub is required"],
      [["token", "--sub", "alice"], "WSGATE_JWT_SECRET"],
      [["token", "--sub", "bad id", "--secret", "s"], "not a valid user id"],
      [["token", "--sub", "alice", "--ttl", "soon", "--secret", "s"], "--ttl"],
      [["presence"], "USER is missing"],
      [["gateways"], "no admin token"],
      [["send", "--room", "r", "--broadcast", "x", "--admin-token", "t"], "only one of"],
      [["gateways", "--token", "t"], "--admin-token"],
      [["--url"], "--url needs a value"],
      [["connect", "ws://127.0.0.1:1/ws"], "no credentials"],
    ];
    const runs = await Promise.all(cases.map(([args]) => wsgate(args)));
    runs.forEach((r, i) => {
      expect({ args: cases[i]![0], code: r.code }).toEqual({ args: cases[i]![0], code: 2 });
      expect(r.err).toContain(cases[i]![1]);
      expect(r.out).toBe("");
    });
  });
});

describe("global options", () => {
  test("--version prints the package version, before or after a command", async () => {
    for (const args of [["--version"], ["-V"], ["stats", "--version"]]) {
      const r = await wsgate(args);
      expect(r.code).toBe(0);
      expect(r.out.trim()).toBe(`wsgate ${pkg.version}`);
    }
  });

  test("global flags are taken out wherever they stand; command options keep their values", async () => {
    expect(splitArgs(["--url", "u", "--json", "send", "--to", "bob", "hi"])).toEqual({
      globals: { url: "u", json: true },
      version: false,
      cmd: "send",
      rest: ["--to", "bob", "hi"],
    });
    // A command option before the command: its value is not taken for the command.
    expect(splitArgs(["--to", "send", "send", "x", "--admin-token=t", "--no-color"])).toEqual({
      globals: { adminToken: "t", noColor: true },
      version: false,
      cmd: "send",
      rest: ["--to", "send", "x"],
    });
  });
});

describe("token", () => {
  test("prints the token alone; claims, rooms and ttl as asked", async () => {
    const r = await wsgate(["token", "--sub", "alice", "--rooms", "chat:*", "--rooms", "team:a,team:b", "--ttl", "15m", "--claim", "plan=\"pro\""], {
      WSGATE_JWT_SECRET: TEST_SECRET,
    });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const { payload, protectedHeader } = await jwtVerify(r.out.trim(), new TextEncoder().encode(TEST_SECRET));
    expect(protectedHeader.alg).toBe("HS256");
    expect(payload.sub).toBe("alice");
    expect(payload.rooms).toEqual(["chat:*", "team:a", "team:b"]);
    expect(payload.plan).toBe("pro");
    expect(payload.exp! - payload.iat!).toBe(900);
  });
});

describe("against a gateway", () => {
  let gw: GatewayProc;
  let bob: TestClient;
  const env = () => ({ WSGATE_URL: gw.http, WSGATE_ADMIN_TOKEN: ADMIN_TOKEN });

  beforeAll(async () => {
    gw = await startGateway();
    bob = await connect(`${gw.ws}?token=${await mintToken("bob", { rooms: ["chat:*"] })}`);
  });
  afterAll(async () => {
    bob?.close();
    await gw?.kill("SIGKILL");
  });

  test("a minted token connects and may join its rooms", async () => {
    const t = await wsgate(["token", "--sub", "minted", "--rooms", "chat:*"], { WSGATE_JWT_SECRET: TEST_SECRET });
    const c = await connect(`${gw.ws}?token=${t.out.trim()}`);
    expect(c.welcome?.user).toBe("minted");
    expect((await c.request({ type: "join", room: "chat:1" })).type).toBe("ack");
    expect((await c.request({ type: "join", room: "other" })).code).toBe("forbidden");
    c.close();
  });

  test("gateways: table and --json", async () => {
    const table = await wsgate(["gateways"], env());
    expect(table.code).toBe(0);
    expect(table.out).toContain("REGION");
    expect(table.out).toContain(gw.id);
    const json = await wsgate(["gateways", "--json", "--url", gw.http.replace("http", "ws") + "/ws"], env());
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out).gateways.map((g: { id: string }) => g.id)).toContain(gw.id);
  });

  test("presence of an online and an offline user", async () => {
    const on = await wsgate(["presence", "bob"], env());
    expect(on.code).toBe(0);
    expect(on.out).toContain("bob: online, 1 connection(s)");
    expect(on.out).toContain(gw.id);
    const off = await wsgate(["presence", "nobody", "--json"], env());
    expect(off.code).toBe(0);
    expect(JSON.parse(off.out)).toMatchObject({ user: "nobody", online: false, connections: [] });
  });

  test("send: direct (from null), room and broadcast", async () => {
    const d = await wsgate(["send", "bob", '{"n":1}'], env());
    expect(d.code).toBe(0);
    expect(d.out).toContain("sent to bob");
    expect(await bob.nextType("message")).toMatchObject({ from: null, to: "bob", data: { n: 1 } });

    expect((await bob.request({ type: "join", room: "chat:cli" })).type).toBe("ack");
    const r = await wsgate(["send", "--room", "chat:cli", "plain text"], env());
    expect(r.code).toBe(0);
    expect(await bob.nextType("message")).toMatchObject({ room: "chat:cli", data: "plain text" });

    const b = await wsgate(["send", "--broadcast", "[1,2]", "--json"], env());
    expect(b.code).toBe(0);
    expect(await bob.nextType("message")).toMatchObject({ broadcast: true, data: [1, 2] });
  });

  test("stats --json", async () => {
    const s = await wsgate(["stats", "--json"], env());
    expect(s.code).toBe(0);
    expect(JSON.parse(s.out)).toMatchObject({ id: gw.id, mode: "single" });
  });

  test("request failures exit 1: wrong admin token, unreachable gateway", async () => {
    const bad = await wsgate(["gateways", "--admin-token", "wrong"], env());
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("401");
    const down = await wsgate(["gateways", "--url", `http://127.0.0.1:${await freePort()}`], env());
    expect(down.code).toBe(1);
    expect(down.err).toContain("cannot reach");
  });

  test("connect: piped shortcuts and JSON, frames printed one per line, exit 0", async () => {
    const input = ['/send bob hello from the cli', "/join chat:x", '{"type":"ping"}', "/presence bob nobody", "/who chat:x", ""].join("\n");
    const r = await wsgate(["connect", gw.ws, "--sub", "clia", "--rooms", "chat:*"], { WSGATE_JWT_SECRET: TEST_SECRET }, input);
    expect(r.err).toContain("connected to");
    expect(r.code).toBe(0);
    const frames = r.out.trim().split("\n").map((l) => JSON.parse(l));
    expect(frames[0]).toMatchObject({ type: "welcome", user: "clia" });
    const types = frames.map((f) => f.type);
    expect(types).toContain("ack");
    expect(types).toContain("pong");
    expect(frames.find((f) => f.type === "presence" && f.users?.bob)?.users.bob.online).toBe(true);
    expect(frames.find((f) => f.type === "presence" && f.room === "chat:x")?.users).toEqual(["clia"]);
    expect(await bob.nextType("message")).toMatchObject({ from: "clia", to: "bob", data: "hello from the cli" });
  });

  test("connect: a refused request makes the exit code 1", async () => {
    const tok = await mintToken("clib", { rooms: [] });
    const r = await wsgate(["connect", gw.http, "--token", tok], {}, "/join forbidden-room\n");
    expect(r.code).toBe(1);
    expect(r.out).toContain('"code":"forbidden"');
  });

  test("connect: an unreachable gateway exits 1 after a few attempts", async () => {
    const r = await wsgate(["connect", `ws://127.0.0.1:${await freePort()}/ws`, "--user", "x"], {}, "/ping\n");
    expect(r.code).toBe(1);
    expect(r.err).toContain("could not connect");
  });

  test("global flags before or after the command; --admin-token, not --token, for the admin API", async () => {
    const flags = ["--url", gw.http, "--admin-token", ADMIN_TOKEN];
    for (const args of [[...flags, "--json", "stats"], ["stats", "--json", ...flags], ["--json", "stats", ...flags]]) {
      const r = await wsgate(args);
      expect({ args, code: r.code, err: r.err }).toEqual({ args, code: 0, err: "" });
      expect(JSON.parse(r.out)).toMatchObject({ id: gw.id, version: pkg.version });
    }
    const wrong = await wsgate(["stats", "--url", gw.http, "--token", ADMIN_TOKEN]);
    expect(wrong.code).toBe(2);
    expect(wrong.err).toContain("--admin-token");
  });

  test("gateways shows each gateway's version", async () => {
    const r = await wsgate(["gateways"], env());
    expect(r.code).toBe(0);
    expect(r.out).toContain("VERSION");
    expect(r.out).toContain(pkg.version);
  });

  test("stats --gateway asks for one gateway by id (?gateway=)", async () => {
    const own = await wsgate(["stats", "--gateway", gw.id, "--json"], env());
    expect(own.code).toBe(0);
    expect(JSON.parse(own.out).id).toBe(gw.id);
    const missing = await wsgate(["stats", "--gateway", "no-such-gateway"], env());
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("404");
  });

  test("stats --gateway on Fly.io: the machine answers fly-replay; talking to it directly says to use the proxy", async () => {
    const fly = await startGateway({ FLY_MACHINE_ID: "m-one", WSGATE_GATEWAY_ID: undefined });
    try {
      const raw = await fetch(`${fly.http}/stats?gateway=m-two`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      expect(raw.headers.get("fly-replay")).toBe("instance=m-two");
      const r = await wsgate(["stats", "--gateway", "m-two"], { WSGATE_URL: fly.http, WSGATE_ADMIN_TOKEN: ADMIN_TOKEN });
      expect(r.code).toBe(1);
      expect(r.err).toContain("fly-replay: instance=m-two");
      expect(r.err).toContain("public URL");
    } finally {
      await fly.kill("SIGKILL");
    }
  });

  test("connect: a refused token prints the HTTP status and the JSON error, exits 1 at once", async () => {
    const t0 = Date.now();
    const r = await wsgate(["connect", gw.ws, "--token", "not-a-jwt"], {}, "/ping\n");
    expect(r.code).toBe(1);
    expect(r.err).toContain("HTTP 401");
    expect(r.err).toContain('"code":"unauthorized"');
    expect(r.err).not.toContain("last close 1006");
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  test("connect on a terminal: colours, unless NO_COLOR or --no-color", async () => {
    const tok = await mintToken("tty-user");
    /** Runs connect under a pseudo-terminal (util-linux script), so stdout is a TTY. */
    const onTty = async (extraEnv: Record<string, string>, extraArgs: string[] = []) => {
      const cmd = ["bun", "bin/wsgate.ts", "connect", gw.ws, "--token", tok, ...extraArgs].join(" ");
      const proc = Bun.spawn(["script", "-qec", cmd, "/dev/null"], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", TERM: "xterm", ...extraEnv },
        stdin: new Blob(["/ping\n"]),
        stdout: "pipe",
        stderr: "pipe",
      });
      const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      const out = await new Response(proc.stdout).text();
      await proc.exited;
      clearTimeout(timer);
      return out;
    };
    const coloured = await onTty({});
    expect(coloured).toContain("< pong");
    expect(coloured).toContain("\x1b[");
    for (const plain of [await onTty({ NO_COLOR: "1" }), await onTty({}, ["--no-color"])]) {
      expect(plain).toContain("< pong");
      expect(plain).not.toContain("\x1b[");
    }
  });

  test("kick closes the user's connections with 4009", async () => {
    const victim = await connect(`${gw.ws}?token=${await mintToken("victim")}`);
    const r = await wsgate(["kick", "victim"], env());
    expect(r.code).toBe(0);
    expect(r.out).toContain("closed 1 connection(s) of victim");
    expect((await victim.waitClose()).code).toBe(4009);
  });
});
