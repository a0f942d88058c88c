-- The start of a resume, read atomically: what the welcome says and the first page. Later pages are plain
-- XRANGE calls from the last id seen up to the last seq returned here.
-- KEYS[1] history stream  KEYS[2] history meta
-- ARGV[1] since epoch  ARGV[2] since seq (decimal string; the gateway refuses more than 2^53 - 1)
-- ARGV[3] max entries  ARGV[4] max bytes  ARGV[5] first page size (bytes, estimated from the epoch's average
-- frame: a typical resume is one round trip, a big one is paged)
-- Returns { epoch | false, first seq to replay, last seq, recovered 1|0, { id, frame, id, frame, ... } }
--
-- Exact whatever the writer's approximate trimming left: only the last `max entries` messages, and of those
-- only the newest that fit in `max bytes` (the newest always), are replayed. Entry ids are <seq>-<bytes
-- stored in this epoch before it>, so the byte bound is found by a binary search on ids.
local fmt = string.format
local m = redis.call('HMGET', KEYS[2], 'e', 's', 'c')
if not m[1] then return { false, 0, 0, 0, {} } end
local epoch, last, cum = m[1], tonumber(m[2]), tonumber(m[3])

local function entryAt(s)
  local r = redis.call('XRANGE', KEYS[1], fmt('%d', s), '+', 'COUNT', 1)
  if #r == 0 then return nil end
  local id = r[1][1]
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

-- First seq inside both bounds (count, bytes), or last + 1 when nothing is retained.
local from = math.max(1, last - tonumber(ARGV[3]) + 1)
local first, firstBefore = entryAt(from)
if first and first <= last then
  local bound = cum - tonumber(ARGV[4])
  if firstBefore < bound then
    local lo, hi = first, last
    local _, newestBefore = entryAt(last)
    if newestBefore == nil or newestBefore < bound then lo = last end
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      local s, c = entryAt(mid)
      if c >= bound then hi = mid else lo = s + 1 end
    end
    first = entryAt(lo)
  end
else
  first = last + 1
end

local sameEpoch = epoch == ARGV[1]
local since = tonumber(ARGV[2])
local start = first
local recovered = 0
if sameEpoch and since > last then
  -- Ahead of the newest offset (PROTOCOL §8.2): not recovered, nothing replayed.
  start = last + 1
elseif sameEpoch then
  -- Nothing after `since` was dropped: the first retained message is at most the one right after it.
  if first <= since + 1 then recovered = 1 end
  if since + 1 > start then start = since + 1 end
end
local out = {}
if start <= last then
  local avg = math.max(1, cum / math.max(1, last))
  local count = math.max(1, math.min(1000, math.floor(tonumber(ARGV[5]) / avg)))
  for _, e in ipairs(redis.call('XRANGE', KEYS[1], fmt('%d', start), fmt('%d', last), 'COUNT', count)) do
    out[#out + 1] = e[1]
    out[#out + 1] = e[2][2]
  end
end
return { epoch, start, last, recovered, out }
