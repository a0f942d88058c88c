// Redis Cluster key slot (CRC16/XMODEM of the hash tag, mod 16384): the broker groups a flushed batch by the
// node that owns each recipient's slot, one pipeline (and one WAIT) per node.
const TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 8;
  for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
  TABLE[i] = c;
}

export function keySlot(key: string): number {
  // Only the part inside the first non-empty {…} counts, so a user's keys and channel share one slot.
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  const bytes = new TextEncoder().encode(key);
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ b) & 0xff]!;
  return crc & 16383;
}
