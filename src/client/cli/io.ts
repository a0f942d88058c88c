// Where CLI commands read their environment and write their output (injectable for tests).

export interface Io {
  env: Record<string, string | undefined>;
  out: (text: string) => void;
  err: (text: string) => void;
  /** Whether stdout is a terminal (pretty, coloured output) or a pipe (one JSON line per frame). */
  tty: boolean;
}

export function processIo(): Io {
  return {
    env: process.env,
    out: (t) => process.stdout.write(t + "\n"),
    err: (t) => process.stderr.write(t + "\n"),
    tty: Boolean(process.stdout.isTTY),
  };
}
