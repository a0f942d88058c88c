// Cluster broker: one channel per user and per room. On one Redis or Sentinel, classic Pub/Sub (Upstash speaks
// no sharded Pub/Sub); on Redis Cluster 7+, user and room channels are sharded (SPUBLISH/SSUBSCRIBE on the
// slot's owner) and only broadcast uses classic Pub/Sub: one channel, because a broadcast is for every
// gateway anyway and classic Pub/Sub already reaches every node.
// With history on, direct messages go out as append.lua calls (store + publish, many copies per call); all of
// one event-loop turn leave in one pipeline per node: one round trip, and with WSGATE_REDIS_WAIT one WAIT per pipeline.
import { decodeEnvelope, encodeKick, encodeMessage, offsetOfId } from "../../protocol/envelope.ts";
import { directHead, offsetPart, tsTail } from "../../protocol/outbound.ts";
import type { Logger } from "../../log.ts";
import type { Broker, Deliveries, DirectMessage, Replay } from "../types.ts";
import type { RedisClients } from "./clients.ts";
import type { RedisHistory } from "./history.ts";
import { channels, ROOM_CH, USER_CH } from "./keys.ts";
import type { ScriptedPipeline } from "./scripts.ts";
import type Redis from "ioredis";
import type { Cluster } from "ioredis";
import { keySlot } from "./slot.ts";
import { GapFill } from "./gap-fill.ts";
import { isRedirect } from "./redirect.ts";
import { ShardResubscriber, type ShardedSubscriber } from "./shard-resubscribe.ts";

const SUBSCRIBE_TIMEOUT_MS = 3000;

/** WAIT saw fewer replicas than WSGATE_REDIS_WAIT within WSGATE_REDIS_WAIT_MS: the send is not acked. */
export class WaitTimeoutError extends Error {
  /** The command's own reply (the offset): the message is stored, only the replicas' confirmation is missing. */
  result: unknown;
}

/**
 * A gap fill that failed (Redis not back for commands yet) is retried once a second, this many times; then its
 * users' local connections are closed so that their clients resume.
 */
const FILL_ATTEMPTS = 15;

/** One recipient's copy: stored and published by the append script (history on), or only published. */
type Outgoing = {
  user: string;
  head: string;
  tail: string;
  slot: number;
  resolve(v: unknown): void;
  reject(e: unknown): void;
};

/**
 * Appends of one script call hold at most this many copies (and batchBytes of frames): Redis checks maxmemory
 * once per script, so one call may pass it by at most about one maximal frame.
 */
const MAX_BATCH = 64;

export class RedisBroker implements Broker {
  private deliver: Deliveries | null = null;
  /** What this gateway wants to hear; re-sent after a reconnect, whatever ioredis remembered. */
  private readonly wanted = new Set<string>();

  /**
   * `origin` tags what this gateway publishes, so it can skip its own echo (it delivered locally already);
   * the history's append script publishes with the same tag. `batchBytes`: see MAX_BATCH.
   */
  constructor(
    private readonly r: RedisClients,
    private readonly history: RedisHistory | null,
    private readonly origin: string,
    private readonly batchBytes: number,
    private readonly log: Logger,
    /** WSGATE_REDIS_BATCH_MS: see schedule(). */
    private readonly batchMs = 0,
  ) {}

