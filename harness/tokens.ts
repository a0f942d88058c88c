// Dev tokens for local clusters, the bench and scripts (HS256, every room).
import { SignJWT } from "jose";

export async function mintDevToken(secret: string, sub: string, ttlS = 12 * 3600, rooms: string[] = ["*"]): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub, rooms })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt(now)
    .setExpirationTime(now + ttlS)
    .sign(new TextEncoder().encode(secret));
}

export function randomToken(bytes = 32): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("base64url");
}
