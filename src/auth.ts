// Who is connecting (PROTOCOL §2): HS256 secret, a cached JWKS, or dev mode's trusted ?user=.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from "jose";
import type { Config } from "./config.ts";
import { ALL_ROOMS, compileRoomPatterns, NO_ROOMS, type RoomMatcher } from "./room-patterns.ts";
import { ID_RE, ID_RULE } from "./protocol/grammar.ts";

const LEEWAY_S = 5;

export { ALL_ROOMS, compileRoomPatterns, type RoomMatcher } from "./room-patterns.ts";
/** §8.1: a token may carry at most this many `rooms` patterns. */
export const MAX_ROOM_PATTERNS = 100;

export interface Identity {
  user: string;
  rooms: RoomMatcher;
  /** ms since epoch after which the connection is closed with 4001; absent = never. */
  expiresAt?: number;
}

export class AuthError extends Error {
  constructor(readonly status: 400 | 401, readonly code: "unauthorized" | "bad_request", message: string) {
    super(message);
  }
}

export interface Authenticator {
  authenticate(req: Request, url: URL): Promise<Identity>;
}

type JWKS = ReturnType<typeof createRemoteJWKSet>;

async function verify(token: string, secrets: string[], jwks: JWKS | undefined, binding: ClaimBinding): Promise<JWTPayload> {
  if (secrets.length === 0 && !jwks) throw new AuthError(401, "unauthorized", "tokens are not accepted: no key configured");
  const header = decodeHeaderAlg(token);
  try {
    if (header === "HS256") {
      if (secrets.length === 0) throw new AuthError(401, "unauthorized", "HS256 tokens are not accepted here");
      return verifyHs256(token, secrets, binding);
    }
    if (!jwks) throw new AuthError(401, "unauthorized", `${header} tokens are not accepted here`);
    return (
      await jwtVerify(token, jwks, {
        algorithms: ["RS256", "ES256", "EdDSA", "Ed25519"],
        clockTolerance: LEEWAY_S,
        audience: binding.audience,
        issuer: binding.issuer,
        requiredClaims: ["exp"],
      })
    ).payload;
  } catch (err) {
    if (err instanceof AuthError) throw err;
    if (err instanceof joseErrors.JWTExpired) throw new AuthError(401, "unauthorized", "token expired");
    // jose's own verdicts are safe to show; anything else (a JWKS fetch failing: ECONNREFUSED, DNS names)
    // is internal detail an unauthenticated caller must not see.
    if (err instanceof joseErrors.JOSEError && !(err instanceof joseErrors.JWKSTimeout))
      throw new AuthError(401, "unauthorized", `invalid token: ${err.message}`);
    throw new AuthError(401, "unauthorized", "invalid token: the key set could not be checked");
  }
}

export function createAuthenticator(config: Config): Authenticator {
  const secrets = config.jwtSecrets;
  const binding: ClaimBinding = { audience: config.jwtAudience, issuer: config.jwtIssuer };
  // jose caches the key set and refetches it only for an unknown kid (after a cooldown), never per connection.
  // A rotated-in key must work at once, so the cooldown between refetches is short (jose's default is 30 s);
  // a flood of bogus kids still costs at most one fetch a second.
  const jwks = config.jwksUrl ? createRemoteJWKSet(new URL(config.jwksUrl), { cooldownDuration: 1000 }) : undefined;
  // Many users share one `rooms` claim: compile each distinct claim once instead of once per connection.
  const matchers = new Map<string, RoomMatcher>();
  const matcherFor = (rooms: string[]): RoomMatcher => {
    const key = rooms.join("\u0000");
    let m = matchers.get(key);
    if (!m) {
      if (matchers.size >= 1000) matchers.clear();
      m = compileRoomPatterns(rooms);
      matchers.set(key, m);
    }
    return m;
  };

  return {
    async authenticate(req, url) {
      const authz = req.headers.get("authorization");
      let token: string | undefined;
      if (authz !== null) {
        const m = /^Bearer\s+(\S+)$/i.exec(authz);
        if (!m) throw new AuthError(401, "unauthorized", "Authorization header must be 'Bearer <jwt>'");
        token = m[1];
      } else if (url.searchParams.has("token")) {
        token = url.searchParams.get("token")!;
      }
      if (token !== undefined) {
        const p = await verify(token, secrets, jwks, binding);
        if (typeof p.sub !== "string" || !ID_RE.test(p.sub))
          throw new AuthError(401, "unauthorized", `token sub must be ${ID_RULE}`);
        let rooms: RoomMatcher = NO_ROOMS;
        if (p.rooms !== undefined) {
          if (!Array.isArray(p.rooms) || !p.rooms.every((r) => typeof r === "string"))
            throw new AuthError(401, "unauthorized", "token rooms must be an array of strings");
          if (p.rooms.length > MAX_ROOM_PATTERNS)
            throw new AuthError(401, "unauthorized", `token rooms may hold at most ${MAX_ROOM_PATTERNS} patterns`);
          rooms = matcherFor(p.rooms as string[]);
        }
        return { user: p.sub, rooms, expiresAt: (p.exp! + LEEWAY_S) * 1000 };
      }
      if (config.auth === "none" && url.searchParams.has("user")) {
        const user = url.searchParams.get("user")!;
        if (!ID_RE.test(user)) throw new AuthError(400, "bad_request", `user must be ${ID_RULE}`);
        return { user, rooms: ALL_ROOMS };
      }
      throw new AuthError(401, "unauthorized", config.auth === "none" ? "missing ?user=<id> or token" : "missing token");
    },
  };
}

