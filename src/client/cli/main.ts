// `wsgate` entry: dispatch to a command and map failures to exit codes (0 ok, 1 request failed, 2 usage).
import { gatewaysCommand, kickCommand, presenceCommand, sendCommand, statsCommand } from "./admin.ts";
import { RequestError, UsageError } from "./args.ts";
import { connectCommand } from "./connect.ts";
import pkg from "../../../package.json";
import { processIo, type Globals, type Io } from "./io.ts";
import { tokenCommand } from "./token.ts";

export const MAIN_HELP = `Usage: wsgate COMMAND [options]

Commands:
  token      mint an HS256 client token from WSGATE_JWT_SECRET
  connect    interactive WebSocket session (JSON frames or /send, /join, /presence ...)
  send       direct message, room message or broadcast via the admin API
  presence   a user's connections on every gateway (admin API)
  gateways   every live gateway, by region (admin API)
  kick       close all of a user's connections (admin API)
  stats      one gateway's counters (admin API)

Global options (anywhere on the line, before or after the command):
  --url URL            gateway URL (default: $WSGATE_URL); for connect, the WebSocket URL
  --admin-token TOKEN  admin API token (default: $WSGATE_ADMIN_TOKEN). Not --token: that is a
                       client token, for connect only
  --json               JSON output (the API's answer; one line per frame for connect)
  --no-color           no ANSI colours (also when NO_COLOR is set, or output is not a terminal)
  --version            print the version and exit
  -h, --help           this help

Run 'wsgate COMMAND --help' for a command's options.
Exit codes: 0 ok, 1 the request failed, 2 usage error.`;

/** Options of any command that take a value, so a value before the command is not taken for it. */
const VALUE_OPTIONS = new Set(["--sub", "--rooms", "--ttl", "--claim", "--secret", "--token", "--user", "--since", "--wait", "--to", "--room", "--gateway"]);

/**
 * Takes the global options out of argv wherever they stand and finds the command: the first word
 * that is neither an option nor an option's value. The rest keeps its order for the command's parser.
 */
export function splitArgs(argv: string[]): { globals: Globals; version: boolean; cmd?: string; rest: string[] } {
  const globals: Globals = {};
  let version = false;
  let cmd: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    const eq = /^(--[a-z-]+)=(.*)$/s.exec(a);
    const name = eq ? eq[1]! : a;
    const value = () => {
      if (eq) return eq[2]!;
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      return v;
    };
    if (name === "--url") globals.url = value();
    else if (name === "--admin-token") globals.adminToken = value();
    else if (a === "--json") globals.json = true;
    else if (a === "--no-color") globals.noColor = true;
    else if (a === "--version" || a === "-V") version = true;
    else if (cmd === undefined && !a.startsWith("-")) cmd = a;
    else {
      rest.push(a);
      if (!eq && VALUE_OPTIONS.has(a) && i + 1 < argv.length) rest.push(argv[++i]!);
    }
  }
  return { globals, version, cmd, rest };
}

const COMMANDS: Record<string, (argv: string[], io: Io) => Promise<number>> = {
  token: tokenCommand,
  connect: connectCommand,
  send: sendCommand,
  presence: presenceCommand,
  gateways: gatewaysCommand,
  kick: kickCommand,
  stats: statsCommand,
};

export async function main(argv: string[], baseIo: Io = processIo()): Promise<number> {
  let split: ReturnType<typeof splitArgs>;
  try {
    split = splitArgs(argv);
  } catch (err) {
    baseIo.err(`wsgate: ${(err as Error).message}\nRun 'wsgate --help' for usage.`);
    return 2;
  }
  const { globals, version, cmd, rest } = split;
  const io: Io = { ...baseIo, globals };
  if (version) {
    io.out(`wsgate ${pkg.version}`);
    return 0;
  }
  const helpAsked = rest.includes("--help") || rest.includes("-h");
  if (cmd === undefined || cmd === "help") {
    if (cmd === "help" && rest[0] && COMMANDS[rest[0]]) return main([rest[0], "--help"], baseIo);
    if (cmd === undefined && !helpAsked) {
      io.err(MAIN_HELP);
      return 2;
    }
    io.out(MAIN_HELP);
    return 0;
  }
  const run = COMMANDS[cmd];
  if (!run) {
    io.err(`wsgate: unknown command "${cmd}"\nRun 'wsgate --help' for the list.`);
    return 2;
  }
  try {
    return await run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`wsgate ${cmd}: ${err.message}\nRun 'wsgate ${cmd} --help' for usage.`);
      return 2;
    }
    if (err instanceof RequestError) {
      io.err(`wsgate ${cmd}: ${err.message}`);
      return 1;
    }
    io.err(`wsgate ${cmd}: ${(err as Error)?.stack ?? err}`);
    return 1;
  }
}
