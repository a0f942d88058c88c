// zod schemas of the grammar, shared by the frame parser and the admin API's request bodies.
import { z } from "zod";
import { ID_RE, ID_RULE, ROOM_RE, ROOM_RULE } from "./grammar.ts";

export const userIdSchema = z.string().regex(ID_RE, `must be a user id: ${ID_RULE}`);
export const roomSchema = z.string().regex(ROOM_RE, `must be a room name: ${ROOM_RULE}`);
// Any JSON value, but present: `undefined` would vanish from the message.
export const dataSchema = z.unknown().refine((v) => v !== undefined, "is required");
