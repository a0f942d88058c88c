// The admin API commands: send, presence, gateways, kick, stats.
import { checkRoom, checkUser, list, parse, parseData, UsageError } from "./args.ts";
import { ADMIN_OPTIONS, ADMIN_OPTIONS_HELP, adminClient, wantsJson } from "./http.ts";
import type { Io } from "./io.ts";

export const SEND_HELP = `Usage: wsgate send USER[,USER...] DATA [options]
       wsgate send --room ROOM DATA [options]
       wsgate send --broadcast DATA [options]

Send through the admin API (from = null): a direct message to users (POST /v1/send),
a room message (POST /v1/rooms/:room/publish) or a broadcast to every connection
(POST /v1/broadcast). DATA is JSON when it parses, else a string; "-" reads stdin.

Options:
  --to USER           recipient (repeatable, or comma-separated), instead of the first argument
  --room ROOM         publish to this room
  --broadcast         send to every connection on every gateway
${ADMIN_OPTIONS_HELP}`;

export const PRESENCE_HELP = `Usage: wsgate presence USER [options]

Show whether USER is online and their connections on every gateway (GET /v1/presence/:user).
Exit code 0 whether online or not; 1 when the request fails.

Options:
${ADMIN_OPTIONS_HELP}`;

export const GATEWAYS_HELP = `Usage: wsgate gateways [options]

List every live gateway in the cluster, grouped by region (GET /v1/gateways).

Options:
${ADMIN_OPTIONS_HELP}`;

export const KICK_HELP = `Usage: wsgate kick USER [options]

Close all of USER's connections on every gateway with close code 4009
(DELETE /v1/users/:user/connections). The SDK does not reconnect after 4009.

Options:
${ADMIN_OPTIONS_HELP}`;

export const STATS_HELP = `Usage: wsgate stats [--gateway ID] [options]

Counters of the gateway behind --url (GET /stats), or of another gateway of the cluster with
--gateway ID (GET /stats?gateway=ID). On Fly.io the machine that answers replies with a fly-replay
header and Fly's proxy replays the request on that machine, so you get its own counters; elsewhere
you get its row from the cluster registry.

Options:
  --gateway ID        the gateway (Fly machine id) to ask about; 'wsgate gateways' lists them
${ADMIN_OPTIONS_HELP}`;

async function readData(arg: string | undefined): Promise<unknown> {
  if (arg === undefined) throw new UsageError("DATA is missing");
  if (arg === "-") return parseData((await new Response(Bun.stdin.stream()).text()).trim());
  return parseData(arg);
}

export async function sendCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...ADMIN_OPTIONS,
    to: { type: "string", multiple: true },
    room: { type: "string" },
    broadcast: { type: "boolean" },
  });
  if (values.help) return help(io, SEND_HELP);
  const modes = [values.to !== undefined, values.room !== undefined, values.broadcast === true].filter(Boolean).length;
  if (modes > 1) throw new UsageError("use only one of --to, --room and --broadcast");
  let args = positionals;
  let to = list(values.to);
  if (modes === 0) {
    if (args.length === 0) throw new UsageError("who to? give USER, --room ROOM or --broadcast");
    to = list(args[0]);
    args = args.slice(1);
  }
  if (args.length > 1) throw new UsageError(`unexpected argument "${args[1]}" (quote DATA with spaces)`);
  const data = await readData(args[0]);
  const admin = adminClient(values, io);

  if (values.room !== undefined) {
    const room = checkRoom("--room", values.room);
    await admin.call("POST", `/v1/rooms/${encodeURIComponent(room)}/publish`, { data });
    return done(io, wantsJson(io), {}, `published to ${room}`);
  }
  if (values.broadcast) {
    await admin.call("POST", "/v1/broadcast", { data });
    return done(io, wantsJson(io), {}, "broadcast sent");
  }
  if (to.length === 0) throw new UsageError("no recipient");
  if (to.length > 100) throw new UsageError("at most 100 recipients");
  for (const u of to) checkUser("recipient", u);
  const res = await admin.call<{ offsets?: Record<string, string> }>("POST", "/v1/send", { to: to.length === 1 ? to[0] : to, data });
  const offsets = Object.entries(res?.offsets ?? {}).map(([u, o]) => `${u}@${o}`);
  return done(io, wantsJson(io), res ?? {}, `sent to ${to.join(", ")}${offsets.length ? ` (offsets ${offsets.join(" ")})` : ""}`);
}

