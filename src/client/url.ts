// Builds the /ws URL for one connection attempt from the user's base URL and credentials.

export interface UrlParts {
  token?: string;
  user?: string;
  since?: string;
}

/** Accepts ws(s)://host/ws, http(s)://host[/ws] or a bare host:port; returns ws(s)://…/ws?… */
export function gatewayUrl(base: string, parts: UrlParts = {}): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(base) ? base : `ws://${base}`;
  const u = new URL(withScheme);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  if (u.protocol !== "ws:" && u.protocol !== "wss:") throw new TypeError(`unsupported URL scheme: ${u.protocol}`);
  if (u.pathname === "" || u.pathname === "/") u.pathname = "/ws";
  // Our own parameters replace any copy in the base URL so a stale `since` never lingers.
  for (const key of ["token", "user", "since"] as const) {
    const value = parts[key];
    if (value !== undefined) u.searchParams.set(key, value);
    else if (key === "since") u.searchParams.delete(key);
  }
  return u.toString();
}
