-- Candidate measured (bench/history-micro.ts): what append.lua does (stream is the counter, INCRBY byte
-- counter), but Redis decides when to renew the expiry: PTTL on the counter per message, both keys' PEXPIRE
-- only when it runs low. Cost only (no byte trim, bytes without the offsets). append.lua lets the gateway
-- decide instead, saving the PTTL call.
-- KEYS: per message the stream and the byte counter. ARGV as the previous append.lua.
local origin, maxlen, ttl, pub = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[5]
local fmt, sub, find = string.format, string.sub, string.find
local out = {}
for i = 1, #KEYS / 2 do
  local hk, bk, a = KEYS[2 * i - 1], KEYS[2 * i], 4 + 3 * i
  local head, tail = ARGV[a + 1], ARGV[a + 2]
  local len = #head + #tail
  local cum = redis.call('INCRBY', bk, len)
  local id = cum ~= len and redis.call('XADD', hk, 'NOMKSTREAM', 'MAXLEN', '~', maxlen, '*', 'c', cum - len, 'h', head, 't', tail)
  if not id then
    local t = redis.call('TIME')
    id = t[1] .. fmt('%06d', tonumber(t[2])) .. '-1'
    redis.call('SET', bk, len)
    redis.call('DEL', hk)
    redis.call('XADD', hk, 'MAXLEN', '~', maxlen, id, 'c', 0, 'h', head, 't', tail)
  end
  if redis.call('PTTL', bk) < ttl then
    redis.call('PEXPIRE', hk, ttl * 1.5)
    redis.call('PEXPIRE', bk, ttl * 1.5)
  end
  local dash = find(id, '-', 1, true)
  local offset = sub(id, 1, dash - 1) .. ':' .. sub(id, dash + 1)
  redis.call(pub, ARGV[a], 'm' .. offset .. '\1' .. origin .. '\1' .. head .. ',"offset":"' .. offset .. '"' .. tail)
  out[i] = offset
end
return out
