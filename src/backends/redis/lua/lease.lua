-- The one write a gateway instance makes per interval, whatever its number of connections. The lease is a
-- hash of the instance's public info with a relative TTL, so "alive" is judged by the clock of the Redis
-- node that holds it, never by comparing a gateway's clock with a stored time.
-- KEYS[1] wsg:gl:{instance}
-- ARGV: mode "new" | "refresh" | "retire", ttl ms, gateway id, region, connections, users, started,
--       version, build (shown by /v1/gateways; may be empty)
-- Returns 1, or 0 when a refresh finds the lease gone (expired, retired, or Redis lost its data): that
-- incarnation is over for good, the gateway re-asserts under a new one.
local key, mode, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2])
if mode == 'retire' then
  redis.call('DEL', key)
  return 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if mode == 'refresh' then
  if redis.call('EXISTS', key) == 0 then return 0 end
  -- PEXPIRE first: Redis does not refuse it under maxmemory, and the rewrite below does not grow the hash,
  -- so a full Redis does not make every gateway look dead.
  redis.call('PEXPIRE', key, ttl)
  redis.call('HSET', key, 'connections', ARGV[5], 'users', ARGV[6], 'last_seen', now)
  return 1
end
-- "new": HSET first, refused under maxmemory before anything changed.
redis.call('HSET', key, 'id', ARGV[3], 'region', ARGV[4], 'connections', ARGV[5], 'users', ARGV[6], 'started', ARGV[7], 'last_seen', now,
  'version', ARGV[8] or '', 'build', ARGV[9] or '')
redis.call('PEXPIRE', key, ttl)
return 1
