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
  test("defaults: ports 8081-8083, free Redis ports, loopback, short drain", () => {
    const o = parseArgs([]);
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

  test("bad flags are usage errors", () => {
    for (const argv of [["--base-port"], ["--base-port", "x"], ["--base-port", "65534"], ["--ports", "1,2"], ["--ports", "7001,7001,7002"], ["--nope"], ["--redis-port", "8081"]])
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
});

// --- the real cluster ---

interface ReadyEvent {
  event: "ready";
  pid: number;
  redis: { primary: { url: string; port: number; pid: number }; replica: { url: string; port: number; pid: number } };
  gateways: { id: string; region: string; port: number; http: string; ws: string; pid: number; readsFrom: string }[];
  adminToken: string;
  tokens: Record<string, string>;
}

/** A started `bun run cluster` with its JSON events collected from stdout. */
interface ScriptRun {
  proc: Subprocess;
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
    expect(pids.length).toBe(2 + 3 + 1); // primary, replica, three gateways, the script
    run.proc.kill("SIGTERM");
    const code = await Promise.race([run.proc.exited, Bun.sleep(20_000).then(() => "timeout" as const)]);
    expect(code).toBe(0);
    expect(run.events.some((e) => e.event === "stopped")).toBe(true);
    await eventually(async () => pids.filter(isAlive), (l) => l.length === 0, "processes still alive", 20, 100);
    for (const p of [...ports, ready.redis.primary.port, ready.redis.replica.port]) expect(await portRefuses(p)).toBe(true);
  }, 90_000);

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
    expect(run.events.filter((e) => e.event === "spawn" && e.kind === "redis").length).toBe(2);
    await eventually(async () => pids.filter(isAlive), (l) => l.length === 0, "processes still alive", 20, 100);
  }, 40_000);
});
