-- Claim a dead instance for cleanup. Only one caller gets 1, so its users' leave events go out once.
-- KEYS[1] wsg:gateways   ARGV[1] instance, ARGV[2] "force" to claim a live one (a gateway's own old incarnation)
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then return 0 end
if ARGV[2] ~= 'force' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if tonumber(s) >= now then return 0 end
end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