  async start(deliver: Deliveries) {
    this.deliver = deliver;
    const onMessage = (channel: string, payload: string) => this.dispatch(channel, payload);
    this.r.sub.on("message", onMessage);
    this.r.sub.on("smessage", onMessage);
    this.r.sub.on("ready", () => {
      const again = [...this.wanted].map((ch) => this.subscribeCmd(ch).catch((err) => this.log.warn("resubscribe failed", { err })));
      void Promise.all(again).then(() => this.fillGap());
    });
    // While the subscriber (or, in a cluster, one node's sharded subscriber) is away, messages reach history only.
    this.r.sub.on("close", () => this.gaps.begin());
    this.r.sub.on("-node", () => this.gaps.begin());
    if (this.r.topology === "cluster" && this.r.sharded) this.keepShardedSubscriptions();
    this.r.sub.on("subscribersReady", () => void this.fillGap());
    await this.r.sub.subscribe(channels.broadcast);
    this.wanted.add(channels.broadcast);
    if (this.r.topology === "cluster") {
      // Flushes go to node connections by EVALSHA: every node (replicas too: one may be promoted) gets the
      // send script up front, and any node ioredis connects later.
      const cluster = this.r.send as unknown as Cluster;
      cluster.on("+node", (node: Redis) => this.loadSendScript(node));
      await Promise.all(cluster.nodes("all").map((n) => this.loadSendScript(n)));
    }
  }

  private async loadSendScript(node: Redis) {
    const s = (this.r.send as unknown as { scriptsSet: Record<string, { lua: string }> }).scriptsSet.wsgAppend!;
    await node.script("LOAD", s.lua).catch((err) => this.log.warn("could not load the send script", { err: (err as Error).message }));
  }

  /** Sharded channels are subscribed one by one: ioredis sends each to the node owning its slot. */
  private subscribeCmd(ch: string): Promise<unknown> {
    return this.r.sharded && ch !== channels.broadcast ? this.r.sub.ssubscribe(ch) : this.r.sub.subscribe(ch);
  }

  private dispatch(channel: string, payload: string) {
    const d = this.deliver!;
    if (channel.startsWith(USER_CH)) {
      const user = channel.slice(USER_CH.length, -1);
      const e = decodeEnvelope(payload);
      // Our own echo: this broker delivered to its connections from the script's reply already.
      if (e?.kind === "message" && e.origin !== this.origin) {
        if (e.offset === undefined || this.gaps.note(user, e.offset)) d.user(user, e.frame, e.offset);
      }
      else if (e?.kind === "kick") d.kick(user, e.exceptConn, e.session);
    } else if (channel.startsWith(ROOM_CH)) d.room(channel.slice(ROOM_CH.length, -1), payload);
    else if (channel === channels.broadcast) d.broadcast(payload);
  }

  private closed = false;

  async close() {
    this.closed = true;
    // Queued and held copies still go out (and are acked or refused) before the connections close.
    if (this.outbox.length) await Promise.race([this.flush(), Bun.sleep(1000)]);
    if (this.fillRetry) clearTimeout(this.fillRetry);
    this.resubscriber?.stop();
    await this.r.close();
  }

  private readonly gaps = new GapFill();

  private resubscriber: ShardResubscriber | null = null;

  /** See shard-resubscribe.ts: every topology signal re-asserts each wanted sharded channel until confirmed. */
  private keepShardedSubscriptions() {
    this.resubscriber = new ShardResubscriber(this.r.sub as unknown as ShardedSubscriber, {
      wanted: () => [...this.wanted].filter((ch) => ch !== channels.broadcast),
      // Anything a misplaced subscription missed comes after each user's newest delivered offset.
      beforePass: () => this.gaps.begin(),
      afterPass: () => this.fillGap(),
      log: this.log,
    });
    this.resubscriber.start();
  }

  private fillRetry: ReturnType<typeof setTimeout> | null = null;

  private async fillGap(attempt = 1) {
    if (!this.gaps.open || this.closed) return;
    const users = [...this.wanted].filter((ch) => ch.startsWith(USER_CH)).map((ch) => ch.slice(USER_CH.length, -1));
    const { filled, failed, error } = await this.gaps.close(users, (u, since) => this.replay(u, since), (u, frame, offset) => this.deliver!.user(u, frame, offset));
    if (filled) this.log.info("delivered messages published while the subscriber was away", { count: filled });
    if (failed.length === 0) return;
    const err = error instanceof Error ? error.message : String(error);
    if (attempt >= FILL_ATTEMPTS) {
      // Kept open, these users' gap would grow (offsets seen) until some later topology signal. Their clients
      // are told instead: closed, they resume from their own offsets and the history fills the gap.
      this.gaps.abandon(failed);
      for (const user of failed) this.deliver!.resume(user);
      this.log.warn("gave up filling the subscriber's gap; its users' connections closed to resume", { users: failed.slice(0, 10), count: failed.length, attempts: attempt, err });
      return;
    }
    // The subscriber is back before the command connection (history is read there): try again shortly.
    this.log.warn("could not fill the subscriber's gap yet", { err, attempt, count: failed.length });
    if (!this.fillRetry) {
      this.fillRetry = setTimeout(() => {
        this.fillRetry = null;
        void this.fillGap(attempt + 1);
      }, 1000);
      (this.fillRetry as { unref?: () => void }).unref?.();
    }
  }

