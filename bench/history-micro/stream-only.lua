-- Candidate measured (bench/history-micro.ts): the stream is the counter and holds nothing else (no byte
-- count, readers would walk entries for the byte cap), PEXPIRE with every message. Cost only.
local origin, maxlen, ttl, pub = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[5]
local fmt, sub, find = string.format, string.sub, string.find
local out = {}
for i = 1, #KEYS do
  local hk, a = KEYS[i], 4 + 3 * i
  local head, tail = ARGV[a + 1], ARGV[a + 2]
  local id = redis.call('XADD', hk, 'NOMKSTREAM', 'MAXLEN', '~', maxlen, '*', 'h', head, 't', tail)
  if not id then
    local t = redis.call('TIME')
    id = t[1] .. fmt('%06d', tonumber(t[2])) .. '-1'
    redis.call('XADD', hk, 'MAXLEN', '~', maxlen, id, 'h', head, 't', tail)
  end
  redis.call('PEXPIRE', hk, ttl)
  local dash = find(id, '-', 1, true)
  local offset = sub(id, 1, dash - 1) .. ':' .. sub(id, dash + 1)
  redis.call(pub, ARGV[a], 'm' .. offset .. '\1' .. origin .. '\1' .. head .. ',"offset":"' .. offset .. '"' .. tail)
  out[i] = offset
end
return out
