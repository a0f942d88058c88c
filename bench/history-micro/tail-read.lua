-- Candidate measured and rejected (bench/history-micro.ts): the stream is the counter (ids <epoch>-<seq>), and
-- the newest entry, read by XREVRANGE before each append, gives the byte count (c + its frame) and the expiry
-- deadline (x): no second key, PEXPIRE only when low. The XREVRANGE reply (nested tables, the whole frame)
-- costs about what the meta hash did. Same arguments as the previous append.lua; no byte trim here.
local origin, maxlen, ttl, pub = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[5]
local now = tonumber(ARGV[6])
local renewBelow = ttl + math.floor(ttl / 10)
local fmt, sub, find = string.format, string.sub, string.find
local out = {}
for i = 1, #KEYS do
  local hk, a = KEYS[i], 4 + 3 * i
  local head, tail = ARGV[a + 1], ARGV[a + 2]
  local last = redis.call('XREVRANGE', hk, '+', '-', 'COUNT', 1)[1]
  local before, dl = 0, 0
  if last then
    local f = last[2]
    before = f[2] + #f[6] + #f[8] + 12 + #last[1]
    dl = tonumber(f[4])
  end
  local refresh = dl - now < renewBelow
  if refresh then dl = now + ttl + math.floor(ttl / 2) end
  local id = redis.call('XADD', hk, 'NOMKSTREAM', 'MAXLEN', '~', maxlen, '*', 'c', before, 'x', dl, 'h', head, 't', tail)
  if not id then
    local t = redis.call('TIME')
    id = t[1] .. fmt('%06d', tonumber(t[2])) .. '-1'
    refresh, dl = true, now + ttl + math.floor(ttl / 2)
    redis.call('XADD', hk, 'MAXLEN', '~', maxlen, id, 'c', 0, 'x', dl, 'h', head, 't', tail)
  end
  if refresh then redis.call('PEXPIRE', hk, dl - now) end
  local dash = find(id, '-', 1, true)
  local offset = sub(id, 1, dash - 1) .. ':' .. sub(id, dash + 1)
  redis.call(pub, ARGV[a], 'm' .. offset .. '\1' .. origin .. '\1' .. head .. ',"offset":"' .. offset .. '"' .. tail)
  out[i] = offset
end
return out
