// The last step of every outbound frame: held until the welcome, de-duplicated against a replay, written to
// the socket, and the slow consumer (or a connection that dropped a frame) closed. Also the Deliveries the
// backends hand frames to.
import type { Deliveries } from "../backends/types.ts";
import type { Conn } from "../connections.ts";
import { seenBefore } from "../offsets.ts";
import { CLOSE, type ErrorCode } from "../protocol/codes.ts";
import { errorFrame } from "../protocol/outbound.ts";
import type { Stats } from "../stats.ts";
import { slowConsumerBytes, type GatewayContext } from "./context.ts";

/** Frames held for a connection before its welcome; past this the client is not keeping up. */
const MAX_PENDING = 10_000;

export interface Delivery {
  /** Every outbound frame passes here. `offset` is set for direct messages with history. */
  emit(c: Conn, frame: string, offset?: string): void;
  close(c: Conn, code: number, reason: string): void;
  /** Writes at once, past the hold and the de-duplication: the welcome and replay of a resume. */
  write(c: Conn, frame: string): void;
  /** Resolves once at most `bytes` wait unsent on the socket, or the connection closed. */
  drained(c: Conn, bytes: number): Promise<void>;
  /** An error frame, counted by code. */
  fail(c: Conn, code: ErrorCode, message: string, id?: string): void;
  /** Fan-out of frames the backends route to this gateway. */
  deliveries: Deliveries;
}

export function closeConn(c: Conn, code: number, reason: string) {
  if (c.closed) return;
  c.closed = true;
  try {
    c.ws?.close(code, reason);
  } catch {}
}

/** The `ts` every message and room frame ends with (`…,"ts":<ms>}`), or NaN. */
export function frameTs(frame: string): number {
  const i = frame.lastIndexOf(',"ts":');
  return i < 0 ? NaN : parseInt(frame.slice(i + 6), 10);
}

/**
 * Bun's send: bytes written, -1 queued under backpressure, 0 dropped (never sent). A dropped frame must not
 * vanish: the connection is closed as a slow consumer, and the client resumes from its last offset.
 */
function sent(stats: Stats, c: Conn, r: number): number {
  if (r === 0) {
    stats.framesDropped++;
    closeConn(c, CLOSE.slow, "frame dropped; resume");
  } else stats.framesOut++;
  return r;
}

export function createDelivery({ config, stats, conns, now }: GatewayContext): Delivery {
  /** Once per message that has local recipients (not once per recipient): how old it is at the write. */
  const observe = (frame: string) => {
    const ts = frameTs(frame);
    if (ts === ts) stats.delivery.observeMs(now() - ts);
  };
  const slowBound = slowConsumerBytes(config);
  const close = closeConn;

  function emit(c: Conn, frame: string, offset?: string) {
    if (c.closed) return;
    // Kept for the connection's life, not cleared by the first newer message: live copies reach this gateway by
    // two paths (a local sender's script reply, other senders' Pub/Sub), so an older replayed message can still
    // arrive live after a newer one (the model test's seed 101 saw it delivered twice).
    if (offset !== undefined && c.replayedTo !== null && seenBefore(offset, c.replayedTo)) return;
    if (c.pending) {
      if (c.pending.length >= MAX_PENDING) return close(c, CLOSE.slow, "slow consumer");
      c.pending.push({ frame, offset });
      return;
    }
    if (sent(stats, c, c.ws!.send(frame)) === -1 && c.ws!.getBufferedAmount() > slowBound) close(c, CLOSE.slow, "slow consumer");
  }

  function write(c: Conn, frame: string) {
    if (c.closed) return;
    sent(stats, c, c.ws!.send(frame));
  }

  function drained(c: Conn, bytes: number): Promise<void> {
    if (c.closed || c.ws!.getBufferedAmount() <= bytes) return Promise.resolve();
    return new Promise((resolve) => {
      c.drained = () => {
        if (!c.closed && c.ws!.getBufferedAmount() > bytes) return;
        c.drained = null;
        resolve();
      };
    });
  }

  function fail(c: Conn, code: ErrorCode, message: string, id?: string) {
    stats.refusedFrame(code);
    emit(c, errorFrame(code, message, id));
  }

  const deliveries: Deliveries = {
    user(user, frame, offset) {
      const set = conns.byUser.get(user);
      if (!set) return;
      for (const c of set) emit(c, frame, offset);
      observe(frame);
    },
    room(room, frame) {
      const set = conns.byRoom.get(room);
      if (!set) return;
      for (const c of set) emit(c, frame);
      observe(frame);
    },
    broadcast(frame) {
      for (const c of conns.byId.values()) emit(c, frame);
      if (conns.size > 0) observe(frame);
    },
    kick(user, exceptConn) {
      const set = conns.byUser.get(user);
      if (!set) return;
      for (const c of [...set]) if (c.id !== exceptConn) close(c, CLOSE.replaced, exceptConn ? "replaced by a newer session" : "kicked");
    },
    resume(user) {
      const set = conns.byUser.get(user);
      if (!set) return;
      for (const c of [...set]) close(c, CLOSE.internal, "messages missed; resume");
    },
  };

  return { emit, write, drained, close, fail, deliveries };
}
