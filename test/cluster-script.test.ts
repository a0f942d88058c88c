// `bun run cluster`: arguments and plan (fast, no processes), then the real thing: three gateways over
// a Redis primary + replica, users on each, direct messages, a room and presence across all three,
// and after SIGTERM no process left behind.
import { afterAll, describe, expect, test } from "bun:test";
import { spawn, type Subprocess } from "bun";
import { readFileSync } from "node:fs";
import { decodeJwt } from "jose";
import { gatewayEnv, parseArgs, planGateways, readLines, UsageError, urlHost } from "../scripts/cluster.ts";
import { connect, type Frame, type TestClient } from "./helpers/client.ts";
import { freePort } from "../harness/ports.ts";

const ROOT = new URL("..", import.meta.url).pathname;

describe("cluster script: arguments and plan", () => {
  test("defaults: ord, ams, sin with no distance, ports 8081-8083, free Redis ports, loopback, short drain", () => {
    const o = parseArgs([]);
    expect(o.regions).toEqual(["ord", "ams", "sin"]);
    expect(o.rtt.rtt("ord", "sin")).toBe(0);
    expect(o.perRegion).toBe(1);
    expect(o.front).toBeNull();
    expect(o.ports).toEqual([8081, 8082, 8083]);
    expect(o.redisPort).toBe(0);
    expect(o.replicaPort).toBe(0);
    expect(o.host).toBe("127.0.0.1");
    expect(o.drainMs).toBe(2000);
    expect(parseArgs([], { WSGATE_DRAIN_MS: "750" }).drainMs).toBe(750);
  });

  test("flags", () => {
    expect(parseArgs(["--base-port", "9000"]).ports).toEqual([9000, 9001, 9002]);
    expect(parseArgs(["--base-port=9100"]).ports).toEqual([9100, 9101, 9102]);
    expect(parseArgs(["--ports", "7001,7005,7003"]).ports).toEqual([7001, 7005, 7003]);
    const o = parseArgs(["--redis-port", "6390", "--replica-port", "6391", "--json", "--quiet", "--drain-ms", "100", "--host", "::1"]);
    expect([o.redisPort, o.replicaPort, o.json, o.quiet, o.drainMs, o.host]).toEqual([6390, 6391, true, true, 100, "::1"]);
  });

  test("regions, round trips, gateways per region, front door", () => {
    const o = parseArgs(["--regions", "ord,ams,sin", "--rtt", "ord-ams=90,ord-sin=220,ams-sin=160", "--per-region", "2", "--front", "8090"]);
    expect(o.ports).toEqual([8081, 8082, 8083, 8084, 8085, 8086]);
    expect([o.rtt.rtt("ams", "ord"), o.rtt.rtt("sin", "ord"), o.rtt.rtt("sin", "ams"), o.rtt.rtt("sin", "sin")]).toEqual([90, 220, 160, 0]);
    expect(o.rtt.byDistance("sin")).toEqual(["sin", "ams", "ord"]);
    expect(o.front).toBe(8090);
    const plan = planGateways(o);
    expect(plan.map((g) => [g.id, g.region, g.readsFrom, g.delays.toPrimaryMs])).toEqual([
      ["ord-1", "ord", "primary", 0], ["ord-2", "ord", "primary", 0],
      ["ams-1", "ams", "replica", 45], ["ams-2", "ams", "replica", 45],
      ["sin-1", "sin", "replica", 110], ["sin-2", "sin", "replica", 110],
    ]);
    expect(parseArgs(["--regions", "sin,ord", "--rtt", "ord-sin=200"]).regions).toEqual(["sin", "ord"]);
  });

  test("bad flags are usage errors", () => {
    for (const argv of [
      ["--base-port"], ["--base-port", "x"], ["--base-port", "65534"], ["--ports", "1,2"], ["--ports", "7001,7001,7002"], ["--nope"], ["--redis-port", "8081"],
      ["--regions", ""], ["--regions", "ord,ord"], ["--regions", "ORD"], ["--rtt", "ord-ams=90"], ["--rtt", "ord-ams=90,ord-sin=1,ams-sin=x"],
      ["--rtt", "ord-xyz=1,ord-sin=1,ams-sin=1"], ["--rtt", "ord-ams=1,ams-ord=2,ord-sin=1,ams-sin=1"], ["--per-region", "0"], ["--per-region", "5"],
      ["--per-region", "2", "--ports", "7001,7002,7003"], ["--front", "8081"],
    ])
      expect(() => parseArgs(argv)).toThrow(UsageError);
  });

  test("plan: ord, ams, sin; ams and sin read from the replica", () => {
    const plan = planGateways({ ports: [1, 2, 3] });
    expect(plan.map((g) => [g.region, g.port, g.readsFrom])).toEqual([["ord", 1, "primary"], ["ams", 2, "replica"], ["sin", 3, "replica"]]);
    expect(new Set(plan.map((g) => g.id)).size).toBe(3);
  });

  test("gateway env: identity, Redis, secrets; no FLY_* and no shared metrics port", () => {
    const [ord, ams] = planGateways({ ports: [1, 2, 3] });
    const c = { host: "127.0.0.1", redisUrl: "redis://p", replicaUrl: "redis://r", jwtSecret: "s", adminToken: "a", drainMs: 9 };
    const base = { PATH: "/bin", FLY_MACHINE_ID: "x", WSGATE_METRICS_PORT: "9091", REDIS_REPLICA_URL: "redis://stale", WSGATE_HEARTBEAT_MS: "1000" };
    const e1 = gatewayEnv(ord!, base, c);
    expect(e1).toMatchObject({ PORT: "1", HOST: "127.0.0.1", REDIS_URL: "redis://p", WSGATE_REGION: "ord", WSGATE_JWT_SECRET: "s", WSGATE_ADMIN_TOKEN: "a", WSGATE_DRAIN_MS: "9", WSGATE_HEARTBEAT_MS: "1000", PATH: "/bin" });
    expect(e1.REDIS_REPLICA_URL).toBeUndefined();
    expect(e1.FLY_MACHINE_ID).toBeUndefined();
    expect(e1.WSGATE_METRICS_PORT).toBeUndefined();
    expect(gatewayEnv(ams!, base, c).REDIS_REPLICA_URL).toBe("redis://r");
    expect(urlHost("::1")).toBe("[::1]");
  });

  test("--redis single|cluster|sentinel: the topology's env replaces REDIS_URL and the replica", () => {
    expect(parseArgs([]).redis).toBe("single");
    expect(parseArgs(["--redis", "cluster"]).redis).toBe("cluster");
    expect(parseArgs(["--redis=sentinel"]).redis).toBe("sentinel");
    expect(() => parseArgs(["--redis", "upstash"])).toThrow(UsageError);
    const [, ams] = planGateways({ ports: [1, 2, 3] });
    const c = { host: "127.0.0.1", redisEnv: { REDIS_CLUSTER_URLS: "redis://a:1,redis://b:2" }, jwtSecret: "s", adminToken: "a", drainMs: 9 };
    const e = gatewayEnv(ams!, { REDIS_URL: "redis://stale", REDIS_REPLICA_URL: "redis://stale" }, c);
    expect(e.REDIS_CLUSTER_URLS).toBe("redis://a:1,redis://b:2");
    expect([e.REDIS_URL, e.REDIS_REPLICA_URL]).toEqual([undefined, undefined]);
  });
});

