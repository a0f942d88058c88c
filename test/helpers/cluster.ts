// Shared bits of the cluster, failover and replica tests: users connecting with real tokens, bounded polling,
// and "nothing more arrived" checks that turn at-most-once into an assertion.
import { connect, type Frame, type TestClient } from "./client.ts";
import type { GatewayProc } from "./gateway.ts";
import { mintToken } from "./token.ts";

/** Every test user may join any room: room permissions are the core suite's business. */
export async function userUrl(gw: GatewayProc, user: string, since?: string): Promise<string> {
  const token = await mintToken(user, { rooms: ["*"] });
  return `${gw.ws}?token=${token}${since ? `&since=${encodeURIComponent(since)}` : ""}`;
}

export async function connectUser(gw: GatewayProc, user: string, since?: string, timeoutMs = 5000): Promise<TestClient> {
  return connect(await userUrl(gw, user, since), undefined, timeoutMs);
}

/** Polls `check` until it returns a value other than undefined/false; throws with `what` after timeoutMs. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 5000, stepMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    await Bun.sleep(stepMs);
  }
  throw new Error(`timeout after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
}

/** Frames of a client matching pred that arrived and were not consumed, after letting `settleMs` pass. */
export async function leftover(c: TestClient, pred: (f: Frame) => boolean, settleMs = 300): Promise<Frame[]> {
  await Bun.sleep(settleMs);
  return c.frames.filter(pred);
}

/** Takes `n` frames matching pred, in arrival order. */
export async function take(c: TestClient, n: number, pred: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame[]> {
  const out: Frame[] = [];
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < n; i++) out.push(await c.next(pred, Math.max(1, deadline - Date.now())));
  return out;
}

export const isMsg = (f: Frame) => f.type === "message";
export const isDirect = (f: Frame) => f.type === "message" && typeof f.to === "string";

export async function adminJson(gw: GatewayProc, path: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const r = await gw.admin(path, init);
  const text = await r.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: r.status, body };
}

export async function presenceOf(gw: GatewayProc, user: string): Promise<{ online: boolean; connections: any[] }> {
  const r = await adminJson(gw, `/v1/presence/${user}`);
  if (r.status !== 200) throw new Error(`presence ${user}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function readyStatus(gw: GatewayProc): Promise<number> {
  try {
    return (await fetch(`${gw.http}/ready`)).status;
  } catch {
    return -1;
  }
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export function closeAll(clients: Iterable<TestClient>) {
  for (const c of clients) c.close();
}
