// Where CLI commands read their environment and write their output (injectable for tests).

/** Flags that mean the same to every command and may stand anywhere on the line (parsed by main). */
export interface Globals {
  url?: string;
  adminToken?: string;
  json?: boolean;
  /** --no-color given. */
  noColor?: boolean;
}

export interface Io {
  env: Record<string, string | undefined>;
  out: (text: string) => void;
  err: (text: string) => void;
  /** Whether stdout is a terminal (pretty output) or a pipe (one JSON line per frame). */
  tty: boolean;
  globals?: Globals;
}

export function processIo(): Io {
  return {
    env: process.env,
    out: (t) => process.stdout.write(t + "\n"),
    err: (t) => process.stderr.write(t + "\n"),
    tty: Boolean(process.stdout.isTTY),
  };
}

/** ANSI colour only on a terminal, and never with NO_COLOR set (https://no-color.org) or --no-color. */
export function useColor(io: Io): boolean {
  return io.tty && !io.globals?.noColor && !io.env.NO_COLOR;
}