// --- the real cluster ---

interface ReadyEvent {
  event: "ready";
  pid: number;
  redis: { primary: { url: string; port: number; pid: number }; replicas: { region: string; url: string; port: number; pid: number }[] };
  gateways: { id: string; region: string; port: number; http: string; ws: string; pid: number; readsFrom: string; delays: { toPrimaryMs: number; fromPrimaryMs: number } }[];
  links: { region: string; port: number; upMs: number; downMs: number }[];
  front: { http: string; ws: string; port: number } | null;
  adminToken: string;
  tokens: Record<string, string>;
}

/** A started `bun run cluster` with its JSON events collected from stdout. */
interface ScriptRun {
  proc: Subprocess<"pipe", "pipe", "pipe">;
  events: Record<string, any>[];
  output: () => string;
  waitEvent(name: string, timeoutMs: number): Promise<Record<string, any>>;
}

const runs: ScriptRun[] = [];

function startScript(args: string[], extraEnv: Record<string, string> = {}): ScriptRun {
  const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as { scripts: Record<string, string> };
  // The package.json line lands with the lead's merge; until then run the file itself.
  const cmd = pkg.scripts.cluster ? ["bun", "run", "cluster", ...args] : ["bun", "scripts/cluster.ts", ...args];
  const proc = spawn(cmd, {
    cwd: ROOT,
    stdin: "pipe",
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      WSGATE_HEARTBEAT_MS: "1000",
      WSGATE_PRESENCE_TTL_MS: "2000",
      LOG_LEVEL: "warn",
      ...extraEnv,
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  const events: Record<string, any>[] = [];
  let out = "";
  const waiters: (() => void)[] = [];
  const wake = () => { for (const w of waiters.splice(0)) w(); };
  void readLines(proc.stdout as ReadableStream<Uint8Array>, (l) => {
    out += `${l}\n`;
    try { events.push(JSON.parse(l)); } catch {}
    wake();
  }).then(wake);
  void readLines(proc.stderr as ReadableStream<Uint8Array>, (l) => { out += `${l}\n`; });
  void proc.exited.then(wake);
  const run: ScriptRun = {
    proc,
    events,
    output: () => out,
    async waitEvent(name, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (let i = 0; i < 10_000; i++) {
        const e = events.find((x) => x.event === name);
        if (e) return e;
        if (proc.exitCode !== null || Date.now() > deadline) break;
        await new Promise<void>((res) => {
          const t = setTimeout(res, 200);
          waiters.push(() => { clearTimeout(t); res(); });
        });
      }
      const e = events.find((x) => x.event === name);
      if (e) return e;
      throw new Error(`no "${name}" event (exit ${proc.exitCode}); output:\n${out.slice(-3000)}`);
    },
  };
  runs.push(run);
  return run;
}

/** Every pid the script reported spawning, plus the script processes themselves. */
function pidsOf(run: ScriptRun): number[] {
  const pids = run.events.filter((e) => e.event === "spawn").map((e) => e.pid as number);
  const ready = run.events.find((e) => e.event === "ready");
  if (ready) pids.push(ready.pid as number);
  return [...new Set(pids)];
}

/** Alive = exists and is not a zombie (an exited child waiting to be reaped holds no resources). */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

async function portRefuses(port: number): Promise<boolean> {
  try {
    await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) });
    return false;
  } catch {
    return true;
  }
}

