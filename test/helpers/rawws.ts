// A WebSocket client over a raw TCP socket, for what a browser-like client hides: the HTTP status of a refused
// upgrade, ping frames left unanswered (Bun's WebSocket auto-answers them), hand-built binary or oversized frames,
// and the exact close code a server sends.
import type { Socket } from "bun";

export interface RawFrame {
  opcode: number;
  payload: Buffer;
}

export const OP = { text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Parsed body when it is JSON. */
  json: any;
}

interface Waiter<T> {
  pred: (v: T) => boolean;
  resolve: (v: T) => void;
}

export class RawWs {
  readonly frames: RawFrame[] = [];
  pings = 0;
  /** Code and reason of the server's close frame, once one arrived. */
  closeFrame: { code: number; reason: string } | null = null;
  tcpClosed = false;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: Waiter<RawFrame>[] = [];
  private closeWaiters: (() => void)[] = [];

  constructor(private readonly sock: Socket<unknown>, rest: Buffer, private readonly autoPong: boolean) {
    if (rest.length) this.feed(rest);
  }

  feed(chunk: Buffer) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      const f = this.parseOne();
      if (!f) return;
      this.onFrame(f);
    }
  }

  private parseOne(): RawFrame | null {
    const b = this.buf;
    if (b.length < 2) return null;
    const opcode = b[0]! & 0x0f;
    const masked = (b[1]! & 0x80) !== 0;
    let len = b[1]! & 0x7f;
    let off = 2;
    if (len === 126) {
      if (b.length < 4) return null;
      len = b.readUInt16BE(2);
      off = 4;
    } else if (len === 127) {
      if (b.length < 10) return null;
      len = Number(b.readBigUInt64BE(2));
      off = 10;
    }
    const maskOff = off;
    if (masked) off += 4;
    if (b.length < off + len) return null;
    let payload = Buffer.from(b.subarray(off, off + len));
    if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= b[maskOff + (i % 4)]!;
    this.buf = b.subarray(off + len);
    return { opcode, payload };
  }

  private onFrame(f: RawFrame) {
    if (f.opcode === OP.ping) {
      this.pings++;
      if (this.autoPong) this.sendFrame(OP.pong, f.payload);
      return;
    }
    if (f.opcode === OP.close) {
      const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
      this.closeFrame = { code, reason: f.payload.subarray(2).toString("utf8") };
      for (const w of this.closeWaiters.splice(0)) w();
    }
    const i = this.waiters.findIndex((w) => w.pred(f));
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(f);
    else this.frames.push(f);
  }

  onTcpClose() {
    this.tcpClosed = true;
    for (const w of this.closeWaiters.splice(0)) w();
  }

  /** Client frames are masked (RFC 6455 §5.3); fin=false starts or continues a fragmented message. */
  sendFrame(opcode: number, payload: Uint8Array | string, opts: { fin?: boolean } = {}) {
    const data = typeof payload === "string" ? Buffer.from(payload, "utf8") : Buffer.from(payload);
    const len = data.length;
    const head: number[] = [(opts.fin === false ? 0 : 0x80) | opcode];
    if (len < 126) head.push(0x80 | len);
    else if (len < 65536) head.push(0x80 | 126, len >> 8, len & 0xff);
    else {
      head.push(0x80 | 127);
      const l = Buffer.alloc(8);
      l.writeBigUInt64BE(BigInt(len));
      head.push(...l);
    }
    const mask = crypto.getRandomValues(new Uint8Array(4));
    const masked = Buffer.alloc(len);
    for (let i = 0; i < len; i++) masked[i] = data[i]! ^ mask[i % 4]!;
    this.sock.write(Buffer.concat([Buffer.from(head), Buffer.from(mask), masked]));
  }

  sendText(s: string) {
    this.sendFrame(OP.text, s);
  }
  sendJson(v: unknown) {
    this.sendText(JSON.stringify(v));
  }
  sendBinary(b: Uint8Array) {
    this.sendFrame(OP.binary, b);
  }

  /** First queued or future frame matching pred. */
  next(pred: (f: RawFrame) => boolean, timeoutMs = 5000): Promise<RawFrame> {
    const i = this.frames.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.frames.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const w: Waiter<RawFrame> = { pred, resolve: (f) => { clearTimeout(t); resolve(f); } };
      const t = setTimeout(() => {
        const k = this.waiters.indexOf(w);
        if (k >= 0) this.waiters.splice(k, 1);
        reject(new Error(`raw ws: timeout waiting for a frame (${this.frames.length} queued)`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Next text frame parsed as JSON and matching pred. */
  async nextJson(pred: (v: any) => boolean = () => true, timeoutMs = 5000): Promise<any> {
    const f = await this.next((f) => f.opcode === OP.text && pred(JSON.parse(f.payload.toString("utf8"))), timeoutMs);
    return JSON.parse(f.payload.toString("utf8"));
  }

  /** Resolves when a close frame arrived or the TCP connection ended, whichever first. */
  waitClose(timeoutMs = 5000): Promise<{ code: number; reason: string } | null> {
    if (this.closeFrame || this.tcpClosed) return Promise.resolve(this.closeFrame);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("raw ws: timeout waiting for close")), timeoutMs);
      this.closeWaiters.push(() => { clearTimeout(t); resolve(this.closeFrame); });
    });
  }

  pause() {
    this.sock.pause();
  }
  resume() {
    this.sock.resume();
  }

  end() {
    try {
      this.sock.end();
    } catch {}
  }
}

