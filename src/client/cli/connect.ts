// `wsgate connect`: an interactive session over the SDK. Lines are JSON frames or /shortcuts;
// every frame from the gateway is printed (pretty on a terminal, one JSON line per frame in a pipe).
import { createInterface } from "node:readline";
import { WsgateClient } from "../client.ts";
import { WsgateError } from "../errors.ts";
import type { ClientFrame, Json, ServerFrame } from "../types.ts";
import { gatewayUrl } from "../url.ts";
import { checkRoom, checkUser, list, parse, parseData, UsageError } from "./args.ts";
import { useColor, type Io } from "./io.ts";
import { mint, TOKEN_OPTIONS, tokenSpec } from "./token.ts";

export const CONNECT_HELP = `Usage: wsgate connect [URL] [auth] [options]

Open a WebSocket session and type frames: a JSON object, or a shortcut:
  /send USER[,USER...] DATA   direct message (DATA: JSON, else text)
  /join ROOM                  /leave ROOM
  /publish ROOM DATA          room message
  /presence USER [USER...]    who is online
  /who ROOM                   who is in a room
  /ping                       /help        /quit
Frames from the gateway are printed as they come (pretty on a terminal, one JSON line
each when piped). The session reconnects and resumes by itself, like the SDK.
With input from a pipe it exits once the input ends and every request is answered.

URL: ws(s)://host/ws, http(s)://host, or a bare host (wss; loopback hosts ws)
     (default: --url, else $WSGATE_URL, else ws://127.0.0.1:8080/ws)

Auth (one of):
  --token JWT         client token (default: $WSGATE_TOKEN)
  --sub USER          mint a token with WSGATE_JWT_SECRET (also --rooms, --ttl, --claim,
                      --secret as in 'wsgate token'); renewed on every reconnect
  --user USER         dev mode gateways (WSGATE_AUTH=none): connect as USER

Options:
  --since OFFSET      resume from this offset
  --wait MS           when the input ends, keep printing frames for MS more (default 0)
  --json              one JSON line per frame even on a terminal
  --no-color          no ANSI colours (also with NO_COLOR set)
  -h, --help          this help

When the gateway refuses the connection (bad token, too many connections), the HTTP status and
its JSON error are printed and the command exits 1 without retrying.

Exit codes: 0 ok; 1 could not connect, refused, closed by the gateway, or a request failed; 2 usage.`;

const SHORTCUTS = "shortcuts: /send USER DATA, /join ROOM, /leave ROOM, /publish ROOM DATA, /presence USER..., /who ROOM, /ping, /quit";

