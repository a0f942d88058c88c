// What Fly.io's proxy does for a client, on one machine: a new WebSocket goes to a ready gateway in
// the client's region (`?region=`, else the `fly-region` header, else the first region), and when
// that region has none ready, to the nearest region that does, by round trip. Readiness comes from
// polling each gateway's /ready. Frames are relayed both ways; plain HTTP is forwarded too.
//
// Not a production proxy: no backpressure between the two sides (a demo and test tool).
import type { Server, ServerWebSocket } from "bun";
import type { RttTable } from "./regions.ts";

export interface FrontGateway { id: string; region: string; http: string }

export interface FrontDoorOptions {
  host?: string;
  port?: number;
  gateways: FrontGateway[];
  rtt: RttTable;
  /** How often every gateway's /ready is asked (default 250 ms). */
  pollMs?: number;
}

export interface FrontDoor {
  readonly port: number;
  /** The gateway a new connection from `region` would get now (null: none ready). */
  pick(region?: string): FrontGateway | null;
  ready(): Record<string, boolean>;
  /** Open relayed WebSockets per gateway id. */
  connections(): Record<string, number>;
  close(): void;
}

interface Relay {
  gw: FrontGateway;
  up: WebSocket;
  client: ServerWebSocket<Relay> | null;
  pending: (string | ArrayBuffer)[];
  upClosed: { code: number; reason: string } | null;
}

/** Close codes an endpoint may send (1005/1006/1015 only describe what happened). */
const sendable = (code: number) => (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);

export async function startFrontDoor(opts: FrontDoorOptions): Promise<FrontDoor> {
  const readiness = new Map<string, boolean>(opts.gateways.map((g) => [g.id, false]));
  const open = new Map<string, number>(opts.gateways.map((g) => [g.id, 0]));
  const regions = [...new Set(opts.gateways.map((g) => g.region))];
  let rr = 0;
  let stopped = false;

  const poll = async () => {
    await Promise.all(
      opts.gateways.map(async (g) => {
        try {
          const r = await fetch(`${g.http}/ready`, { signal: AbortSignal.timeout(1000) });
          readiness.set(g.id, r.status === 200);
        } catch {
          readiness.set(g.id, false);
        }
      }),
    );
  };
  await poll();
  const timer = setInterval(() => void poll(), opts.pollMs ?? 250);

  const pick = (region?: string, skip: Set<string> = new Set()): FrontGateway | null => {
    const home = region && regions.includes(region) ? region : regions[0]!;
    for (const r of opts.rtt.byDistance(home)) {
      const ready = opts.gateways.filter((g) => g.region === r && readiness.get(g.id) && !skip.has(g.id));
      if (ready.length === 0) continue;
      // Fewest relayed connections; ties taken in turn.
      const least = Math.min(...ready.map((g) => open.get(g.id)!));
      const tied = ready.filter((g) => open.get(g.id) === least);
      return tied[rr++ % tied.length]!;
    }
    return null;
  };

  const clientRegion = (req: Request, url: URL) => url.searchParams.get("region") ?? req.headers.get("fly-region") ?? undefined;

  /** Opens the gateway side first, so a refused upgrade is tried elsewhere before the client sees it. */
  const dialUpstream = (gw: FrontGateway, path: string, req: Request): Promise<Relay | null> =>
    new Promise((resolve) => {
      const headers: Record<string, string> = {};
      const auth = req.headers.get("authorization");
      if (auth) headers.authorization = auth;
      const up = new WebSocket(`${gw.http.replace(/^http/, "ws")}${path}`, { headers } as unknown as string[]);
      up.binaryType = "arraybuffer";
      const relay: Relay = { gw, up, client: null, pending: [], upClosed: null };
      let settled = false;
      up.onopen = () => { settled = true; resolve(relay); };
      up.onerror = () => { if (!settled) { settled = true; resolve(null); } };
      up.onmessage = (e) => {
        if (relay.client) relay.client.send(e.data as string | ArrayBuffer);
        else relay.pending.push(e.data as string | ArrayBuffer);
      };
      up.onclose = (e) => {
        if (!settled) { settled = true; resolve(null); return; }
        relay.upClosed = { code: e.code, reason: e.reason };
        const c = relay.client;
        if (!c) return;
        if (sendable(e.code)) c.close(e.code, e.reason);
        else c.terminate();
      };
    });

  const server: Server<Relay> = Bun.serve<Relay>({
    hostname: opts.host ?? "127.0.0.1",
    port: opts.port ?? 0,
    async fetch(req, srv) {
      const url = new URL(req.url);
      const region = clientRegion(req, url);
      url.searchParams.delete("region");
      const path = `${url.pathname}${url.search}`;
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        const gw = pick(region);
        if (!gw) return Response.json({ error: { code: "unavailable", message: "no gateway is ready" } }, { status: 503 });
        const r = await fetch(`${gw.http}${path}`, { method: req.method, headers: req.headers, body: req.body, redirect: "manual" });
        const h = new Headers(r.headers);
        h.set("x-wsgate-gateway", gw.id);
        return new Response(r.body, { status: r.status, headers: h });
      }
      // A gateway may have turned not-ready since the last poll (a region cut refuses upgrades a poll
      // before this door hears of it): one that refuses is skipped, and the next nearest ready one tried,
      // until every gateway had its chance. Otherwise a region's whole first wave after a cut is refused.
      const skip = new Set<string>();
      for (let i = 0; i < opts.gateways.length; i++) {
        const gw = pick(region, skip);
        if (!gw) break;
        const relay = await dialUpstream(gw, path, req);
        if (!relay) { skip.add(gw.id); continue; }
        if (srv.upgrade(req, { data: relay, headers: { "x-wsgate-gateway": gw.id } })) return undefined;
        relay.up.close();
        return new Response("upgrade failed", { status: 400 });
      }
      return Response.json({ error: { code: "unavailable", message: "no gateway accepted the connection" } }, { status: 503, headers: { "retry-after": "1" } });
    },
    websocket: {
      open(ws) {
        const r = ws.data;
        r.client = ws;
        open.set(r.gw.id, (open.get(r.gw.id) ?? 0) + 1);
        for (const m of r.pending.splice(0)) ws.send(m);
        if (r.upClosed) {
          if (sendable(r.upClosed.code)) ws.close(r.upClosed.code, r.upClosed.reason);
          else ws.terminate();
        }
      },
      message(ws, m) {
        if (ws.data.up.readyState === WebSocket.OPEN) ws.data.up.send(m);
      },
      close(ws, code, reason) {
        open.set(ws.data.gw.id, (open.get(ws.data.gw.id) ?? 1) - 1);
        const up = ws.data.up;
        if (up.readyState === WebSocket.CLOSED || up.readyState === WebSocket.CLOSING) return;
        try {
          up.close(sendable(code) ? code : 1000, reason);
        } catch {
          up.close();
        }
      },
    },
  });

  return {
    port: server.port!,
    pick: (region) => pick(region),
    ready: () => Object.fromEntries(readiness),
    connections: () => Object.fromEntries(open),
    close() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      server.stop(true);
    },
  };
}
