// Gateway → client frames, built as strings once per message (never once per recipient).
// User ids and room names are restricted to characters that need no JSON escaping.

export const directHead = (fromJson: string, user: string, dataJson: string) =>
  `{"type":"message","from":${fromJson},"to":"${user}","data":${dataJson}`;
export const offsetPart = (offset: string) => `,"offset":"${offset}"`;
export const tsTail = (ts: number) => `,"ts":${ts}}`;

export const roomMessage = (fromJson: string, room: string, dataJson: string, ts: number) =>
  `{"type":"message","from":${fromJson},"room":"${room}","data":${dataJson},"ts":${ts}}`;

export const broadcastMessage = (dataJson: string, ts: number) =>
  `{"type":"message","from":null,"broadcast":true,"data":${dataJson},"ts":${ts}}`;

export const roomEvent = (room: string, event: "join" | "leave", user: string, ts: number) =>
  `{"type":"room","room":"${room}","event":"${event}","user":"${user}","ts":${ts}}`;
