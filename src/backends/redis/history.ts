// Direct-message history in Redis: one stream and one meta hash per user ({user}-tagged, one slot). The
// append script also publishes each copy (the same round trip routes it), so the broker's send path puts
// batches of appends into its per-turn pipelines (appendArgs/appendResults); a resume reads page by page.
import { parseOffset } from "../../offsets.ts";
import type { History, HistoryItem, ReplayCursor, StoredFrame } from "../types.ts";
import type { RedisClients } from "./clients.ts";
import { channels, keys } from "./keys.ts";

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

  constructor(
    private readonly r: RedisClients,
    private readonly opts: RedisHistoryOptions,
    /** Decides when the keys' expiry needs renewing (with a margin for skew between gateways). */
    private readonly now: () => number = Date.now,
  ) {
    this.publish = r.sharded ? "SPUBLISH" : "PUBLISH";
  }

  /** Arguments of one wsgAppend call (numkeys first) for copies that share a slot on Redis Cluster. */
  appendArgs(items: readonly HistoryItem[]): (string | number)[] {
    const keyArgs: string[] = [];
    const argv: (string | number)[] = [this.opts.origin, this.opts.size, this.opts.ttlS * 1000, this.opts.maxBytes, this.publish, this.now()];
    for (const it of items) {
      keyArgs.push(keys.history(it.user), keys.historyMeta(it.user));
      argv.push(channels.user(it.user), it.head, it.tail);
    }
    return [keyArgs.length, ...keyArgs, ...argv];
  }

  async append(items: readonly HistoryItem[]): Promise<StoredFrame[]> {
    const offsets = (await this.r.send.wsgAppend(...this.appendArgs(items))) as string[];
    return items.map((it, i) => ({ offset: offsets[i]!, frame: it.head + `,"offset":"${offsets[i]}"` + it.tail }));
  }

  async replay(user: string, sinceStr: string): Promise<ReplayCursor> {
    const since = parseOffset(sinceStr)!;
    const hk = keys.history(user);
    // Read from the primary: a lagging replica would hide the newest messages.
    const [epoch, start, last, recovered, flat] = (await this.r.cmd.wsgReplay(
      hk,
      keys.historyMeta(user),
      since.epoch,
      String(since.seq),
      this.opts.size,
      this.opts.maxBytes,
      FIRST_PAGE_BYTES,
    )) as [string | null, number, number, number, string[]];
    if (!epoch) return { recovered: false, count: 0, next: async () => [] };
    let page: Entry[] | null = toFrames(epoch, flat);
    let lastId = "";
    let biggest = 1;
    let done = false;
    const cmd = this.r.cmd;
    return {
      recovered: recovered === 1,
      count: Math.max(0, last - start + 1),
      async next() {
        if (page === null && !done) {
          // Later pages are plain XRANGEs up to the last seq the first read saw: newer ones arrive live.
          const count = Math.max(1, Math.min(MAX_PAGE, Math.floor(PAGE_BYTES / biggest)));
          const rows = (await cmd.xrange(hk, `(${lastId}`, String(last), "COUNT", count)) as [string, string[]][];
          page = rows.map(([id, f]) => ({ offset: `${epoch}:${seqOf(id)}`, frame: f[1]!, id }));
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

/** The seq part of an entry id `<seq>-<bytes before>`, kept as a string (no float formatting on the way). */
const seqOf = (id: string) => id.slice(0, id.indexOf("-"));

function toFrames(epoch: string, flat: string[]): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < flat.length; i += 2) out.push({ offset: `${epoch}:${seqOf(flat[i]!)}`, frame: flat[i + 1]!, id: flat[i]! });
  return out;
}
