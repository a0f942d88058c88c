// Smoke test after a deploy (docs/DEPLOY.md §4): health and version, every gateway by region, then a
// direct message between two users connected in two different regions. Exit 0 when it all works.
//
//   export APP=my-wsgate WSGATE_JWT_SECRET=… WSGATE_ADMIN_TOKEN=…
//   bun scripts/smoke.ts                      # against https://$APP.fly.dev, users in ams and sin
//   SMOKE_REGIONS=ord,ams bun scripts/smoke.ts
//   WSGATE_URL=http://127.0.0.1:8081 bun scripts/smoke.ts   # a local gateway or `bun run cluster`
import { mint } from "../src/client/cli/token.ts";

const env = process.env;
function need(name: string): string {
  const v = env[name];
  if (!v) {
    console.error(`smoke: ${name} is not set (export it first; see docs/DEPLOY.md §4)`);
    process.exit(2);
  }
  return v;
}

const base = (env.WSGATE_URL ?? (env.APP ? `https://${env.APP}.fly.dev` : need("APP"))).replace(/\/+$/, "");
const secret = need("WSGATE_JWT_SECRET").split(",")[0]!.trim();
const admin = need("WSGATE_ADMIN_TOKEN").split(",")[0]!.trim();
const [fromRegion, toRegion] = (env.SMOKE_REGIONS ?? "ams,sin").split(",").map((r) => r.trim());
const wsBase = base.replace(/^http/, "ws");
const run = Date.now().toString(36);

async function getJson(path: string, auth = false): Promise<any> {
  const res = await fetch(base + path, { headers: auth ? { authorization: `Bearer ${admin}` } : {}, signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
  return res.json();
}

interface Open {
  ws: WebSocket;
  welcome: any;
  next: (pred: (f: any) => boolean, ms: number) => Promise<any>;
}

/** Connects as `user`, asking Fly's proxy for `region` (ignored off Fly), and waits for the welcome. */
async function open(user: string, region: string | undefined): Promise<Open> {
  const token = await mint({ sub: user, rooms: [], ttlS: 600, claims: {}, secret });
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (region) headers["fly-prefer-region"] = region;
  const ws = new WebSocket(`${wsBase}/ws`, { headers } as unknown as string[]);
  const frames: any[] = [];
  const waiters: { pred: (f: any) => boolean; resolve: (f: any) => void }[] = [];
  ws.addEventListener("message", (e) => {
    const f = JSON.parse(String(e.data));
    const i = waiters.findIndex((w) => w.pred(f));
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(f);
    else frames.push(f);
  });
  const next = (pred: (f: any) => boolean, ms: number) =>
    new Promise<any>((resolve, reject) => {
      const i = frames.findIndex(pred);
      if (i >= 0) return resolve(frames.splice(i, 1)[0]);
      const t = setTimeout(() => reject(new Error(`${user}: nothing matching within ${ms} ms`)), ms);
      waiters.push({ pred, resolve: (f) => (clearTimeout(t), resolve(f)) });
    });
  const closed = new Promise<never>((_, reject) => ws.addEventListener("close", (e) => reject(new Error(`${user}: closed ${e.code} ${e.reason}`))));
  const welcome = await Promise.race([next((f) => f.type === "welcome", 10_000), closed]);
  return { ws, welcome, next };
}

try {
  const health = await getJson("/health");
  console.log(`health: ${health.status}, version ${health.version} (${health.build}) at ${base}`);
  const { gateways } = await getJson("/v1/gateways", true);
  for (const g of gateways) console.log(`gateway ${g.id} in ${g.region}: ${g.connections} connections, version ${g.version ?? "?"} (${g.build ?? "?"})`);
  const a = await open(`smoke-a-${run}`, fromRegion);
  const b = await open(`smoke-b-${run}`, toRegion);
  console.log(`sender on ${a.welcome.gateway} (${a.welcome.region}), receiver on ${b.welcome.gateway} (${b.welcome.region})`);
  a.ws.send(JSON.stringify({ type: "send", id: "s1", to: b.welcome.user, data: { smoke: run } }));
  const ack = await a.next((f) => f.id === "s1", 5000);
  if (ack.type !== "ack") throw new Error(`send refused: ${JSON.stringify(ack)}`);
  const t0 = Date.now();
  const got = await b.next((f) => f.type === "message" && f.data?.smoke === run, 5000);
  console.log(`delivered ${a.welcome.region} -> ${b.welcome.region} in ${Date.now() - t0} ms after the ack (offset ${got.offset ?? "none"})`);
  a.ws.close();
  b.ws.close();
  console.log("smoke: ok");
  process.exit(0);
} catch (err) {
  console.error(`smoke: FAILED: ${(err as Error).message}`);
  process.exit(1);
}