interface PresenceAnswer {
  user: string;
  online: boolean;
  connections: { conn: string; gateway: string; region: string; since: number }[];
}

export async function presenceCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, ADMIN_OPTIONS);
  if (values.help) return help(io, PRESENCE_HELP);
  const user = checkUser("USER", one(positionals, "USER"));
  const res = await adminClient(values, io).call<PresenceAnswer>("GET", `/v1/presence/${encodeURIComponent(user)}`);
  if (wantsJson(io)) return json(io, res);
  const lines = [`${res.user}: ${res.online ? "online" : "offline"}, ${res.connections.length} connection(s)`];
  if (res.connections.length > 0) {
    lines.push(
      table(
        ["CONN", "GATEWAY", "REGION", "SINCE"],
        res.connections.map((c) => [c.conn, c.gateway, c.region, new Date(c.since).toISOString()]),
      ),
    );
  }
  io.out(lines.join("\n"));
  return 0;
}

interface GatewaysAnswer {
  gateways: { id: string; region: string; version?: string; build?: string; connections: number; users: number; started: number; last_seen: number }[];
}

export async function gatewaysCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, ADMIN_OPTIONS);
  if (values.help) return help(io, GATEWAYS_HELP);
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const res = await adminClient(values, io).call<GatewaysAnswer>("GET", "/v1/gateways");
  if (wantsJson(io)) return json(io, res);
  const now = Date.now();
  const rows = [...res.gateways]
    .sort((a, b) => a.region.localeCompare(b.region) || a.id.localeCompare(b.id))
    .map((g) => [g.region, g.id, g.version ? `${g.version} (${g.build ?? "?"})` : "?", String(g.connections), String(g.users), ago(now - g.started), ago(now - g.last_seen) + " ago"]);
  const total = res.gateways.reduce((n, g) => n + g.connections, 0);
  io.out(table(["REGION", "GATEWAY", "VERSION", "CONNS", "USERS", "UP", "SEEN"], rows) + `\n${res.gateways.length} gateway(s), ${total} connection(s)`);
  return 0;
}

export async function kickCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, ADMIN_OPTIONS);
  if (values.help) return help(io, KICK_HELP);
  const user = checkUser("USER", one(positionals, "USER"));
  const res = await adminClient(values, io).call<{ closed: number }>("DELETE", `/v1/users/${encodeURIComponent(user)}/connections`);
  return done(io, wantsJson(io), res, `closed ${res.closed} connection(s) of ${user}`);
}

export async function statsCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, { ...ADMIN_OPTIONS, gateway: { type: "string" } });
  if (values.help) return help(io, STATS_HELP);
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const path = values.gateway === undefined ? "/stats" : `/stats?gateway=${encodeURIComponent(checkUser("--gateway", values.gateway))}`;
  const res = await adminClient(values, io).call<Record<string, unknown>>("GET", path);
  if (wantsJson(io)) return json(io, res);
  const rows = Object.entries(res).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)]);
  io.out(table(["FIELD", "VALUE"], rows));
  return 0;
}

function one(positionals: string[], name: string): string {
  if (positionals.length === 0) throw new UsageError(`${name} is missing`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  return positionals[0]!;
}

function help(io: Io, text: string): number {
  io.out(text);
  return 0;
}

function json(io: Io, value: unknown): number {
  io.out(JSON.stringify(value, null, 2));
  return 0;
}

function done(io: Io, asJson: boolean | undefined, value: unknown, summary: string): number {
  return asJson ? json(io, value) : (io.out(summary), 0);
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [fmt(head), ...rows.map(fmt)].join("\n");
}