  /**
   * Resolves once Redis confirmed the subscription. While the subscriber is down it fails at once (the channel
   * stays wanted and is subscribed on reconnect), so a join gets `unavailable` instead of waiting for Redis.
   */
  private async subscribe(ch: string) {
    this.wanted.add(ch);
    if (this.r.sub.status !== "ready") throw new Error("redis subscriber not connected");
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.subscribeCmd(ch),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("redis subscribe timed out")), SUBSCRIBE_TIMEOUT_MS))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async subscribeUser(user: string) {
    await this.subscribe(channels.user(user));
  }
  unsubscribeUser(user: string) {
    this.gaps.forget(user);
    this.unsubscribe(channels.user(user));
  }
  async subscribeRoom(room: string) {
    await this.subscribe(channels.room(room));
  }
  unsubscribeRoom(room: string) {
    this.unsubscribe(channels.room(room));
  }

  private unsubscribe(ch: string) {
    this.wanted.delete(ch);
    (this.r.sharded ? this.r.sub.sunsubscribe(ch) : this.r.sub.unsubscribe(ch)).catch(() => {});
  }

  async sendDirect(msg: DirectMessage, to: readonly string[]) {
    const tail = tsTail(msg.ts);
    const heads = to.map((user) => directHead(msg.fromJson, user, msg.dataJson));
    let waitErr: WaitTimeoutError | null = null;
    const res = await Promise.all(
      to.map((user, i) =>
        this.queued(user, heads[i]!, tail).catch((err) => {
          // Stored and published, not confirmed by the replicas: no ack, but our own users still get it.
          if (!(err instanceof WaitTimeoutError)) throw err;
          waitErr = err;
          return err.result;
        }),
      ),
    );
    // Users this gateway holds get it from the reply, one Pub/Sub hop sooner; the echo is skipped in dispatch.
    const d = this.deliver!;
    // No prototype: a user named __proto__ must be an ordinary key.
    const offsets: Record<string, string> = Object.create(null);
    to.forEach((user, i) => {
      const offset = this.history ? (res[i] as string) : undefined;
      if (offset !== undefined) offsets[user] = offset;
      if (this.wanted.has(channels.user(user)) && (offset === undefined || this.gaps.note(user, offset))) d.user(user, heads[i]! + (offset === undefined ? "" : offsetPart(offset)) + tail, offset);
    });
    if (waitErr) throw waitErr;
    return this.history ? offsets : undefined;
  }

  /**
   * Direct messages leave in one pipeline per event-loop turn, not one write per message: Bun runs each
   * WebSocket message in a task of its own, so ioredis's auto-pipelining (per tick) would write, and wake
   * Redis, once per message. setImmediate runs after every socket event of the turn. Order is kept.
   */
  private queued(user: string, head: string, tail: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.outbox.push({ user, head, tail, slot: this.r.topology === "cluster" ? keySlot(user) : 0, resolve, reject });
      if (this.outbox.length === 1) this.schedule();
    });
  }

  private readonly outbox: Outgoing[] = [];
  private lastFlushAt = -Infinity;
  private lastFlushSize = 0;
  private flushTimer: Timer | null = null;

  /**
   * With history, a loaded gateway flushes at most once per batchMs, so one append.lua call carries more copies:
   * a call has a fixed cost in Redis (Lua set-up, a pipeline read and wake-up: ~50 µs with the caches cold under
   * load) that its copies share. At 5k msgs/s over 2 gateways a turn carries ~3.5 copies and Redis spends
   * 1.36–1.54× the plain-XADD floor per message; with 1 ms, ~5.8 copies and 1.03×, for +0.26 ms at the median
   * (issue 12, docs/PERFORMANCE.md). Holding each batch a whole batchMs instead measured 1.01× for +1.07 ms.
   * "Loaded": the previous flush carried two or more; a gateway sending one copy at a time never waits. Without
   * history a flush is PUBLISHes, which Redis runs at the floor's cost anyway.
   */
  private schedule() {
    const wait = this.lastFlushAt + this.batchMs - performance.now();
    if (this.history && this.lastFlushSize >= 2 && wait > 0) this.flushTimer = setTimeout(this.flush, wait);
    else setImmediate(this.flush);
  }

  /** Settles when every pipeline it wrote has its replies. */
  private readonly flush = (): Promise<unknown> => {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const batch = this.outbox.splice(0);
    if (batch.length === 0) return Promise.resolve();
    this.lastFlushAt = performance.now();
    this.lastFlushSize = batch.length;
    return Promise.all(this.byNode(batch).map(([node, group]) => this.flushGroup(group, node)));
  };

  /**
   * A cluster pipeline must stay on one node. It is written straight to that node's connection (the one
   * ioredis's Cluster keeps for it): ioredis's own cluster pipeline costs the gateway ~3× the CPU per message.
   * On one Redis the whole batch is one group on `send`.
   */
  private byNode(batch: Outgoing[]): [Redis | null, Outgoing[]][] {
    if (this.r.topology !== "cluster") return [[null, batch]];
    const cluster = this.r.send as unknown as Cluster & { slots: string[][] };
    const nodes = new Map<string, Redis | null>();
    const groups = new Map<string, Outgoing[]>();
    for (const m of batch) {
      const key = cluster.slots[m.slot]?.[0] ?? "?";
      const g = groups.get(key);
      if (g) g.push(m);
      else groups.set(key, [m]);
    }
    for (const key of groups.keys()) nodes.set(key, cluster.nodes("master").find((n) => `${n.options.host}:${n.options.port}` === key) ?? null);
    return [...groups].map(([key, g]) => [nodes.get(key) ?? null, g]);
  }

  /**
   * Consecutive copies for one script call: same slot (Redis Cluster runs a script on one slot only), at most
   * MAX_BATCH copies and batchBytes of frames. Per-user order is kept: a user's copies share a slot and the
   * calls run in pipeline order.
   */
  private scriptCalls(batch: Outgoing[]): Outgoing[][] {
    const calls: Outgoing[][] = [];
    const open = new Map<number, { call: Outgoing[]; bytes: number }>();
    for (const m of batch) {
      const size = m.head.length + m.tail.length;
      let cur = open.get(m.slot);
      if (!cur || cur.call.length >= MAX_BATCH || (cur.call.length > 0 && cur.bytes + size > this.batchBytes)) {
        cur = { call: [], bytes: 0 };
        open.set(m.slot, cur);
        calls.push(cur.call);
      }
      cur.call.push(m);
      cur.bytes += size;
    }
    return calls;
  }

  private flushGroup(batch: Outgoing[], node: Redis | null): Promise<void> {
    const p = (node ?? this.r.send).pipeline() as ScriptedPipeline;
    const script = node ? (this.r.send as unknown as { scriptsSet: Record<string, { sha: string; lua: string }> }).scriptsSet : null;
    // Each pipeline entry settles these copies with its reply: an array of offsets, or PUBLISH's count.
    const entries: Outgoing[][] = [];
    if (this.history) {
      for (const call of this.scriptCalls(batch)) {
        const args = this.history.appendArgs(call);
        if (script) (p.evalsha as unknown as (...a: (string | number)[]) => void)(script.wsgAppend!.sha, ...args);
        else p.wsgAppend(...args);
        entries.push(call);
      }
    } else {
      for (const m of batch) {
        const ch = channels.user(m.user);
        const payload = encodeMessage(undefined, this.origin, m.head + m.tail);
        if (this.r.sharded) p.spublish(ch, payload);
        else p.publish(ch, payload);
        entries.push([m]);
      }
    }
    // One WAIT covers every write of this pipeline (same connection, issued before it).
    const wait = this.r.wait;
    if (wait.replicas > 0) p.wait(wait.replicas, wait.ms);
    return p.exec().then(
      (results) => {
        let waitErr: Error | null = null;
        if (wait.replicas > 0) {
          const [err, acked] = results?.[entries.length] ?? [new Error("redis pipeline aborted"), 0];
          if (err) waitErr = err;
          else if (Number(acked) < wait.replicas) {
            waitErr = new WaitTimeoutError(`WAIT: ${acked} of ${wait.replicas} replicas within ${wait.ms} ms`);
            this.r.counters.waitTimeouts += batch.length;
          }
        }
        if (this.r.topology === "cluster" && results?.some(([e]) => isRedirect(e))) this.refreshSlots();
        // A promoted replica has no scripts cached: these sends fail once (`unavailable`), the next flush finds it.
        if (node && results?.some(([e]) => e?.message.startsWith("NOSCRIPT"))) void this.loadSendScript(node);
        entries.forEach((call, i) => {
          const [err, res] = results?.[i] ?? [new Error("redis pipeline aborted"), null];
          if (err) this.history?.failed(call);
          call.forEach((m, k) => {
            // With history, the script's entry id is the offset with '-' for ':'.
            const id = this.history ? (res as string[] | null)?.[k] : undefined;
            const one = this.history ? (id === undefined ? id : offsetOfId(id)) : res;
            if (err) m.reject(err);
            else if (waitErr instanceof WaitTimeoutError) m.reject(Object.assign(new WaitTimeoutError(waitErr.message), { result: one }));
            else if (waitErr) m.reject(waitErr);
            else m.resolve(one);
          });
        });
      },
      (err) => {
        this.history?.failed(batch);
        batch.forEach((m) => m.reject(err));
      },
    );
  }

  /**
   * A pipeline that got MOVED/ASK while another of its commands (or its WAIT) succeeded is not retried by
   * ioredis, which then never learns the new owner either. Those sends fail (`unavailable`, never a late or
   * reordered ack) and the slot map is refreshed so the next flush goes to the right node.
   */
  private refreshSlots() {
    (this.r.send as unknown as { refreshSlotsCache(cb?: (err?: Error) => void): void }).refreshSlotsCache(() => {});
  }

  async publishRoom(room: string, frame: string) {
    if (this.r.sharded) await this.r.cmd.spublish(channels.room(room), frame);
    else await this.r.cmd.publish(channels.room(room), frame);
  }
  async broadcast(frame: string) {
    await this.r.cmd.publish(channels.broadcast, frame);
  }
  async kick(user: string, exceptConn?: string, session?: string) {
    if (this.r.sharded) await this.r.cmd.spublish(channels.user(user), encodeKick(exceptConn, session));
    else await this.r.cmd.publish(channels.user(user), encodeKick(exceptConn, session));
  }

  /** The whole retained history after `since`, for filling a subscriber's gap (not a client's resume). */
  private async replay(user: string, since: string): Promise<Replay> {
    if (!this.history) return { frames: [], recovered: false };
    const cursor = await this.history.replay(user, since);
    const frames: Replay["frames"] = [];
    for (let page = await cursor.next(); page.length; page = await cursor.next()) frames.push(...page);
    return { frames, recovered: cursor.recovered };
  }

  async sessionClock() {
    const [s, us] = (await this.r.cmd.time()) as unknown as [string, string];
    return Number(s) * 1_000_000 + Number(us);
  }

  state() {
    return this.r.state();
  }
}
