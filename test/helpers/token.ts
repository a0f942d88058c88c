import { SignJWT } from "jose";

export const TEST_SECRET = "test-secret-that-is-long-enough-for-hs256";

/** HS256 token for tests; ttlS negative makes an already expired one. */
export async function mintToken(
  sub: string,
  opts: { rooms?: string[]; ttlS?: number; secret?: string } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = { sub };
  if (opts.rooms) claims.rooms = opts.rooms;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt(now)
    .setExpirationTime(now + (opts.ttlS ?? 3600))
    .sign(new TextEncoder().encode(opts.secret ?? TEST_SECRET));
}