function decodeHeaderAlg(token: string): string {
  const dot = token.indexOf(".");
  if (dot <= 0) throw new AuthError(401, "unauthorized", "invalid token: not a JWT");
  try {
    const h = JSON.parse(Buffer.from(token.slice(0, dot), "base64url").toString("utf8"));
    if (typeof h?.alg !== "string") throw new Error("no alg");
    return h.alg;
  } catch {
    throw new AuthError(401, "unauthorized", "invalid token: bad header");
  }
}

export interface ClaimBinding {
  audience?: string;
  issuer?: string;
}

/**
 * HS256 by hand: one native HMAC per configured secret and a constant-time compare, about 3 µs each, where
 * jose's WebCrypto path costs ~110 µs of CPU per token under Bun — the largest part of a connect. Same rules
 * as jose: the signature over the first two segments, `exp` required, `exp`/`nbf` with the leeway, numeric
 * date claims, `aud`/`iss` bound when configured (§8.1).
 */
export function verifyHs256(token: string, secrets: string | readonly string[], binding: ClaimBinding = {}): JWTPayload {
  const a = token.indexOf(".");
  const b = token.indexOf(".", a + 1);
  if (a <= 0 || b < 0 || token.indexOf(".", b + 1) !== -1) throw new AuthError(401, "unauthorized", "invalid token: not a JWT");
  const got = Buffer.from(token.slice(b + 1), "base64url");
  const signed = token.slice(0, b);
  let ok = false;
  // Every secret is tried (no early exit), so timing does not reveal which one of the list matched.
  for (const secret of typeof secrets === "string" ? [secrets] : secrets) {
    const expected = createHmac("sha256", secret).update(signed).digest();
    if (got.length === expected.length && timingSafeEqual(got, expected)) ok = true;
  }
  if (!ok) throw new AuthError(401, "unauthorized", "invalid token: signature verification failed");
  let payload: JWTPayload;
  try {
    payload = JSON.parse(Buffer.from(token.slice(a + 1, b), "base64url").toString("utf8"));
  } catch {
    throw new AuthError(401, "unauthorized", "invalid token: payload is not JSON");
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload))
    throw new AuthError(401, "unauthorized", "invalid token: payload is not an object");
  checkClaims(payload, binding);
  return payload;
}

function checkClaims(payload: JWTPayload, binding: ClaimBinding): void {
  const now = Date.now() / 1000;
  for (const claim of ["exp", "nbf", "iat"] as const)
    if (payload[claim] !== undefined && (typeof payload[claim] !== "number" || !Number.isFinite(payload[claim])))
      throw new AuthError(401, "unauthorized", `invalid token: ${claim} must be a number`);
  if (payload.exp === undefined) throw new AuthError(401, "unauthorized", "invalid token: exp is required");
  if (payload.exp <= now - LEEWAY_S) throw new AuthError(401, "unauthorized", "token expired");
  if (payload.nbf !== undefined && payload.nbf > now + LEEWAY_S) throw new AuthError(401, "unauthorized", "invalid token: not yet valid (nbf)");
  if (binding.audience !== undefined) {
    const aud = payload.aud;
    const hit = typeof aud === "string" ? aud === binding.audience : Array.isArray(aud) && aud.includes(binding.audience);
    if (!hit) throw new AuthError(401, "unauthorized", "invalid token: aud does not match");
  }
  if (binding.issuer !== undefined && payload.iss !== binding.issuer)
    throw new AuthError(401, "unauthorized", "invalid token: iss does not match");
}

/** Admin bearer check against every configured token (rotation), each compared in constant time. */
export function adminTokenMatches(presented: string, tokens: readonly string[]): boolean {
  const got = createHmac("sha256", "wsgate-admin").update(presented).digest();
  let ok = false;
  for (const t of tokens) if (timingSafeEqual(got, createHmac("sha256", "wsgate-admin").update(t).digest())) ok = true;
  return ok;
}
