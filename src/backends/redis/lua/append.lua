-- Store direct messages in their recipients' histories and publish each, one round trip for a batch.
-- KEYS: per message, the history stream wsg:hx:{user} and its byte-check counter wsg:hg:{user}. On Redis Cluster
--   the caller batches one slot per call (the keys and the channel carry the same {user} tag).
-- ARGV[1] origin (the sending gateway delivers to its own connections and skips this echo)
-- ARGV[2] max entries  ARGV[3] expiry (ms, 1.5 TTL)  ARGV[4] max bytes  ARGV[5] PUBLISH or SPUBLISH, then per
-- message: channel, the frame as head .. '\1' .. tail (the client gets head .. ',"offset":"…"' .. tail; JSON text
-- never holds a raw \1), '1' when the gateway wants the expiry renewed.
-- Returns one entry id per message: the offset with '-' for ':'.
--
-- The stream is the counter: entry ids are <epoch>-<seq>, the epoch a microsecond timestamp (TIME) used as the
-- id's millisecond part. It stays above the clock in ms for ever, so XADD's automatic id (Redis 5.0+: the
-- clock's ms unless the last id's ms is ahead, then the last id with seq + 1) is the next seq of the same
-- epoch, and the offset is the id with ':' (no read, no number formatting; the gateways swap the character).
-- A stream trimmed to empty keeps its last id, so seqs go on. NOMKSTREAM's nil is "history lost" (never written,
-- expired, Redis restarted empty): a new epoch, with an explicit first id (<TIME>-1; no Redis 7-only id forms,
-- Upstash speaks 6.2), so no offset is reused.
--
-- Per message: XADD of one field and the publish, nothing else. Every further redis.call costs ~3 µs of Redis CPU
-- in glue, every further argument or string piece a little more (issue 12), so the byte cap is not counted per
-- message:
-- * Readers cut exactly (replay.lua walks back from the newest summing the frames' bytes).
-- * The writer bounds memory. Approximate MAXLEN keeps max entries plus at most one stream node (≤ 4 KB by
--   default), so messages no bigger than max bytes / (2 × max entries) can only fill half the cap. Bigger ones
--   are counted (INCRBY); once a quarter of the cap of them arrived since the last check, one pass walks back
--   from the newest and trims (XTRIM MINID) what no reader would replay. A stream holds at most ~1.75× max bytes
--   plus one message, in practice max entries small messages.
-- PEXPIRE only when the gateway asks (it renews each user's keys once per 0.4 TTL, so history lives 1.1 to 1.5
-- TTL after the last message) or on a new epoch.
--
-- maxmemory: no shebang (Upstash speaks Redis 6.2), so the OOM check happens at the first write, which is
-- always an XADD (refused under OOM). A batch holds at most one maximal frame of bytes.
local origin, maxlen, expiry, pub = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local maxBytes = tonumber(ARGV[4])
-- #include frame.lua
local small = math.floor(maxBytes / (2 * tonumber(maxlen)))

-- Drops the oldest entries no reader would replay: those older than the newest that fit in max bytes.
local function trimBytes(hk)
  local sum, kept, cursor = 0, nil, '+'
  while true do
    local page = redis.call('XREVRANGE', hk, cursor, '-', 'COUNT', 100)
    for _, e in ipairs(page) do
      sum = sum + frameBytes(e[1], e[2][2])
      if sum > maxBytes and kept then
        redis.call('XTRIM', hk, 'MINID', kept)
        return
      end
      kept = e[1]
    end
    if #page < 100 then return end
    cursor = '(' .. kept
  end
end

-- Counts a big message; past a quarter of the cap since the last check, trims and starts counting again.
local function countBig(hk, bk, len)
  local n = redis.call('INCRBY', bk, len)
  if n == len then redis.call('PEXPIRE', bk, expiry) end
  if n >= maxBytes / 4 then
    trimBytes(hk)
    redis.call('DEL', bk)
  end
end

local out = {}
for i = 1, #KEYS / 2 do
  local hk, a = KEYS[2 * i - 1], 3 + 3 * i
  local body = ARGV[a + 1]
  local id = redis.call('XADD', hk, 'NOMKSTREAM', 'MAXLEN', '~', maxlen, '*', 'b', body)
  local renew = ARGV[a + 2] == '1'
  if not id then
    local t = redis.call('TIME')
    id = t[1] .. string.format('%06d', tonumber(t[2])) .. '-1'
    redis.call('XADD', hk, 'MAXLEN', '~', maxlen, id, 'b', body)
    renew = true
  end
  if renew then redis.call('PEXPIRE', hk, expiry) end
  -- The receiver puts the offset into the frame (protocol/envelope.ts): fewer strings built here.
  redis.call(pub, ARGV[a], 'h' .. id .. '\1' .. origin .. '\1' .. body)
  local len = frameBytes(id, body)
  if len > small then countBig(hk, KEYS[2 * i], len) end
  out[i] = id
end
return out
