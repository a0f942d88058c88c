-- Register one connection, fenced by the gateway's lease: a gateway whose lease lapsed (and may have been
-- reaped) cannot make a user read online; it must re-register and re-assert instead.
-- KEYS[1] wsg:gateways  KEYS[2] wsg:p:{user}  KEYS[3] wsg:gc:<instance>
-- ARGV: instance, conn, value "instance|gateway|region|since", user
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) < now then return -1 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
return 1
