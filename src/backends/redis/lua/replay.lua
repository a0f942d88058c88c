-- The start of a resume, read atomically: what the welcome says and the first page. Later pages are plain
-- XRANGE calls from the last id seen up to the last seq returned here.
-- KEYS[1] history stream (ids <epoch>-<seq>, entries b <frame head \1 frame tail>: append.lua)
-- ARGV[1] since epoch  ARGV[2] since seq (decimal string; the gateway refuses more than 2^53 - 1)
-- ARGV[3] max entries  ARGV[4] max bytes  ARGV[5] first page size (bytes: a typical resume is one round trip, a
-- big one is paged)
-- Returns { epoch | false, first seq to replay, last seq, recovered 1|0, { id, body, id, body, ... } }
--
-- Exact whatever the writer's approximate trimming left: only the last `max entries` messages, and of those
-- only the newest that fit in `max bytes` (the newest always), are replayed. Seqs of an epoch are contiguous
-- (entries are only ever trimmed from the old end), so the count bound is arithmetic; the byte bound is found by
-- walking back from the newest, summing frames as a client receives them (with their offsets), never below the
-- first seq the resume wants: the walk reads no more than it replays, plus the one entry that did not fit.
local hk = KEYS[1]
-- #include frame.lua
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
local dash = string.find(lastId, '-', 1, true)
local epoch, last = string.sub(lastId, 1, dash - 1), tonumber(string.sub(lastId, dash + 1))

local sameEpoch = epoch == ARGV[1]
local since = tonumber(ARGV[2])
-- Ahead of the newest offset (PROTOCOL §8.2): not recovered, nothing replayed.
if sameEpoch and since > last then return { epoch, last + 1, last, 0, {} } end

-- The oldest seq worth reading: inside the count bound and after `since`.
local lo = math.max(1, last - tonumber(ARGV[3]) + 1)
if sameEpoch and since + 1 > lo then lo = since + 1 end
local maxBytes = tonumber(ARGV[4])
-- Newest first: every entry from the newest down to lo that fits (the newest always).
local got, sum, cursor, done = {}, 0, '+', not newest or lo > last
local floorId = epoch .. '-' .. string.format('%d', lo)
while not done do
  local page = redis.call('XREVRANGE', hk, cursor, floorId, 'COUNT', 100)
  for _, e in ipairs(page) do
    local size = frameBytes(e[1], e[2][2])
    if sum + size > maxBytes and #got > 0 then
      done = true
      break
    end
    sum = sum + size
    got[#got + 1] = e
  end
  if #page < 100 then done = true end
  if not done then cursor = '(' .. got[#got][1] end
end

-- The first seq retained inside both bounds, or last + 1 when nothing after lo is.
local first = last + 1
if #got > 0 then
  local id = got[#got][1]
  first = tonumber(string.sub(id, dash + 1))
end
-- Nothing after `since` was dropped: the first retained message is at most the one right after it.
local recovered = (sameEpoch and first <= since + 1) and 1 or 0

-- The first page: oldest first, about ARGV[5] bytes (at least one entry).
local out, budget = {}, tonumber(ARGV[5])
for k = #got, 1, -1 do
  local e = got[k]
  out[#out + 1] = e[1]
  out[#out + 1] = e[2][2]
  budget = budget - frameBytes(e[1], e[2][2])
  if budget <= 0 then break end
end
return { epoch, first, last, recovered, out }
