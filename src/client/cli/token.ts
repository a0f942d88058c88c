// `wsgate token`: mint an HS256 client token, printed alone on stdout so $(wsgate token …) works.
import { SignJWT } from "jose";
import { checkUser, list, parse, parseData, parseTtl, UsageError } from "./args.ts";
import type { Io } from "./io.ts";

export const TOKEN_HELP = `Usage: wsgate token --sub USER [--rooms PATTERN]... [--ttl DURATION] [options]

Mint an HS256 client token signed with WSGATE_JWT_SECRET and print it alone on stdout.

Options:
  --sub USER          user id (the token's sub), required
  --rooms PATTERN     room pattern the user may join/publish to, e.g. 'chat:*';
                      repeat it or separate with commas; none = no rooms
  --ttl DURATION      lifetime: 90, 90s, 15m, 1h, 7d (default 1h)
  --claim KEY=VALUE   extra claim (VALUE parsed as JSON when it parses); repeatable
  --secret SECRET     signing secret (default: $WSGATE_JWT_SECRET)
  -h, --help          this help

Example:
  export TOKEN=$(wsgate token --sub alice --rooms 'chat:*' --ttl 1h)`;

export interface TokenSpec {
  sub: string;
  rooms: string[];
  ttlS: number;
  claims: Record<string, unknown>;
  secret: string;
}

/** Reads the token options (also used by `connect --sub`). */
export function tokenSpec(values: Record<string, unknown>, io: Io, subRequired = true): TokenSpec | null {
  const sub = values.sub as string | undefined;
  if (sub === undefined) {
    if (subRequired) throw new UsageError("--sub is required");
    return null;
  }
  const secret = (values.secret as string | undefined) ?? io.env.WSGATE_JWT_SECRET;
  if (!secret) throw new UsageError("no signing secret: set WSGATE_JWT_SECRET or pass --secret");
  const claims: Record<string, unknown> = {};
  for (const kv of list(values.claim as string[] | undefined)) {
    const i = kv.indexOf("=");
    if (i <= 0) throw new UsageError(`--claim: expected KEY=VALUE, got "${kv}"`);
    const key = kv.slice(0, i);
    if (["sub", "exp", "iat", "rooms"].includes(key)) throw new UsageError(`--claim: set ${key} with its own option`);
    claims[key] = parseData(kv.slice(i + 1));
  }
  return {
    sub: checkUser("--sub", sub),
    rooms: list(values.rooms as string[] | undefined),
    ttlS: parseTtl((values.ttl as string | undefined) ?? "1h"),
    claims,
    secret,
  };
}

export async function mint(spec: TokenSpec): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const body: Record<string, unknown> = { ...spec.claims, sub: spec.sub };
  if (spec.rooms.length > 0) body.rooms = spec.rooms;
  return new SignJWT(body)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now)
    .setExpirationTime(now + spec.ttlS)
    .sign(new TextEncoder().encode(spec.secret));
}

export const TOKEN_OPTIONS = {
  sub: { type: "string" },
  rooms: { type: "string", multiple: true },
  ttl: { type: "string" },
  claim: { type: "string", multiple: true },
  secret: { type: "string" },
} as const;

export async function tokenCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, TOKEN_OPTIONS);
  if (values.help) {
    io.out(TOKEN_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  io.out(await mint(tokenSpec(values, io)!));
  return 0;
}