export async function connectCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...TOKEN_OPTIONS,
    token: { type: "string" },
    user: { type: "string" },
    since: { type: "string" },
    wait: { type: "string" },
  });
  if (values.help) {
    io.out(CONNECT_HELP);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  const url = positionals[0] ?? io.globals?.url ?? io.env.WSGATE_URL ?? "ws://127.0.0.1:8080/ws";
  const waitMs = values.wait === undefined ? 0 : Number(values.wait);
  if (!Number.isFinite(waitMs) || waitMs < 0) throw new UsageError(`--wait: expected milliseconds, got "${values.wait}"`);

  const spec = tokenSpec(values, io, false);
  const staticToken = values.token ?? (spec || values.user !== undefined ? undefined : io.env.WSGATE_TOKEN);
  const ways = [spec !== null, staticToken !== undefined, values.user !== undefined].filter(Boolean).length;
  if (ways > 1) throw new UsageError("use only one of --token, --sub and --user");
  if (ways === 0) throw new UsageError("no credentials: pass --token (or set WSGATE_TOKEN), --sub, or --user for a dev mode gateway");
  if (values.user !== undefined) checkUser("--user", values.user);

  const pretty = io.tty && !io.globals?.json;
  const token = spec ? () => mint(spec) : staticToken;
  let client: WsgateClient;
  try {
    client = new WsgateClient({
      url,
      ...(token !== undefined ? { token } : { user: values.user! }),
      ...(values.since !== undefined ? { since: values.since } : {}),
      autoConnect: false,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // Browsers never see why an upgrade was refused; a command line can ask: the same request as plain HTTP.
  const probe = async () => {
    const t = typeof token === "function" ? await token() : token;
    const wsUrl = gatewayUrl(url, { ...(t !== undefined ? { token: t } : { user: values.user! }), ...(values.since !== undefined ? { since: values.since } : {}) });
    return probeRefusal(wsUrl);
  };
  return new Session(client, io, pretty, waitMs, probe).run();
}

export interface Refusal {
  status: number;
  body: string;
}

/**
 * Repeats the upgrade request as plain HTTP to read the refusal a WebSocket client cannot see
 * (status and JSON error). Undefined when the request fails or is accepted (101).
 */
export async function probeRefusal(wsUrl: string, timeoutMs = 5000): Promise<Refusal | undefined> {
  const http = wsUrl.replace(/^ws(s?):/, "http$1:");
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  try {
    const res = await fetch(http, {
      headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": key },
      signal: AbortSignal.timeout(timeoutMs),
      redirect: "manual",
    });
    if (res.status === 101) return undefined;
    return { status: res.status, body: (await res.text()).trim().slice(0, 500) };
  } catch {
    return undefined;
  }
}

/** Refusals a retry cannot fix: bad token (401/403), bad request (400), per-user cap (429). */
const FINAL_REFUSALS = new Set([400, 401, 403, 404, 426, 429]);

class Session {
  private failures = 0;
  private inflight = new Set<Promise<unknown>>();
  private opened = false;
  private fatal: string | null = null;
  private finish!: (code: number) => void;
  private probing: Promise<void> | null = null;
  private readonly color: boolean;

  constructor(
    private readonly client: WsgateClient,
    private readonly io: Io,
    private readonly pretty: boolean,
    private readonly waitMs: number,
    private readonly probe: () => Promise<Refusal | undefined>,
  ) {
    this.color = pretty && useColor(io);
  }

  /** After the first failed attempt: ask the gateway why, print it, and stop when retrying cannot help. */
  private explainFailure(): void {
    this.probing ??= this.explain();
  }

  private async explain(): Promise<void> {
    const r = await this.probe();
    if (!r || this.opened) return;
    this.status(`refused: HTTP ${r.status} ${r.body}`);
    if (FINAL_REFUSALS.has(r.status)) {
      this.fatal = `the gateway refused the connection: HTTP ${r.status} ${r.body}`;
      this.client.close();
    }
  }

  async run(): Promise<number> {
    const { client, io } = this;
    const ended = new Promise<number>((r) => (this.finish = r));
    client.on("frame", (f) => this.print(f));
    client.on("open", (i) => {
      this.opened = true;
      const w = i.welcome;
      const resumed = i.recovered === undefined ? "" : i.recovered ? `, resumed (${i.replayed} replayed)` : ", resume incomplete: messages were lost";
      this.status(`connected to ${w.gateway} (${w.region}) as ${w.user}${resumed}`);
    });
    client.on("reconnecting", (i) => {
      if (!this.opened) this.explainFailure();
      if (!this.opened && i.attempt >= 3) {
        this.fatal = `could not connect (${i.attempt} attempts; last close ${i.code}): check the URL and the credentials`;
        client.close();
        return;
      }
      this.status(`disconnected (${i.code}), reconnecting in ${i.delayMs} ms`);
    });
    client.on("closed", (c) => {
      if (this.fatal === null && c.code !== 1000) this.fatal = `closed by the gateway: ${c.code}${c.reason ? ` ${c.reason}` : ""}`;
      // A close we asked for while a probe explains the refusal: the probe sets `fatal` first.
      this.finish(0);
    });
    client.on("error", (e) => this.status(`error: ${e.message}`));

    const rl = createInterface({ input: process.stdin, terminal: false });
    const interactive = Boolean(process.stdin.isTTY);
    if (interactive) this.status(`type JSON frames or ${SHORTCUTS}`);
    const onSigint = () => this.finish(0);
    process.on("SIGINT", onSigint);
    client.connect();

    const reading = (async () => {
      for await (const line of rl) {
        if (this.handle(line.trim()) === "quit") break;
      }
      // End of input: let every request settle, then linger if asked.
      await Promise.allSettled([...this.inflight]);
      if (this.waitMs > 0) await Bun.sleep(this.waitMs);
      this.finish(0);
    })();
    void reading;

    await ended;
    if (this.probing) await this.probing; // its explanation beats "could not connect"
    process.off("SIGINT", onSigint);
    rl.close();
    if (client.state !== "closed") client.close();
    if (this.fatal) {
      io.err(`wsgate: ${this.fatal}`);
      return 1;
    }
    return this.failures > 0 ? 1 : 0;
  }

  /** One input line; returns "quit" to stop reading. */
  private handle(line: string): "quit" | void {
    if (line === "") return;
    if (line.startsWith("{")) {
      let frame: Record<string, unknown>;
      try {
        frame = JSON.parse(line);
      } catch (err) {
        this.fail(`not JSON: ${(err as Error).message}`);
        return;
      }
      if (typeof frame.id === "string") this.client.sendFrame(frame as ClientFrame);
      else this.track(this.client.request(frame as ClientFrame));
      return;
    }
    if (!line.startsWith("/")) {
      this.fail(`type a JSON frame or a shortcut (${SHORTCUTS})`);
      return;
    }
    const [cmd, ...rest] = line.split(/\s+/);
    const arg = (i: number, name: string) => {
      const v = rest[i];
      if (v === undefined) throw new UsageError(`${cmd}: ${name} is missing`);
      return v;
    };
    // The data is the rest of the line after the fixed words, spaces included.
    const dataAfter = (n: number): Json => {
      const text = line.replace(new RegExp(`^(\\S+\\s+){${n + 1}}`), "");
      if (text === line) throw new UsageError(`${cmd}: DATA is missing`);
      return parseData(text) as Json;
    };
    try {
      switch (cmd) {
        case "/send": {
          const to = list(arg(0, "USER")).map((u) => checkUser("USER", u));
          this.track(this.client.send(to.length === 1 ? to[0]! : to, dataAfter(1)));
          return;
        }
        case "/join":
          this.track(this.client.join(checkRoom("ROOM", arg(0, "ROOM"))));
          return;
        case "/leave":
          this.track(this.client.leave(checkRoom("ROOM", arg(0, "ROOM"))));
          return;
        case "/publish":
          this.track(this.client.publish(checkRoom("ROOM", arg(0, "ROOM")), dataAfter(1)));
          return;
        case "/presence":
          if (rest.length === 0) throw new UsageError("/presence: USER is missing");
          this.track(this.client.presence(rest.flatMap((u) => list(u)).map((u) => checkUser("USER", u))));
          return;
        case "/who":
          this.track(this.client.roomPresence(checkRoom("ROOM", arg(0, "ROOM"))));
          return;
        case "/ping":
          this.track(this.client.ping());
          return;
        case "/help":
          this.status(SHORTCUTS);
          return;
        case "/quit":
        case "/exit":
          return "quit";
        default:
          throw new UsageError(`unknown shortcut ${cmd} (${SHORTCUTS})`);
      }
    } catch (err) {
      this.fail((err as Error).message);
    }
  }

  private track(p: Promise<unknown>): void {
    const settled = p.then(
      () => {},
      (err: WsgateError) => {
        this.failures++;
        // Gateway errors were printed as frames already; say so only for the SDK's own.
        if (["timeout", "queue_full", "closed", "disconnected"].includes(err.code)) this.status(`request failed: ${err.code}: ${err.message}`);
      },
    );
    this.inflight.add(settled);
    void settled.finally(() => this.inflight.delete(settled));
  }

  private fail(message: string): void {
    this.failures++;
    this.status(message);
  }

  private status(text: string): void {
    this.io.err(this.color ? `\x1b[2m* ${text}\x1b[0m` : `* ${text}`);
  }

  private print(f: ServerFrame): void {
    if (!this.pretty) {
      this.io.out(JSON.stringify(f));
      return;
    }
    const colour = f.type === "error" ? 31 : f.type === "message" ? 32 : f.type === "room" || f.type === "presence" ? 36 : 90;
    const { type: _type, ...rest } = f;
    const compact = JSON.stringify(rest);
    const label = this.color ? `\x1b[${colour}m< ${f.type}\x1b[0m` : `< ${f.type}`;
    // Short frames stay on one line; big payloads are indented to be readable.
    this.io.out(`${label} ${compact.length <= 160 ? compact : JSON.stringify(rest, null, 2)}`);
  }
}
