// One error class for everything a request can fail with, so callers switch on `code`.

/**
 * `code` is a gateway error code (`bad_request`, `forbidden`, `too_large`, `rate_limited`,
 * `unavailable`, `internal`) or one of the SDK's own: `timeout` (no reply in time), `queue_full`
 * (too many frames waiting for a connection), `disconnected` (the connection dropped before the
 * reply; a send may or may not have been delivered), `closed` (the client was closed).
 */
export class WsgateError extends Error {
  readonly code: string;
  readonly id: string | undefined;

  constructor(code: string, message: string, id?: string) {
    super(message);
    this.name = "WsgateError";
    this.code = code;
    this.id = id;
  }
}
