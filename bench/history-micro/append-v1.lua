-- Store direct messages in their recipients' histories and publish each, one round trip for a batch.
-- KEYS: per message, the history stream wsg:h:{user} and its meta hash wsg:hm:{user}. On Redis Cluster the
--   caller batches one slot per call (the keys and the channel carry the same {user} tag).
-- ARGV[1] origin (the sending gateway delivers to its own connections and skips this echo)
-- ARGV[2] max entries  ARGV[3] ttl ms  ARGV[4] max bytes  ARGV[5] PUBLISH or SPUBLISH  ARGV[6] the gateway's
-- clock (ms), then per message: channel, frame head, frame tail (the frame is head .. ',"offset":"…"' .. tail).
-- Returns one offset per message.
--
-- Meta hash: e epoch, s last seq, c bytes stored in this epoch (frames), o bytes before the oldest entry kept
-- after the last byte trim, x the expiry deadline (ms) both keys were last given. Entry id: <seq>-<c before it>,
-- so a reader finds the byte bound from ids alone. Seqs are formatted with %d: Lua would print 1e+14.
--
-- Cheap on purpose: per message one HMGET, one HSET, XADD with approximate MAXLEN (readers cut exactly to the
-- last N and to max bytes), the publish; PEXPIRE only when the deadline is less than 1.1 TTL away, to 1.5 TTL
-- (history lives between 1 and 1.5 TTLs after the last message; the 0.1 TTL margin covers gateway clock skew, the
-- gateway's clock saves a TIME call per script); a byte trim only once the stream holds 1.25× max bytes.
--
-- maxmemory: no shebang (Upstash speaks Redis 6.2), so the OOM check happens at the first write, which is
-- always the HSET (refused under OOM, unlike DEL). A batch holds at most one maximal frame of bytes.
local origin, maxlen, ttl, maxBytes, pub = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local now = tonumber(ARGV[6])
local renewBelow = ttl + math.floor(ttl / 10)
local fmt = string.format

-- The first entry (seq, bytes before it) at or after seq s.
local function entryAt(hk, s)
  local r = redis.call('XRANGE', hk, fmt('%d', s), '+', 'COUNT', 1)
  if #r == 0 then return nil end
  local id = r[1][1]
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

-- Drops the oldest entries so the rest hold at most maxBytes (the newest always stays).
local function trimBytes(hk, mk, seq, before, cum)
  local bound = cum - maxBytes
  local first = entryAt(hk, 0)
  if not first then return end
  local lo, hi = first, seq
  if before < bound then lo = seq end
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local s, c = entryAt(hk, mid)
    if c >= bound then hi = mid else lo = s + 1 end
  end
  local keep, keptBefore = entryAt(hk, lo)
  redis.call('XTRIM', hk, 'MINID', fmt('%d', keep))
  redis.call('HSET', mk, 'o', fmt('%d', keptBefore))
end

local out = {}
for i = 1, #KEYS / 2 do
  local hk, mk, a = KEYS[2 * i - 1], KEYS[2 * i], 4 + 3 * i
  local m = redis.call('HMGET', mk, 'e', 's', 'c', 'o', 'x')
  local epoch, seq, cum, old, dl = m[1], tonumber(m[2] or '0'), tonumber(m[3] or '0'), tonumber(m[4] or '0'), tonumber(m[5] or '0')
  local fresh = not epoch
  local offset, frame, before, id
  for attempt = 1, 2 do
    if fresh then
      -- Never written, expired or lost (the stream alone counts as lost too): a new epoch, so no offset is reused.
      local t = redis.call('TIME')
      epoch = t[1] .. fmt('%06d', tonumber(t[2]))
      seq, cum, old, dl = 0, 0, 0, 0
    end
    seq = seq + 1
    local s = fmt('%d', seq)
    offset = epoch .. ':' .. s
    frame = ARGV[a + 1] .. ',"offset":"' .. offset .. '"' .. ARGV[a + 2]
    before = cum
    cum = cum + #frame
    local refresh = dl - now < renewBelow
    if refresh then dl = now + ttl + math.floor(ttl / 2) end
    if fresh then
      redis.call('HSET', mk, 'e', epoch, 's', s, 'c', fmt('%d', cum), 'o', '0', 'x', fmt('%d', dl))
      redis.call('DEL', hk)
      id = redis.call('XADD', hk, 'MAXLEN', '~', maxlen, s .. '-' .. fmt('%d', before), 'm', frame)
    else
      if refresh then
        redis.call('HSET', mk, 's', s, 'c', fmt('%d', cum), 'x', fmt('%d', dl))
      else
        redis.call('HSET', mk, 's', s, 'c', fmt('%d', cum))
      end
      id = redis.call('XADD', hk, 'NOMKSTREAM', 'MAXLEN', '~', maxlen, s .. '-' .. fmt('%d', before), 'm', frame)
    end
    if id then
      if refresh then
        redis.call('PEXPIRE', mk, dl - now)
        redis.call('PEXPIRE', hk, dl - now)
      end
      break
    end
    fresh = true
  end
  if cum - old > maxBytes + maxBytes / 4 then trimBytes(hk, mk, seq, before, cum) end
  redis.call(pub, ARGV[a], 'm' .. offset .. '\1' .. origin .. '\1' .. frame)
  out[i] = offset
end
return out
