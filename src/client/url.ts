// Builds the /ws URL for one connection attempt from the user's base URL and credentials.

export interface UrlParts {
  token?: string;
  user?: string;
  since?: string;
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?(?:[/?#]|$)/i;

/** The page we run in, when there is one (browsers). */
function pageLocation(): { protocol: string; host: string } | undefined {
  const loc = (globalThis as { location?: { protocol?: unknown; host?: unknown } }).location;
  return loc && typeof loc.protocol === "string" && typeof loc.host === "string" && loc.host !== ""
    ? { protocol: loc.protocol, host: loc.host }
    : undefined;
}

/**
 * Scheme for a URL given without one. In a browser: the page's (an https page needs wss). Elsewhere
 * wss, since production gateways sit behind TLS (plain ws to an HTTPS-only proxy loops on redirects);
 * loopback hosts stay on ws, which is what a local gateway speaks.
 */
function defaultScheme(hostPart: string): "ws:" | "wss:" {
  const page = pageLocation();
  if (page) return page.protocol === "http:" ? "ws:" : "wss:";
  return LOOPBACK.test(hostPart) ? "ws:" : "wss:";
}

/**
 * Accepts ws(s)://host/ws, http(s)://host[/ws], a bare host[:port][/path] (wss, or the page's
 * scheme), or in a browser a path such as /ws (this page's host). Returns ws(s)://…/ws?…
 */
export function gatewayUrl(base: string, parts: UrlParts = {}): string {
  let withScheme: string;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(base)) withScheme = base;
  else if (base.startsWith("/")) {
    const page = pageLocation();
    if (!page) throw new TypeError(`a path-only URL (${base}) needs a page to be relative to; give a host`);
    withScheme = `${defaultScheme(page.host)}//${page.host}${base}`;
  } else withScheme = `${defaultScheme(base)}//${base}`;
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

/** The URL with any token replaced, for logs and debug output. */
export function redactUrl(url: string): string {
  const u = new URL(url);
  if (u.searchParams.has("token")) u.searchParams.set("token", "REDACTED");
  return u.toString();
}
