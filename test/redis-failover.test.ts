// PROTOCOL §8.3, "a primary failover is survived like a Redis restart": three gateways, 50 sender→receiver
// pairs across them, and the Redis primary killed with -9 while they talk. Runs per topology that can fail
// over (Sentinel: a replica is promoted; Redis Cluster: a primary of three, then restarted so it rejoins as a
// replica). One Redis killed and restarted empty is test/failover.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { TestClient } from "./helpers/client.ts";
import { adminJson, closeAll, connectUser, isDirect, readyStatus, waitFor } from "./helpers/cluster.ts";
import { startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { redisCli } from "../harness/redis-cli.ts";
import { GATEWAY_TOPOLOGIES, startTopology, type RedisSetup, type TopologyKind } from "../harness/topologies.ts";

const PAIRS = 50;
/** Per topology: WAIT n, and whether traffic needs the killed node back (WAIT 1 needs a replica again). */
const PLANS: { kind: TopologyKind; wait: number; restartBeforeRecovery: boolean; recoverWithinMs: number }[] = [
  { kind: "sentinel", wait: 0, restartBeforeRecovery: false, recoverWithinMs: 15_000 },
  { kind: "cluster", wait: 1, restartBeforeRecovery: true, recoverWithinMs: 20_000 },
];
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** `port:count` of sharded (cluster) or classic subscribers of a channel on every live primary. */
async function subscribedWhere(setup: RedisSetup, ch: string): Promise<string> {
  const sharded = setup.kind === "cluster";
  const counts = await Promise.all(
    (await setup.primaries()).map(async (n) => {
      const r = await redisCli(n.port, ["PUBSUB", sharded ? "SHARDNUMSUB" : "NUMSUB", ch]).catch((e) => `? ${e}`);
      const clients = await redisCli(n.port, ["CLIENT", "LIST"]).catch(() => "");
      const subs = clients.split("\n").filter((l) => /ssubscriber|\bsub=[1-9]/.test(l)).map((l) => l.split(" ").filter((f) => /^(addr|name|age|idle|sub|ssub|psub|multi|qbuf|omem|cmd)=/.test(f)).join(" "));
      return `${n.port}:${r.trim().split("\n")[1] ?? r}\n  ${subs.join("\n  ")}`;
    }),
  );
  const owner = setup.kind === "cluster" ? `; slot ${(await redisCli((await setup.primaries())[0]!.port, ["CLUSTER", "KEYSLOT", ch])).trim()}, nodes:\n${(await redisCli((await setup.primaries())[0]!.port, ["CLUSTER", "NODES"])).trim()}` : "";
  return counts.join("\n") + owner;
}

for (const plan of PLANS.filter((p) => GATEWAY_TOPOLOGIES.includes(p.kind) && (!process.env.WSGATE_TEST_TOPOLOGIES || process.env.WSGATE_TEST_TOPOLOGIES.includes(p.kind))))
  describe(`redis ${plan.kind}: kill -9 of the primary during traffic`, () => {
    let setup: RedisSetup;
    const gws: GatewayProc[] = [];
    const clients: TestClient[] = [];
    beforeAll(async () => {
      setup = await startTopology(plan.kind);
      gws.push(
        ...(await Promise.all(
          range(3).map((i) =>
            startGateway({
              ...setup.env,
              WSGATE_GATEWAY_ID: `fo-${plan.kind}-${i}`,
              WSGATE_REGION: ["ord", "ams", "sin"][i],
              WSGATE_RATE: "5000",
              WSGATE_PRESENCE_TTL_MS: "2000",
              WSGATE_HEARTBEAT_MS: "1000",
              WSGATE_REDIS_WAIT: String(plan.wait),
              WSGATE_REDIS_WAIT_MS: "500",
            }),
          ),
        )),
      );
    }, 60_000);
    afterAll(async () => {
      closeAll(clients);
      await Promise.all(gws.map((g) => g.kill("SIGKILL")));
      await setup?.stop();
    });

    test(`traffic resumes by itself within ${plan.recoverWithinMs / 1000} s, no client closed, /ready 200 and presence everywhere${plan.wait ? "; WAIT 1: every acked message delivered, none twice" : ""}`, async () => {
      const pairs = await Promise.all(
        range(PAIRS).map(async (i) => {
          const s = await connectUser(gws[i % 3]!, `fo-s${i}`);
          const r = await connectUser(gws[(i + 1) % 3]!, `fo-r${i}`);
          clients.push(s, r);
          return { i, s, r, recv: `fo-r${i}`, acked: [] as string[], failed: 0 };
        }),
      );
      let running = true;
      let lastFailAt = 0;
      const acksAt: number[] = [];
      const failures = new Map<string, number>();
      const loops = pairs.map(async (p) => {
        for (let n = 0; running && n < 2000; n++) {
          const reply = await p.s.request({ type: "send", to: p.recv, data: n }, 20_000).catch(() => ({ type: "timeout" }) as Record<string, any>);
          if (reply.type === "ack") {
            p.acked.push(reply.offsets[p.recv]);
            acksAt.push(Date.now());
          } else {
            p.failed++;
            lastFailAt = Date.now();
            if (process.env.FO_DEBUG) failures.set(`gw${p.i % 3} ${reply.code ?? reply.type}`, (failures.get(`gw${p.i % 3} ${reply.code ?? reply.type}`) ?? 0) + 1);
          }
          await Bun.sleep(50);
        }
      });
      await Bun.sleep(1000);
      const killed = await setup.killPrimary();
      const killedAt = Date.now();
      const failoverMs = await killed.waitFailover(20_000);
      if (plan.restartBeforeRecovery) {
        await killed.restart();
        await setup.waitReplicas(30_000);
      }
      // Recovered: every pair got an ack after the last failure, and another second of traffic went through.
      let dumped = false;
      const progress = setInterval(() => {
        if (process.env.FO_DEBUG && !dumped && Date.now() - killedAt > 8000) {
          dumped = true;
          for (const g of gws) console.log(g.id, g.output().split("\n").filter((l) => l && !l.includes("frame failed")).map((l) => l.slice(0, 300)).join("\n"), "\nlast failure:", g.output().split("\n").filter((l) => l.includes("frame failed")).at(-1)?.slice(0, 400));
        }
        if (process.env.FO_DEBUG) console.log(`+${Date.now() - killedAt} ms: acks ${acksAt.length}, last fail +${lastFailAt ? lastFailAt - killedAt : "-"} ${JSON.stringify([...failures])}`);
      }, 1000);
      await waitFor("every pair acked again", () => lastFailAt > 0 && acksAt.some((t) => t > lastFailAt + 1000) && Date.now() - lastFailAt > 1500, plan.recoverWithinMs + 5000, 100);
      clearInterval(progress);
      const recoveredAt = acksAt.find((t) => t > lastFailAt)!;
      running = false;
      await Promise.all(loops);
      if (!plan.restartBeforeRecovery) await killed.restart();

      // What each receiver saw live, and what a resume from the start of its history would add.
      let acked = 0, notLive = 0, lost = 0, duplicates = 0, failed = 0;
      await Bun.sleep(500);
      for (const p of pairs) {
        failed += p.failed;
        const live = p.r.frames.filter(isDirect).map((f) => f.offset as string);
        duplicates += live.length - new Set(live).size;
        acked += p.acked.length;
        const missing = p.acked.filter((o) => !live.includes(o));
        notLive += missing.length;
        if (missing.length) {
          const resumed = await connectUser(gws[(p.i + 1) % 3]!, p.recv, `${missing[0]!.split(":")[0]}:0`, 10_000).catch((err) => {
            if (process.env.FO_DEBUG) console.log(gws[(p.i + 1) % 3]!.output().split("\n").filter((l) => l && !l.includes("frame failed") && !l.includes("reaping")).map((l) => l.slice(0, 400)).join("\n"));
            throw new Error(`pair ${p.i} (gw${(p.i + 1) % 3}): resume failed: ${err.message}`);
          });
          clients.push(resumed);
          await Bun.sleep(300);
          const replayed = new Set(resumed.frames.filter(isDirect).map((f) => f.offset as string));
          lost += missing.filter((o) => !replayed.has(o)).length;
        }
      }
      const recoveryMs = recoveredAt - killedAt;
      console.log(
        `[failover ${plan.kind}, WAIT ${plan.wait}] promotion ${failoverMs} ms; sends acked again ${recoveryMs} ms after the kill; ` +
          `failed sends ${failed}; acked ${acked}; not delivered live ${notLive}; lost (not replayed either) ${lost}; duplicates ${duplicates}`,
      );
      expect(recoveryMs).toBeLessThan(plan.recoverWithinMs);
      expect(acked).toBeGreaterThan(PAIRS * 2);
      expect(duplicates).toBe(0);
      if (plan.wait) expect(lost).toBe(0);
      // A message sent now is acked and delivered on every pair.
      for (const p of pairs.slice(0, 10)) {
        const a = await p.s.request({ type: "send", to: p.recv, data: "after" }, 10_000);
        expect([p.i, a.type]).toEqual([p.i, "ack"]);
        const got = await p.r.next((f) => isDirect(f) && f.data === "after", 15_000).catch(async (err) => {
          // Where the receiver's channel is subscribed now, and what its gateway said: the cause, not just the symptom.
          const where = await subscribedWhere(setup, `wsg:u:{${p.recv}}`);
          const out = gws[(p.i + 1) % 3]!.output().split("\n").filter((l) => l && !l.includes("frame failed")).slice(-40).map((l) => l.slice(0, 300)).join("\n");
          const live = p.r.frames.filter(isDirect).map((f) => `${f.offset}=${f.data}`);
          throw new Error(
            `pair ${p.i} (gw${(p.i + 1) % 3}): "after" (acked ${a.offsets[p.recv]}) not delivered: ${err.message.slice(0, 60)}\nsubscribers per node: ${where}\n` +
              `live (${live.length}, last 8): ${live.slice(-8).join(" ")}\nacked (${p.acked.length}, last 8): ${p.acked.slice(-8).join(" ")}\n${out}`,
          );
        });
        expect(got.offset).toBe(a.offsets[p.recv]);
      }
      // Nobody was closed because of the failover.
      expect(pairs.filter((p) => p.s.closed || p.r.closed).length).toBe(0);
      // Every gateway ready, every gateway listed, every user online (presence re-asserted on the new primary).
      for (const g of gws) expect(await readyStatus(g)).toBe(200);
      await waitFor("three gateways listed", async () => ((await adminJson(gws[0]!, "/v1/gateways")).body.gateways?.length === 3 ? true : false), 10_000, 100);
      await waitFor("every user online", async () => {
        const r = await Promise.all(pairs.flatMap((p) => [p.recv, `fo-s${p.i}`]).map((u) => adminJson(gws[2]!, `/v1/presence/${u}`)));
        return r.every((x) => x.body.online === true);
      }, 10_000, 200);
    }, 120_000);
  });
