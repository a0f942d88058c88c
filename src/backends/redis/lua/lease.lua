-- The one write a gateway makes per interval, whatever its number of connections.
-- KEYS[1] wsg:gateways (zset instance -> lease expiry ms)  KEYS[2] wsg:gi:<instance> (info hash)
-- ARGV: instance, ttl ms, gateway id, region, connections, users, started, mode ("new" | "refresh")
-- Returns 1, or 0 when a refresh finds the lease gone (expired, reaped, or Redis lost its data).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[8] == 'refresh' then
  local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not s or tonumber(s) < now then return 0 end
end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], 'id', ARGV[3], 'region', ARGV[4], 'connections', ARGV[5], 'users', ARGV[6], 'started', ARGV[7], 'last_seen', now)
redis.call('PEXPIRE', KEYS[2], ttl * 10)
return 1
