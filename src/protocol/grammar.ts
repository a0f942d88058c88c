// The id and room grammar (PROTOCOL §3), written once: user ids, room names, gateway ids and regions.
// The character classes are kept as text so HTML `pattern=` attributes and messages come from the same source.
// User ids and room names need no JSON escaping, which the outbound builders rely on.

export const MAX_NAME = 128;
/** Characters of a user id (and a gateway id). */
export const USER_CHARS = "A-Za-z0-9_.:@-";
/** Characters of a room name: a user id's plus `/`. */
export const ROOM_CHARS = "A-Za-z0-9_.:@/-";
export const MAX_REGION = 64;
export const REGION_CHARS = "A-Za-z0-9_.-";

export const ID_RE = new RegExp(`^[${USER_CHARS}]{1,${MAX_NAME}}$`);
export const ROOM_RE = new RegExp(`^[${ROOM_CHARS}]{1,${MAX_NAME}}$`);
export const REGION_RE = new RegExp(`^[${REGION_CHARS}]{1,${MAX_REGION}}$`);

/** How the rules read in error messages. */
export const ID_RULE = `1-${MAX_NAME} chars of [${USER_CHARS}]`;
export const ROOM_RULE = `1-${MAX_NAME} chars of [${ROOM_CHARS}]`;
export const REGION_RULE = `1-${MAX_REGION} chars of [${REGION_CHARS}]`;

/** The same rules as HTML `pattern` attributes (the v flag wants `-` escaped inside a class). */
export const ID_HTML_PATTERN = `[${USER_CHARS.replace(/-$/, "\\-")}]{1,${MAX_NAME}}`;
export const ROOM_HTML_PATTERN = `[${ROOM_CHARS.replace(/-$/, "\\-")}]{1,${MAX_NAME}}`;

/** Most users one `send` or `presence` frame (or admin send) may name. */
export const MAX_TARGETS = 100;
/** Longest request id a frame may carry; it is echoed back in the reply. */
export const MAX_REQUEST_ID = 64;

export const isUserId = (s: string) => ID_RE.test(s);
export const isRoomName = (s: string) => ROOM_RE.test(s);
