-- The start of a resume, read atomically: what the welcome says and the first page. Later pages are plain
-- XRANGE calls from the last id seen up to the last seq returned here.
-- KEYS[1] history stream (ids <epoch>-<seq>, entries c <bytes before> h <frame head> t <frame tail>: append.lua)
-- ARGV[1] since epoch  ARGV[2] since seq (decimal string; the gateway refuses more than 2^53 - 1)
-- ARGV[3] max entries  ARGV[4] max bytes  ARGV[5] first page size (bytes, estimated from the retained frames'
-- average: a typical resume is one round trip, a big one is paged)
-- Returns { epoch | false, first seq to replay, last seq, recovered 1|0, { id, head, tail, id, head, tail, ... } }
--
-- Exact whatever the writer's approximate trimming left: only the last `max entries` messages, and of those
-- only the newest that fit in `max bytes` (the newest always), are replayed. c counts frames without their
-- offsets' ids; an id's length follows from its seq, so the bytes after an entry are known from two entries
-- and the byte bound is found by a binary search on seqs.
local fmt, sub, find = string.format, string.sub, string.find
local hk = KEYS[1]
local newest = redis.call('XREVRANGE', hk, '+', '-', 'COUNT', 1)[1]
local lastId
if newest then
  lastId = newest[1]
elseif redis.call('EXISTS', hk) == 1 then
  -- Trimmed to empty: only the last id is left (nothing retained; seqs go on from it).
  local info = redis.call('XINFO', 'STREAM', hk)
  for j = 1, #info, 2 do
    if info[j] == 'last-generated-id' then lastId = info[j + 1] end
  end
end
if not lastId then return { false, 0, 0, 0, {} } end
local dash = find(lastId, '-', 1, true)
local epoch, last = sub(lastId, 1, dash - 1), tonumber(sub(lastId, dash + 1))

-- Characters of the ids (the offsets' length) of seqs a..b: #epoch + 1 + the seq's digits each.
local function idChars(a, b)
  local n, lo, digits = (b - a + 1) * (#epoch + 1), 1, 1
  while lo <= b do
    local x, y = math.max(a, lo), math.min(b, lo * 10 - 1)
    if x <= y then n = n + (y - x + 1) * digits end
    lo, digits = lo * 10, digits + 1
  end
  return n
end

local function entryAt(s)
  local r = redis.call('XRANGE', hk, epoch .. '-' .. fmt('%d', s), '+', 'COUNT', 1)[1]
  if not r then return nil end
  return tonumber(sub(r[1], dash + 1)), tonumber(r[2][2])
end

-- First seq inside both bounds (count, bytes), or last + 1 when nothing is retained.
local from = math.max(1, last - tonumber(ARGV[3]) + 1)
local first, firstBefore
if newest then first, firstBefore = entryAt(from) end
local total = 0
if first and first <= last then
  -- Frame bytes of the epoch up to the newest, ids left out (as c counts them).
  local f = newest[2]
  total = tonumber(f[2]) + #f[4] + #f[6] + 12
  local maxBytes = tonumber(ARGV[4])
  local function fits(s, c) return total - c + idChars(s, last) <= maxBytes end
  if not fits(first, firstBefore) then
    local lo, hi = first, last
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      local s, c = entryAt(mid)
      if fits(s, c) then hi = mid else lo = s + 1 end
    end
    -- The newest always, even alone over the cap.
    first, firstBefore = entryAt(lo)
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
  local avg = math.max(1, (total - firstBefore) / (last - first + 1) + #lastId)
  local count = math.max(1, math.min(1000, math.floor(tonumber(ARGV[5]) / avg)))
  for _, e in ipairs(redis.call('XRANGE', hk, epoch .. '-' .. fmt('%d', start), lastId, 'COUNT', count)) do
    out[#out + 1] = e[1]
    out[#out + 1] = e[2][4]
    out[#out + 1] = e[2][6]
  end
end
return { epoch, start, last, recovered, out }
