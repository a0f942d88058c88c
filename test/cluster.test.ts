// Issue 3, "three gateways behave as one": three real gateway processes on one Redis setup, clients on each,
// and every cross-gateway path of PROTOCOL §3–§6 checked with exact frames, codes and counts. The whole suite
// runs once per Redis topology (one redis-server, Sentinel, Redis Cluster: harness/topologies.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Frame, TestClient } from "./helpers/client.ts";
import { adminJson, closeAll, connectUser, isDirect, isMsg, leftover, presenceOf, take, waitFor } from "./helpers/cluster.ts";
import { startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { GATEWAY_TOPOLOGIES, startTopology, topologiesFromEnv, type RedisSetup } from "../harness/topologies.ts";

const REGIONS = ["ord", "ams", "sin"] as const;
const OFFSET = /^[^:\s]+:\d+$/;
const seqOf = (offset: string) => Number(offset.slice(offset.indexOf(":") + 1));

for (const kind of topologiesFromEnv(process.env, GATEWAY_TOPOLOGIES)) describe(`redis ${kind}`, () => {
  let setup: RedisSetup;
  const gws: GatewayProc[] = [];
  const clients: TestClient[] = [];

  async function user(gw: GatewayProc, name: string): Promise<TestClient> {
    const c = await connectUser(gw, name);
    clients.push(c);
    return c;
  }

  beforeAll(async () => {
    setup = await startTopology(kind);
    // A high rate limit: the ordering test sends 500 frames as fast as the socket takes them.
    const started = await Promise.all(
      REGIONS.map((region, i) =>
        startGateway({ ...setup.env, WSGATE_REGION: region, WSGATE_GATEWAY_ID: `cl-${region}-${i}`, WSGATE_RATE: "5000" }),
      ),
    );
    gws.push(...started);
  }, 60_000);

  afterAll(async () => {
    closeAll(clients);
    await Promise.all(gws.map((g) => g.kill("SIGKILL")));
    await setup?.stop();
  });

  describe(`cluster [${kind}]: three gateways on one Redis setup`, () => {
    test("GET /v1/gateways lists all three, from each of them", async () => {
      for (const g of gws) {
        const r = await adminJson(g, "/v1/gateways");
        expect(r.status).toBe(200);
        const rows = r.body.gateways as any[];
        expect(rows.map((x) => x.id).sort()).toEqual(gws.map((x) => x.id).sort());
        for (const row of rows) {
          const i = gws.findIndex((x) => x.id === row.id);
          expect(row.region).toBe(REGIONS[i]!);
          expect(Object.keys(row).sort()).toEqual(["build", "connections", "id", "last_seen", "region", "started", "users", "version"]);
          expect(typeof row.connections).toBe("number");
          expect(row.started).toBeLessThanOrEqual(Date.now());
          expect(Date.now() - row.last_seen).toBeLessThan(3000);
        }
      }
    });

    test("direct messages cross gateways; ack offsets match the delivered frames", async () => {
      const [a, b, c] = await Promise.all([user(gws[0]!, "dm-alice"), user(gws[1]!, "dm-bob"), user(gws[2]!, "dm-carol")]);
      expect(b.welcome!.gateway).toBe(gws[1]!.id);
      expect(b.welcome!.region).toBe("ams");

      const ack = await a.request({ type: "send", to: "dm-bob", data: { n: 1 } });
      expect(ack.type).toBe("ack");
      expect(ack.offsets["dm-bob"]).toMatch(OFFSET);
      const m = await b.next(isDirect);
      expect(m).toMatchObject({ type: "message", from: "dm-alice", to: "dm-bob", data: { n: 1 }, offset: ack.offsets["dm-bob"] });
      expect(typeof m.ts).toBe("number");

      // One send to two users on two other gateways: one copy each, each with its own offset.
      const ack2 = await c.request({ type: "send", to: ["dm-alice", "dm-bob"], data: "two" });
      expect(Object.keys(ack2.offsets).sort()).toEqual(["dm-alice", "dm-bob"]);
      const [ma, mb] = await Promise.all([a.next(isDirect), b.next(isDirect)]);
      expect(ma).toMatchObject({ from: "dm-carol", to: "dm-alice", data: "two", offset: ack2.offsets["dm-alice"] });
      expect(mb).toMatchObject({ from: "dm-carol", to: "dm-bob", data: "two", offset: ack2.offsets["dm-bob"] });
      expect(seqOf(mb.offset)).toBe(seqOf(m.offset) + 1);

      // Reply from the other side, and the admin API on a third gateway (from: null).
      const back = await b.request({ type: "send", to: "dm-alice", data: "back" });
      expect((await a.next(isDirect)).offset).toBe(back.offsets["dm-alice"]);
      const r = await adminJson(gws[2]!, "/v1/send", { method: "POST", body: JSON.stringify({ to: "dm-bob", data: { admin: true } }) });
      expect(r.status).toBe(202);
      const mAdmin = await b.next(isDirect);
      expect(mAdmin).toMatchObject({ from: null, to: "dm-bob", data: { admin: true }, offset: r.body.offsets["dm-bob"] });

      // Senders never get their own direct messages; nobody got anything twice.
      for (const x of [a, b, c]) expect(await leftover(x, isMsg, 200)).toEqual([]);
    });

    test("a user on three gateways (two connections on one) gets each message exactly once on each connection", async () => {
      const sender = await user(gws[0]!, "two-sender");
      const on1 = await user(gws[1]!, "two-dev");
      const on1b = await user(gws[1]!, "two-dev");
      const on2 = await user(gws[2]!, "two-dev");
      const on0 = await user(gws[0]!, "two-dev"); // on the sender's own gateway too
      const N = 30;
      const acks = await Promise.all(Array.from({ length: N }, (_, i) => sender.request({ type: "send", to: "two-dev", data: i })));
      const offsets = acks.map((a) => a.offsets["two-dev"] as string);
      expect(new Set(offsets).size).toBe(N);
      for (const conn of [on0, on1, on1b, on2]) {
        const got = await take(conn, N, isDirect);
        expect(got.map((f) => f.data)).toEqual(Array.from({ length: N }, (_, i) => i));
        expect(got.map((f) => f.offset)).toEqual(offsets);
        expect(await leftover(conn, isMsg, 300)).toEqual([]);
      }
      // Presence counts both connections, in both regions.
      const p = await sender.request({ type: "presence", users: ["two-dev"] });
      expect(p.users["two-dev"]).toEqual({ online: true, connections: 4, regions: ["ams", "ord", "sin"] });
    });

    test("500 messages from one sender arrive in order, no gap, no duplicate", async () => {
      const s = await user(gws[0]!, "ord-sender");
      const r = await user(gws[2]!, "ord-recv");
      const N = 500;
      const t0 = performance.now();
      for (let i = 0; i < N; i++) s.send({ type: "send", to: "ord-recv", data: i, id: `o${i}` });
      const got = await take(r, N, isDirect, 20_000);
      const ms = performance.now() - t0;
      const acks = await take(s, N, (f) => f.type === "ack" || f.type === "error", 10_000);
      expect(acks.filter((a) => a.type !== "ack")).toEqual([]);
      expect(got.map((f) => f.data)).toEqual(Array.from({ length: N }, (_, i) => i));
      const seqs = got.map((f) => seqOf(f.offset));
      for (let i = 1; i < N; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1);
      expect(new Set(got.map((f) => f.offset)).size).toBe(N);
      expect(await leftover(r, isMsg, 300)).toEqual([]);
      console.log(`[cluster] 500 cross-gateway messages in order: ${ms.toFixed(0)} ms (${((N / ms) * 1000).toFixed(0)} msg/s)`);
    });

    test("resuming on another gateway while messages flow: replay and live merge with no gap and no duplicate", async () => {
      const s = await user(gws[0]!, "rs-sender");
      const lineage: TestClient[] = [await user(gws[1]!, "rs-user")];
      let running = true;
      let sent = 0;
      const loop = (async () => {
        for (; running && sent < 20_000; sent++) {
          s.send({ type: "send", to: "rs-user", data: sent, id: `rs${sent}` });
          if (sent % 4 === 0) await Bun.sleep(1);
        }
      })();
      const RESUMES = 40;
      for (let i = 0; i < RESUMES; i++) {
        await Bun.sleep(20 + (i % 5) * 10);
        const cur = lineage.at(-1)!;
        // On a loaded machine a connection can live 20 ms without a frame: resume from something it saw.
        await waitFor("a message on the current connection", () => cur.frames.some(isDirect), 10_000);
        cur.close();
        await cur.waitClose();
        // The newest offset of the lineage, as a client keeps it: a connection that lived only a few ms on a
        // loaded machine may have received nothing itself.
        const since = lineage.map((c) => c.frames.filter(isDirect).at(-1)?.offset as string | undefined).filter(Boolean).at(-1) as string;
        const next = await connectUser(gws[(i % 2) + 1]!, "rs-user", since);
        clients.push(next);
        expect(next.welcome).toMatchObject({ recovered: true });
        lineage.push(next);
      }
      running = false;
      await loop;
      await waitFor("all acks", () => s.frames.filter((f) => f.id?.startsWith("rs")).length >= sent, 10_000);
      const acked = s.frames.filter((f) => f.type === "ack" && f.id?.startsWith("rs")).map((f) => f.offsets["rs-user"] as string);
      expect(acked.length).toBe(sent);
      const last = acked.reduce((m, o) => Math.max(m, seqOf(o)), 0);
      const final = lineage.at(-1)!;
      await waitFor("last message on the final connection", () => final.frames.some((f) => isDirect(f) && seqOf(f.offset) === last), 5000);
      // Each connection saw a consecutive run of seqs; together they are 1..last exactly once.
      const runs = lineage.map((c) => c.frames.filter(isDirect).map((f) => seqOf(f.offset)));
      const dups: string[] = [];
      runs.forEach((r, i) => r.forEach((q, k) => k > 0 && q !== r[k - 1]! + 1 && dups.push(`conn ${i}: ${r[k - 1]} then ${q}`)));
      const all = runs.flat();
      console.log(`[cluster] resume under load: ${RESUMES} resumes, ${sent} messages, replayed ${lineage.slice(1).reduce((n, c) => n + (c.welcome!.replayed as number), 0)}, out-of-sequence ${dups.length}`);
      expect(dups).toEqual([]);
      expect(all).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    }, 30_000);

    test("rooms span gateways: join/leave events, room presence, publish from any gateway", async () => {
      const room = "lobby-x";
      const [r0, r1] = [await user(gws[0]!, "rm-a"), await user(gws[1]!, "rm-b")];
      const r2 = await user(gws[2]!, "rm-c");
      const outsider = await user(gws[2]!, "rm-out"); // same gateway as a member, never joins

      // Each join event goes to every connection joined at that moment, the joiner's own included.
      const isRoomEv = (f: Frame) => f.type === "room" && f.room === room;
      expect(await r0.request({ type: "join", room })).toMatchObject({ type: "ack" });
      expect(await r1.request({ type: "join", room })).toMatchObject({ type: "ack" });
      expect(await r2.request({ type: "join", room })).toMatchObject({ type: "ack" });
      const joins = async (m: TestClient, n: number) => (await take(m, n, isRoomEv)).map((f) => `${f.event} ${f.user}`);
      expect(await joins(r0, 3)).toEqual(["join rm-a", "join rm-b", "join rm-c"]);
      expect(await joins(r1, 2)).toEqual(["join rm-b", "join rm-c"]);
      expect(await joins(r2, 1)).toEqual(["join rm-c"]);

      for (const [i, m] of [r0, r1, r2].entries()) {
        const p = await m.request({ type: "presence", room });
        expect(p).toMatchObject({ type: "presence", room, users: ["rm-a", "rm-b", "rm-c"] });
        void i;
      }

      // Publish from each gateway: every member on every gateway, sender included (joined), exactly once.
      for (const [i, pub] of [r0, r1, r2].entries()) {
        expect(await pub.request({ type: "publish", room, data: { from: i } })).toMatchObject({ type: "ack" });
        for (const m of [r0, r1, r2]) {
          const f = await m.next((x) => isMsg(x) && x.room === room);
          expect(f).toMatchObject({ type: "message", from: `rm-${"abc"[i]}`, room, data: { from: i } });
        }
      }
      // Admin publish on the outsider's gateway reaches all three members, from: null.
      expect((await adminJson(gws[2]!, `/v1/rooms/${room}/publish`, { method: "POST", body: JSON.stringify({ data: "adm" }) })).status).toBe(202);
      for (const m of [r0, r1, r2]) expect(await m.next((x) => isMsg(x) && x.room === room)).toMatchObject({ from: null, data: "adm" });

      // rm-b leaves: the others get exactly one leave event; presence drops rm-b everywhere.
      expect(await r1.request({ type: "leave", room })).toMatchObject({ type: "ack" });
      for (const m of [r0, r2]) expect(await m.next((f) => f.type === "room" && f.event === "leave")).toMatchObject({ room, user: "rm-b" });
      for (const g of [r0, r2]) expect((await g.request({ type: "presence", room })).users).toEqual(["rm-a", "rm-c"]);
      // rm-c's socket closes: that is a leave too.
      r2.close();
      expect(await r0.next((f) => f.type === "room" && f.event === "leave", 5000)).toMatchObject({ room, user: "rm-c" });
      expect((await r0.request({ type: "presence", room })).users).toEqual(["rm-a"]);

      for (const m of [r0, r1]) expect(await leftover(m, (f) => f.type === "room" || (isMsg(f) && f.room === room), 300)).toEqual([]);
      expect(await leftover(outsider, isMsg, 0)).toEqual([]);
    });

    test("a user joined on two gateways: one join event, leave only when the last one leaves", async () => {
      const room = "multi-room";
      const watcher = await user(gws[0]!, "mr-watch");
      await watcher.request({ type: "join", room });
      const d1 = await user(gws[1]!, "mr-dev");
      const d2 = await user(gws[2]!, "mr-dev");
      await d1.request({ type: "join", room });
      await d2.request({ type: "join", room });
      expect((await take(watcher, 2, (f) => f.type === "room")).map((f) => `${f.event} ${f.user}`)).toEqual(["join mr-watch", "join mr-dev"]);
      await d1.request({ type: "leave", room });
      expect(await leftover(watcher, (f) => f.type === "room", 400)).toEqual([]);
      expect((await watcher.request({ type: "presence", room })).users).toEqual(["mr-dev", "mr-watch"]);
      await d2.request({ type: "leave", room });
      expect(await watcher.next((f) => f.type === "room")).toMatchObject({ event: "leave", user: "mr-dev" });
      expect(await leftover(watcher, (f) => f.type === "room", 300)).toEqual([]);
    });

    test("broadcast reaches every connection on every gateway once", async () => {
      const all = [await user(gws[0]!, "bc-0"), await user(gws[1]!, "bc-1"), await user(gws[2]!, "bc-2"), await user(gws[2]!, "bc-3")];
      const r = await adminJson(gws[1]!, "/v1/broadcast", { method: "POST", body: JSON.stringify({ data: { hello: "all" } }) });
      expect(r.status).toBe(202);
      for (const c of all) expect(await c.next((f) => isMsg(f) && f.broadcast === true)).toMatchObject({ type: "message", from: null, broadcast: true, data: { hello: "all" } });
      for (const c of all) expect(await leftover(c, (f) => isMsg(f) && f.broadcast === true, 200)).toEqual([]);
    });

    test("DELETE /v1/users/:user/connections closes them on every gateway with 4009 and counts them all", async () => {
      const victims = [await user(gws[0]!, "kick-me"), await user(gws[1]!, "kick-me"), await user(gws[2]!, "kick-me"), await user(gws[2]!, "kick-me")];
      const bystander = await user(gws[2]!, "kick-not-me");
      const r = await adminJson(gws[0]!, "/v1/users/kick-me/connections", { method: "DELETE" });
      expect(r).toEqual({ status: 200, body: { closed: 4 } });
      for (const v of victims) expect((await v.waitClose(3000)).code).toBe(4009);
      expect(bystander.closed).toBeNull();
      await waitFor("kick-me offline", async () => !(await presenceOf(gws[1]!, "kick-me")).online, 3000);
      expect(await adminJson(gws[1]!, "/v1/users/kick-me/connections", { method: "DELETE" })).toEqual({ status: 200, body: { closed: 0 } });
    });

    test("presence across regions: one user in ord and sin, asked from ams", async () => {
      const p1 = await user(gws[0]!, "globe");
      await user(gws[2]!, "globe");
      const asker = await user(gws[1]!, "globe-asker");
      const p = await asker.request({ type: "presence", users: ["globe", "globe-nobody"] });
      expect(p).toEqual({
        type: "presence",
        id: p.id,
        users: {
          globe: { online: true, connections: 2, regions: ["ord", "sin"] },
          "globe-nobody": { online: false, connections: 0, regions: [] },
        },
      });
      const adm = await presenceOf(gws[1]!, "globe");
      expect(adm.online).toBe(true);
      expect(adm.connections.map((c: any) => [c.gateway, c.region]).sort()).toEqual([
        [gws[0]!.id, "ord"],
        [gws[2]!.id, "sin"],
      ]);
      p1.close();
      await waitFor("globe only in sin", async () => {
        const q = await asker.request({ type: "presence", users: ["globe"] });
        return q.users.globe.connections === 1 ? q.users.globe : false;
      }, 3000).then((g) => expect(g).toEqual({ online: true, connections: 1, regions: ["sin"] }));
    });
  });

  describe(`cluster [${kind}]: WSGATE_SESSIONS=single across gateways`, () => {
    const single: GatewayProc[] = [];
    const mine: TestClient[] = [];
    beforeAll(async () => {
      single.push(...(await Promise.all([0, 1].map(() => startGateway({ ...setup.env, WSGATE_SESSIONS: "single" })))));
    }, 60_000);
    afterAll(async () => {
      closeAll(mine);
      await Promise.all(single.map((g) => g.kill("SIGKILL")));
    });

    test("a newer connection on another gateway replaces the older one with 4009", async () => {
      const old = await connectUser(single[0]!, "solo");
      mine.push(old);
      const fresh = await connectUser(single[1]!, "solo");
      mine.push(fresh);
      expect((await old.waitClose(3000)).code).toBe(4009);
      expect(fresh.closed).toBeNull();
      // The survivor is the only connection and still gets messages.
      const s = await connectUser(single[0]!, "solo-sender");
      mine.push(s);
      const ack = await s.request({ type: "send", to: "solo", data: "still here" });
      expect(await fresh.next(isDirect)).toMatchObject({ data: "still here", offset: ack.offsets.solo });
      await waitFor("one connection for solo", async () => {
        const p = await presenceOf(single[1]!, "solo");
        return p.connections.length === 1 ? p : false;
      }, 3000).then((p) => expect(p.connections[0].gateway).toBe(single[1]!.id));
      expect(await leftover(fresh, (f: Frame) => f.type === "message", 200)).toEqual([]);
      expect(fresh.closed).toBeNull();
    });
  });
});
