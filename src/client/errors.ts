// One error class for everything a request can fail with, so callers switch on `code`.

/**
 * `code` is a gateway error code (`bad_request`, `forbidden`, `too_large`, `too_many_rooms`,
 * `rate_limited`, `unavailable`, `internal`) or one of the SDK's own: `timeout` (no reply in time),
 * `queue_full` (too many frames waiting for a connection), `disconnected` (the connection dropped
 * before the reply; a send may or may not have been delivered), `closed` (the client was closed),
 * `unauthorized` (see UnauthorizedError), `max_attempts` (gave up reconnecting).
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

/**
 * Throw this from a `token` function when the user is not (or no longer) allowed to connect:
 * the client stops for good instead of retrying. Any other error from the token function is
 * treated as transient and retried with backoff.
 */
export class UnauthorizedError extends WsgateError {
  constructor(message = "not authorized") {
    super("unauthorized", message);
    this.name = "UnauthorizedError";
  }
}
