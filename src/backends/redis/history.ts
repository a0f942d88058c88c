// Direct-message history in Redis: one stream per user, and a counter of its big messages ({user}-tagged, one
// slot). The append script also publishes each copy (the same round trip routes it), so the broker's send path puts
// batches of appends into its per-turn pipelines (appendArgs); a resume reads page by page.
import { parseOffset } from "../../offsets.ts";
import { offsetOfId } from "../../protocol/envelope.ts";
import { offsetPart } from "../../protocol/outbound.ts";
import type { History, HistoryItem, ReplayCursor, StoredFrame } from "../types.ts";
import type { RedisClients } from "./clients.ts";
import { channels, keys } from "./keys.ts";
import { followRedirects, type SlotMap } from "./redirect.ts";

export interface RedisHistoryOptions {
  size: number;
  ttlS: number;
  maxBytes: number;
  /** Tags the published copies: the sending gateway delivers to its own users and skips this echo. */
  origin: string;
}

/**
 * A replay's first page holds about FIRST_PAGE_BYTES (most resumes: all of it, one round trip), later pages about
 * PAGE_BYTES each (one Redis reply each, so no resume holds Redis or the connection to it for long).
 */
const FIRST_PAGE_BYTES = 256 * 1024;
const PAGE_BYTES = 128 * 1024;
const MAX_PAGE = 512;

export class RedisHistory implements History {
  /** PUBLISH on one Redis or Sentinel, SPUBLISH (same slot as the keys) on Redis Cluster. */
  readonly publish: "PUBLISH" | "SPUBLISH";

  /**
   * When each user's keys next need their expiry renewed (this gateway's clock). A script call renews them to
   * 1.5 TTL (Redis's clock, relative, so later renewals by any gateway only move the deadline later); this
   * gateway asks again once 0.4 TTL passed, so history lives 1.1 to 1.5 TTL after the last message without a
   * PEXPIRE, or a read of the deadline, per message. A new epoch always gets its expiry in the script.
   */
  private readonly renewAt = new Map<string, number>();
  private sweepAbove = 1024;

  constructor(
    private readonly r: RedisClients,
    private readonly opts: RedisHistoryOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.publish = r.sharded ? "SPUBLISH" : "PUBLISH";
  }

  /** Arguments of one wsgAppend call (numkeys first) for copies that share a slot on Redis Cluster. */
  appendArgs(items: readonly HistoryItem[]): (string | number)[] {
    const keyArgs: string[] = [];
    const ttlMs = this.opts.ttlS * 1000;
    const argv: (string | number)[] = [this.opts.origin, this.opts.size, Math.round(ttlMs * 1.5), this.opts.maxBytes, this.publish];
    const now = this.now();
    for (const it of items) {
      keyArgs.push(keys.history(it.user), keys.historyBytes(it.user));
      const renew = !((this.renewAt.get(it.user) ?? -Infinity) > now);
      if (renew) this.renewAt.set(it.user, now + ttlMs * 0.4);
      // One argument, one stream field for the frame: each costs Redis a Lua string (issue 12).
      argv.push(channels.user(it.user), it.head + "\x01" + it.tail, renew ? "1" : "");
    }
    if (this.renewAt.size > this.sweepAbove) this.sweep(now);
    return [keyArgs.length, ...keyArgs, ...argv];
  }

  /** A call that failed may not have renewed its keys: the next message to these users renews them. */
  failed(items: readonly { user: string }[]) {
    for (const it of items) this.renewAt.delete(it.user);
  }

  private sweep(now: number) {
    for (const [user, at] of this.renewAt) if (at <= now) this.renewAt.delete(user);
    this.sweepAbove = Math.max(1024, this.renewAt.size * 2);
  }

  async append(items: readonly HistoryItem[]): Promise<StoredFrame[]> {
    const ids = (await this.r.send.wsgAppend(...this.appendArgs(items)).catch((err) => {
      this.failed(items);
      throw err;
    })) as string[];
    return items.map((it, i) => {
      const offset = offsetOfId(ids[i]!);
      return { offset, frame: it.head + offsetPart(offset) + it.tail };
    });
  }

  async replay(user: string, sinceStr: string): Promise<ReplayCursor> {
    const since = parseOffset(sinceStr)!;
    const hk = keys.history(user);
    const cmd = this.r.cmd;
    // Resumes and gap fills both read here: right after a slot moved, one may get a redirect (redirect.ts).
    const slots = this.r.topology === "cluster" ? (cmd as unknown as SlotMap) : null;
    // Read from the primary: a lagging replica would hide the newest messages.
    const [epoch, start, last, recovered, flat] = (await followRedirects(slots, () =>
      cmd.wsgReplay(hk, since.epoch, String(since.seq), this.opts.size, this.opts.maxBytes, FIRST_PAGE_BYTES),
    )) as [string | null, number, number, number, string[]];
    if (!epoch) return { recovered: false, count: 0, next: async () => [] };
    let page: Entry[] | null = toFrames(flat);
    let lastId = "";
    let biggest = 1;
    let done = false;
    return {
      recovered: recovered === 1,
      count: Math.max(0, last - start + 1),
      async next() {
        if (page === null && !done) {
          // Later pages are plain XRANGEs up to the last seq the first read saw: newer ones arrive live.
          const count = Math.max(1, Math.min(MAX_PAGE, Math.floor(PAGE_BYTES / biggest)));
          const rows = (await followRedirects(slots, () => cmd.xrange(hk, `(${lastId}`, `${epoch}-${last}`, "COUNT", count))) as [string, string[]][];
          // Field b (lua/append.lua): the frame is stored without its offset, head \x01 tail.
          page = rows.map(([id, f]) => entry(id, f[1]!));
        }
        const out = page ?? [];
        page = null;
        if (out.length === 0) {
          done = true;
          return out;
        }
        lastId = out[out.length - 1]!.id;
        biggest = Math.max(1, ...out.map((f) => f.frame.length));
        if (Number(seqOf(lastId)) >= last) done = true;
        return out;
      },
    };
  }

  close() {}
}

type Entry = StoredFrame & { id: string };

/** The seq part of an entry id `<epoch>-<seq>`, kept as a string (no float formatting on the way). */
const seqOf = (id: string) => id.slice(id.indexOf("-") + 1);

/** An entry id is its offset with '-' for ':'; the frame gets its offset back where the body has its \x01. */
function entry(id: string, body: string): Entry {
  const offset = offsetOfId(id);
  const cut = body.indexOf("\x01");
  return { offset, frame: body.slice(0, cut) + offsetPart(offset) + body.slice(cut + 1), id };
}

function toFrames(flat: string[]): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < flat.length; i += 2) out.push(entry(flat[i]!, flat[i + 1]!));
  return out;
}