export type RawUpgrade = { ok: true; ws: RawWs; answer: HttpAnswer } | { ok: false; answer: HttpAnswer };

/**
 * Sends a WebSocket upgrade request by hand. A 101 gives a RawWs; anything else gives the HTTP answer with its body,
 * which is how the gateway's refusals before the upgrade are checked.
 */
export function rawUpgrade(
  port: number,
  pathAndQuery: string,
  opts: { headers?: Record<string, string>; autoPong?: boolean; timeoutMs?: number } = {},
): Promise<RawUpgrade> {
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  const lines = [
    `GET ${pathAndQuery} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
    ...Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
    "",
    "",
  ];
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    let ws: RawWs | null = null;
    let answer: HttpAnswer | null = null;
    let bodyNeeded = -1;
    let settled = false;
    const settle = (v: RawUpgrade | Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (v instanceof Error) reject(v);
      else resolve(v);
    };
    const timer = setTimeout(() => settle(new Error(`raw upgrade to ${pathAndQuery}: no answer`)), opts.timeoutMs ?? 5000);
    const finishHttp = () => {
      if (!answer) return;
      try {
        answer.json = JSON.parse(answer.body);
      } catch {
        answer.json = null;
      }
      settle({ ok: false, answer });
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(s) {
          s.write(lines.join("\r\n"));
        },
        data(s, chunk) {
          const c = Buffer.from(chunk);
          if (ws) return ws.feed(c);
          head = Buffer.concat([head, c]);
          if (!answer) {
            const end = head.indexOf("\r\n\r\n");
            if (end < 0) return;
            const [statusLine, ...hs] = head.subarray(0, end).toString("latin1").split("\r\n");
            const headers: Record<string, string> = {};
            for (const h of hs) {
              const i = h.indexOf(":");
              headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
            }
            const status = Number(statusLine!.split(" ")[1]);
            const rest = head.subarray(end + 4);
            answer = { status, headers, body: "", json: null };
            if (status === 101) {
              ws = new RawWs(s as Socket<unknown>, rest, opts.autoPong ?? false);
              return settle({ ok: true, ws, answer });
            }
            bodyNeeded = headers["content-length"] !== undefined ? Number(headers["content-length"]) : -1;
            head = rest;
          }
          if (bodyNeeded >= 0 && head.length >= bodyNeeded) {
            answer.body = head.subarray(0, bodyNeeded).toString("utf8");
            s.end();
            finishHttp();
          }
        },
        close() {
          if (ws) return ws.onTcpClose();
          if (answer) {
            answer.body = head.toString("utf8");
            finishHttp();
          } else settle(new Error("raw upgrade: connection closed before an answer"));
        },
        error(_s, err) {
          settle(err);
        },
        connectError(_s, err) {
          settle(err);
        },
      },
    }).catch((err) => settle(err));
  });
}

/** Upgrades or throws with the refusal's status and body. */
export async function rawConnect(port: number, pathAndQuery: string, opts: { headers?: Record<string, string>; autoPong?: boolean } = {}) {
  const r = await rawUpgrade(port, pathAndQuery, opts);
  if (!r.ok) throw new Error(`upgrade refused: ${r.answer.status} ${r.answer.body}`);
  return r.ws;
}
