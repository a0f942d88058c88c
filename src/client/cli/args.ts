// Argument helpers shared by the CLI commands: strict option parsing and value formats.
import { ID_RE, ID_RULE, ROOM_RE, ROOM_RULE } from "../../protocol/grammar.ts";
import { parseArgs, type ParseArgsConfig } from "node:util";

/** A mistake in how the command was called: exit code 2, with the command's usage hint. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A request that was made and failed (network, HTTP status, connection): exit code 1. */
export class RequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RequestError";
  }
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** parseArgs in strict mode, with its errors turned into UsageErrors. */
export function parse<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ""));
  }
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** "90", "90s", "15m", "1h", "7d" → seconds. */
export function parseTtl(text: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!m || Number(m[1]) <= 0) throw new UsageError(`--ttl: expected a duration like 90s, 15m, 1h or 7d, got "${text}"`);
  return Number(m[1]) * UNITS[m[2] || "s"]!;
}

/** Message data from the command line: JSON when it parses, else the text as a string. */
export function parseData(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function checkUser(what: string, user: string): string {
  if (!ID_RE.test(user)) throw new UsageError(`${what}: "${user}" is not a valid user id (${ID_RULE})`);
  return user;
}

export function checkRoom(what: string, room: string): string {
  if (!ROOM_RE.test(room)) throw new UsageError(`${what}: "${room}" is not a valid room name (${ROOM_RULE})`);
  return room;
}

/** Repeatable and comma-separated: --to a --to b,c → [a, b, c]. */
export function list(values: string | string[] | undefined): string[] {
  const all = values === undefined ? [] : Array.isArray(values) ? values : [values];
  return all.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
}
