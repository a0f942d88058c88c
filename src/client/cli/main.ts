// `wsgate` entry: dispatch to a command and map failures to exit codes (0 ok, 1 request failed, 2 usage).
import { gatewaysCommand, kickCommand, presenceCommand, sendCommand, statsCommand } from "./admin.ts";
import { RequestError, UsageError } from "./args.ts";
import { connectCommand } from "./connect.ts";
import { processIo, type Io } from "./io.ts";
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

Run 'wsgate COMMAND --help' for a command's options.
Admin commands use $WSGATE_URL (or --url) and $WSGATE_ADMIN_TOKEN (or --token).
Exit codes: 0 ok, 1 the request failed, 2 usage error.`;

const COMMANDS: Record<string, (argv: string[], io: Io) => Promise<number>> = {
  token: tokenCommand,
  connect: connectCommand,
  send: sendCommand,
  presence: presenceCommand,
  gateways: gatewaysCommand,
  kick: kickCommand,
  stats: statsCommand,
};

export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h") {
    if (cmd === "help" && rest[0] && COMMANDS[rest[0]]) return main([rest[0], "--help"], io);
    (cmd === undefined ? io.err : io.out)(MAIN_HELP);
    return cmd === undefined ? 2 : 0;
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
