-- Everything a resume needs, read atomically.
-- KEYS[1] history stream  KEYS[2] history meta   ARGV[1] since epoch  ARGV[2] since seq
-- Returns { epoch | false, last seq, first retained seq | false, { id, frame, id, frame, ... } }
local meta = redis.call('HMGET', KEYS[2], 'e', 's')
if not meta[1] then return { false, 0, false, {} } end
local firstSeq = false
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #first > 0 then firstSeq = tonumber(string.match(first[1][1], '^(%d+)')) end
local from = '-'
if meta[1] == ARGV[1] then from = (tonumber(ARGV[2]) + 1) .. '-0' end
local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], from, '+')) do
  out[#out + 1] = e[1]
  out[#out + 1] = e[2][2]
end
return { meta[1], tonumber(meta[2] or '0'), firstSeq, out }
