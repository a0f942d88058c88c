// The admin API client used by send/presence/gateways/kick/stats: URL, bearer token, readable errors.
import { RequestError, UsageError } from "./args.ts";
import type { Io } from "./io.ts";

export const ADMIN_OPTIONS = {
  // Accepted only to explain that it is the wrong flag here (see adminClient).
  token: { type: "string" },
} as const;

export const ADMIN_OPTIONS_HELP = `  --url URL           gateway base URL (default: $WSGATE_URL, else http://127.0.0.1:8080)
  --admin-token TOKEN admin token (default: $WSGATE_ADMIN_TOKEN)
  --json              print the API's JSON answer instead of a summary
  -h, --help          this help`;

/** --json anywhere on the line. */
export const wantsJson = (io: Io) => io.globals?.json === true;

export interface Admin {
  base: string;
  call<T = any>(method: string, path: string, body?: unknown): Promise<T>;
}

export function adminClient(values: { token?: string }, io: Io): Admin {
  if (values.token !== undefined)
    throw new UsageError("--token is a client token (wsgate connect); the admin API takes --admin-token or $WSGATE_ADMIN_TOKEN");
  const raw = io.globals?.url ?? io.env.WSGATE_URL ?? "http://127.0.0.1:8080";
  let base: string;
  try {
    const u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
    // Accept the WebSocket URL people already have at hand.
    if (u.protocol === "ws:") u.protocol = "http:";
    if (u.protocol === "wss:") u.protocol = "https:";
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`unsupported scheme ${u.protocol}`);
    if (u.pathname === "/ws") u.pathname = "/";
    base = u.origin + u.pathname.replace(/\/+$/, "");
  } catch (err) {
    throw new UsageError(`--url: "${raw}" is not a usable URL (${(err as Error).message})`);
  }
  const token = io.globals?.adminToken ?? io.env.WSGATE_ADMIN_TOKEN;
  if (!token) throw new UsageError("no admin token: pass --admin-token or set WSGATE_ADMIN_TOKEN");

  return {
    base,
    async call(method, path, body) {
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: "application/json" };
      if (body !== undefined) headers["content-type"] = "application/json";
      let res: Response;
      try {
        res = await fetch(base + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(10_000),
        });
      } catch (err) {
        throw new RequestError(`cannot reach ${base}: ${(err as Error).message}`);
      }
      // Fly's proxy acts on fly-replay itself; seeing it here means we talked to a machine directly.
      const replay = res.headers.get("fly-replay");
      if (replay)
        throw new RequestError(`${method} ${path}: the gateway answered "fly-replay: ${replay}": only Fly's proxy can replay it; use the app's public URL (https://<app>.fly.dev) as --url`);
      const text = await res.text();
      let parsed: any = undefined;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {}
      if (!res.ok) {
        const e = parsed?.error;
        const detail = e ? `${e.code}: ${e.message}` : text.slice(0, 200) || res.statusText;
        const hint =
          res.status === 401 ? " (wrong admin token?)" : res.status === 404 && !e ? " (admin API disabled: is WSGATE_ADMIN_TOKEN set on the gateway?)" : "";
        throw new RequestError(`${method} ${path} failed: ${res.status} ${detail}${hint}`);
      }
      return parsed as any;
    },
  };
}