const clients: TestClient[] = [];

afterAll(async () => {
  for (const c of clients) c.close();
  // Only if a test failed midway: stop what this file started, by pid, script first.
  for (const run of runs) {
    if (run.proc.exitCode === null) {
      run.proc.kill("SIGTERM");
      await Promise.race([run.proc.exited, Bun.sleep(8000)]);
    }
    for (const pid of pidsOf(run)) if (isAlive(pid)) try { process.kill(pid, "SIGKILL"); } catch {}
    if (run.proc.exitCode === null) run.proc.kill("SIGKILL");
  }
});

/** Retries a read that may trail a write (presence through the replica), bounded in count and time. */
async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string, tries = 40, delayMs = 100): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < tries; i++) {
    last = await read();
    if (ok(last)) return last;
    await Bun.sleep(delayMs);
  }
  throw new Error(`${what}: last value ${JSON.stringify(last)}`);
}

describe("cluster script: the real cluster", () => {
  test("three regions: DMs, a room and presence across all of them; SIGTERM leaves nothing", async () => {
    const ports: [number, number, number] = [await freePort(), await freePort(), await freePort()];
    const run = startScript(["--json", "--quiet", "--ports", ports.join(","), "--drain-ms", "300"]);
    const ready = (await run.waitEvent("ready", 45_000)) as ReadyEvent;

    expect(ready.gateways.map((g) => [g.region, g.port])).toEqual([["ord", ports[0]], ["ams", ports[1]], ["sin", ports[2]]]);
    expect(ready.gateways.filter((g) => g.readsFrom === "replica").length).toBe(2);
    for (const u of ["alice", "bob", "carol"]) {
      expect(decodeJwt(ready.tokens[u]!)).toMatchObject({ sub: u, rooms: ["*"] });
    }

    // The admin token works and every gateway sees the other two through Redis.
    const gwList = await eventually(
      async () => {
        const r = await fetch(`${ready.gateways[1]!.http}/v1/gateways`, { headers: { authorization: `Bearer ${ready.adminToken}` } });
        return r.status === 200 ? ((await r.json()) as { gateways: { id: string; region: string }[] }).gateways : [];
      },
      (g) => g.length === 3,
      "three gateways in the registry",
    );
    expect(gwList.map((g) => g.region).sort()).toEqual(["ams", "ord", "sin"]);

    // alice on ord, bob on ams, carol on sin.
    const users = ["alice", "bob", "carol"] as const;
    const [alice, bob, carol] = await Promise.all(
      users.map((u, i) => connect(`${ready.gateways[i]!.ws}?token=${ready.tokens[u]}`, undefined, 10_000)),
    );
    clients.push(alice!, bob!, carol!);
    expect([alice!.welcome!.region, bob!.welcome!.region, carol!.welcome!.region]).toEqual(["ord", "ams", "sin"]);
    const byName = { alice: alice!, bob: bob!, carol: carol! };

    // Direct messages around the ring, each crossing regions.
    const ring: [keyof typeof byName, keyof typeof byName][] = [["alice", "bob"], ["bob", "carol"], ["carol", "alice"]];
    for (const [from, to] of ring) {
      const ack = await byName[from].request({ type: "send", to, data: { hello: to, from } });
      expect(ack.type).toBe("ack");
      const m = await byName[to].next((f: Frame) => f.type === "message" && f.data?.hello === to, 5000);
      expect(m).toMatchObject({ from, to, data: { hello: to, from } });
    }

    // A room spanning the three regions.
    for (const c of [alice!, bob!, carol!]) expect((await c.request({ type: "join", room: "demo" })).type).toBe("ack");
    const members = await eventually(
      () => bob!.request({ type: "presence", room: "demo" }),
      (p) => Array.isArray(p.users) && p.users.length === 3,
      "room presence with three members",
    );
    expect([...members.users].sort()).toEqual(["alice", "bob", "carol"]);
    expect((await carol!.request({ type: "publish", room: "demo", data: { n: 1 } })).type).toBe("ack");
    for (const c of [alice!, bob!, carol!]) {
      const m = await c.next((f: Frame) => f.type === "message" && f.room === "demo", 5000);
      expect(m).toMatchObject({ from: "carol", room: "demo", data: { n: 1 } });
    }

    // User presence from each region about the other two.
    const online = await eventually(
      () => alice!.request({ type: "presence", users: ["bob", "carol"] }),
      (p) => p.users?.bob?.online === true && p.users?.carol?.online === true,
      "bob and carol online as seen from ord",
    );
    expect(online.users.bob.regions).toEqual(["ams"]);
    expect(online.users.carol.regions).toEqual(["sin"]);
    await eventually(
      () => carol!.request({ type: "presence", users: ["alice", "bob"] }),
      (p) => p.users?.alice?.online === true && p.users?.bob?.online === true,
      "alice and bob online as seen from sin (replica reads)",
    );

    // carol leaves: the room hears it in the other regions, and sin's replica-backed presence follows.
    carol!.close();
    const left = await alice!.next((f: Frame) => f.type === "room" && f.event === "leave" && f.user === "carol", 5000);
    expect(left.room).toBe("demo");
    await eventually(
      () => bob!.request({ type: "presence", users: ["carol"] }),
      (p) => p.users?.carol?.online === false,
      "carol offline as seen from ams",
    );

    // Stop the way Ctrl-C would, and check nothing is left, by pid and by port.
    const pids = pidsOf(run);
    expect(pids.length).toBe(3 + 3 + 1); // primary, a replica in ams and in sin, three gateways, the script
    run.proc.kill("SIGTERM");
    const code = await Promise.race([run.proc.exited, Bun.sleep(20_000).then(() => "timeout" as const)]);
    expect(code).toBe(0);
    expect(run.events.some((e) => e.event === "stopped")).toBe(true);
    await eventually(async () => pids.filter(isAlive), (l) => l.length === 0, "processes still alive", 20, 100);
    for (const p of [...ports, ready.redis.primary.port, ...ready.redis.replicas.map((r) => r.port)]) expect(await portRefuses(p)).toBe(true);
  }, 90_000);

  test("distance: two gateways per region, delays in force, front door by region, a region cut and healed from stdin", async () => {
    const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
    const front = await freePort();
    // Small round trips keep the test short; the proportions are Fly's (sin is nearer ams than ord).
    const run = startScript(["--json", "--quiet", "--ports", ports.join(","), "--per-region", "2", "--rtt", "ord-ams=40,ord-sin=100,ams-sin=70", "--front", String(front), "--drain-ms", "300"]);
    const ready = (await run.waitEvent("ready", 60_000)) as ReadyEvent;
    expect(ready.gateways.map((g) => [g.id, g.region, g.delays.toPrimaryMs, g.delays.fromPrimaryMs])).toEqual([
      ["ord-1", "ord", 0, 0], ["ord-2", "ord", 0, 0], ["ams-1", "ams", 20, 20], ["ams-2", "ams", 20, 20], ["sin-1", "sin", 50, 50], ["sin-2", "sin", 50, 50],
    ]);
    expect(ready.links.map((l) => [l.region, l.upMs, l.downMs])).toEqual([["ams", 20, 20], ["sin", 50, 50]]);
    expect(ready.redis.replicas.map((r) => r.region)).toEqual(["ams", "sin"]);
    expect(ready.front!.port).toBe(front);

    // The front door: ?region= picks the region; two connections from sin land on its two gateways.
    const viaFront = (user: "alice" | "bob" | "carol", region: string) => connect(`${ready.front!.ws}?region=${region}&token=${ready.tokens[user]}`, undefined, 10_000);
    const alice = await viaFront("alice", "ord");
    const bob = await viaFront("bob", "sin");
    const bob2 = await viaFront("bob", "sin");
    clients.push(alice, bob, bob2);
    expect(alice.welcome!.region).toBe("ord");
    expect([bob.welcome!.gateway, bob2.welcome!.gateway].sort()).toEqual(["sin-1", "sin-2"]);

    // ord → sin crosses the sin link once (primary → sin replica): never faster than its one-way delay.
    const t0 = performance.now();
    expect((await alice.request({ type: "send", to: "bob", data: "hi" })).type).toBe("ack");
    await bob.next((f: Frame) => f.type === "message" && f.data === "hi", 5000);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(50);
    // sin → ord: the ack needs the sin round trip.
    const t1 = performance.now();
    expect((await bob.request({ type: "send", to: "alice", data: "yo" })).type).toBe("ack");
    expect(performance.now() - t1).toBeGreaterThanOrEqual(100);
    await alice.next((f: Frame) => f.type === "message" && f.data === "yo", 5000);

    // Cut sin from the primary: its gateways turn not-ready and the front door sends sin's new
    // clients to the nearest ready region (ams); heal, and sin is served from sin again.
    run.proc.stdin.write("partition sin\n");
    run.proc.stdin.flush();
    expect((await run.waitEvent("control", 5000)).action).toBe("partition");
    const sinReady = async () => Promise.all(ready.gateways.filter((g) => g.region === "sin").map(async (g) => (await fetch(`${g.http}/ready`)).status));
    await eventually(sinReady, (s) => s.every((x) => x === 503), "sin gateways not ready while cut", 100, 100);
    // A refusal is a fair answer for a moment (the door's poll lags the cut): the client tries again.
    const tryFront = async (user: "carol", region: string) => {
      try {
        const c = await viaFront(user, region);
        clients.push(c);
        return c;
      } catch {
        return null;
      }
    };
    const carol = (await eventually(() => tryFront("carol", "sin"), (c) => c?.welcome?.region === "ams", "a new sin client served from ams", 20, 200))!;
    expect(carol.welcome!.region).toBe("ams");
    run.proc.stdin.write("heal sin\n");
    run.proc.stdin.flush();
    await eventually(sinReady, (s) => s.every((x) => x === 200), "sin gateways ready after the heal", 100, 100);
    const back = (await eventually(() => tryFront("carol", "sin"), (c) => c?.welcome?.region === "sin", "a new sin client served from sin again", 20, 200))!;
    expect(back.welcome!.region).toBe("sin");

    const pids = pidsOf(run);
    expect(pids.length).toBe(3 + 6 + 1);
    run.proc.kill("SIGTERM");
    const code = await Promise.race([run.proc.exited, Bun.sleep(20_000).then(() => "timeout" as const)]);
    expect(code).toBe(0);
    await eventually(async () => pids.filter(isAlive), (l) => l.length === 0, "processes still alive", 20, 100);
    expect(await portRefuses(front)).toBe(true);
  }, 120_000);

  test("a port in use is refused before anything starts", async () => {
    const blocker = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const p1 = await freePort();
      const p2 = await freePort();
      const run = startScript(["--json", "--quiet", "--ports", `${p1},${blocker.port},${p2}`]);
      const code = await Promise.race([run.proc.exited, Bun.sleep(15_000).then(() => "timeout" as const)]);
      expect(code).toBe(2);
      expect(run.output()).toContain(`port ${blocker.port}`);
      expect(run.events.filter((e) => e.event === "spawn")).toEqual([]);
    } finally {
      blocker.stop(true);
    }
  }, 20_000);

  test("a gateway that cannot start takes Redis down with it", async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    // An invalid value makes every gateway exit 2 at start-up, after Redis is already running.
    const run = startScript(["--json", "--quiet", "--ports", ports.join(",")], { WSGATE_MAX_PAYLOAD: "lots" });
    const code = await Promise.race([run.proc.exited, Bun.sleep(30_000).then(() => "timeout" as const)]);
    expect(code).toBe(1);
    expect(run.events.some((e) => e.event === "ready")).toBe(false);
    const pids = pidsOf(run);
    expect(run.events.filter((e) => e.event === "spawn" && e.kind === "redis").length).toBe(3);
    await eventually(async () => pids.filter(isAlive), (l) => l.length === 0, "processes still alive", 20, 100);
  }, 40_000);
});
