-- Store direct messages in their recipients' histories and publish each, one round trip for a batch.
-- KEYS: per message, the history stream wsg:hs:{user} and its byte counter wsg:hb:{user}. On Redis Cluster the
--   caller batches one slot per call (the keys and the channel carry the same {user} tag).
-- ARGV[1] origin (the sending gateway delivers to its own connections and skips this echo)
-- ARGV[2] max entries  ARGV[3] expiry (ms, 1.5 TTL)  ARGV[4] max bytes  ARGV[5] PUBLISH or SPUBLISH, then per
-- message: channel, frame head, frame tail (the frame is head .. ',"offset":"…"' .. tail), '1' when the gateway
-- wants the expiry renewed.
-- Returns one entry id per message: the offset with '-' for ':'.
--
-- The stream is the counter: entry ids are <epoch>-<seq>, the epoch a microsecond timestamp (TIME) used as the
-- id's millisecond part. It stays above the clock in ms for ever, so XADD's automatic id (Redis 5.0+: the
-- clock's ms unless the last id's ms is ahead, then the last id with seq + 1) is the next seq of the same
-- epoch, and the offset is the id with ':' (no read, no number formatting; the gateways swap the character).
-- A stream trimmed to empty keeps its last id, so seqs go on. Only the first entry of an epoch gets an explicit
-- id (<TIME>-1): no Redis 7-only id forms (Upstash speaks 6.2).
--
-- Bytes: the counter holds the epoch's frame bytes without the offsets' ids (their length is only known once
-- XADD has chosen the id); each entry keeps the count before it (c), and readers add the ids' lengths, which
-- follow from the seqs, to cut to max bytes exactly. A missing counter or stream (never written, expired, lost;
-- either alone counts as lost) starts a new epoch, so no offset is reused.
--
-- Cheap on purpose, per message INCRBY, XADD, the publish: approximate MAXLEN (readers cut exactly to the last N
-- and to max bytes); PEXPIRE only when the gateway asks (it renews each user's keys once per 0.4 TTL, so history
-- lives 1.1 to 1.5 TTL after the last message) or on a new epoch; a byte trim looked at only when the count
-- crosses a multiple of max bytes / 4, so the stream holds at most about 1.25× max bytes.
--
-- maxmemory: no shebang (Upstash speaks Redis 6.2), so the OOM check happens at the first write, which is
-- always the INCRBY (refused under OOM, unlike DEL). A batch holds at most one maximal frame of bytes.
local origin, maxlen, expiry, maxBytes, pub = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local quarter = math.max(1, math.floor(maxBytes / 4))
local fmt, sub, find, floor = string.format, string.sub, string.find, math.floor
-- #',"offset":"' + #'"': a frame is head, tail, this and the offset (as long as the id).
local OFFSET_CHARS = 12

-- The first entry (seq, count before it) at or after seq s of epoch ep.
local function entryAt(hk, ep, s)
  local r = redis.call('XRANGE', hk, ep .. '-' .. fmt('%d', s), '+', 'COUNT', 1)[1]
  if not r then return nil end
  return tonumber(sub(r[1], #ep + 2)), tonumber(r[2][2])
end

-- Drops the oldest entries followed by more than maxBytes. Counted without the ids, so fewer bytes than a
-- reader counts: nothing a resume would replay is dropped. The newest always stays.
local function trimBytes(hk, ep, seq, before, cum)
  local bound = cum - maxBytes
  local first, firstBefore = entryAt(hk, ep, 0)
  if not first or firstBefore >= bound then return end
  local lo, hi = first, seq
  if before < bound then lo = seq end
  while lo < hi do
    local mid = floor((lo + hi) / 2)
    local s, c = entryAt(hk, ep, mid)
    if c >= bound then hi = mid else lo = s + 1 end
  end
  redis.call('XTRIM', hk, 'MINID', ep .. '-' .. fmt('%d', lo))
end

-- A new epoch. The counter holds this frame: INCRBY made it, or (reset: it outlived the stream) SET here.
local function fresh(hk, bk, reset, len, head, tail)
  if reset then redis.call('SET', bk, len) end
  redis.call('DEL', hk)
  local t = redis.call('TIME')
  local id = t[1] .. fmt('%06d', tonumber(t[2])) .. '-1'
  redis.call('XADD', hk, 'MAXLEN', '~', maxlen, id, 'c', 0, 'h', head, 't', tail)
  return id
end

local out = {}
for i = 1, #KEYS / 2 do
  local hk, bk, a = KEYS[2 * i - 1], KEYS[2 * i], 2 + 4 * i
  local head, tail = ARGV[a + 1], ARGV[a + 2]
  local len = #head + #tail + OFFSET_CHARS
  local cum = redis.call('INCRBY', bk, len)
  -- The counter is never 0: equal to this frame means it was missing.
  local id = cum ~= len and redis.call('XADD', hk, 'NOMKSTREAM', 'MAXLEN', '~', maxlen, '*', 'c', cum - len, 'h', head, 't', tail)
  local renew = ARGV[a + 3] == '1'
  if not id then
    id = fresh(hk, bk, cum ~= len, len, head, tail)
    cum, renew = len, true
  end
  if renew then
    redis.call('PEXPIRE', hk, expiry)
    redis.call('PEXPIRE', bk, expiry)
  end
  -- The receiver puts the offset into the frame (protocol/envelope.ts): fewer strings built here.
  redis.call(pub, ARGV[a], 'h' .. id .. '\1' .. origin .. '\1' .. head .. '\1' .. tail)
  if floor(cum / quarter) ~= floor((cum - len) / quarter) then
    local dash = find(id, '-', 1, true)
    trimBytes(hk, sub(id, 1, dash - 1), tonumber(sub(id, dash + 1)), cum - len, cum)
  end
  out[i] = id
end
return out
