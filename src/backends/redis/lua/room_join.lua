-- A user enters a room on one gateway instance. wsg:rm:{room} counts, per user, the instances holding them.
-- KEYS[1] wsg:gateways  KEYS[2] wsg:rm:{room}  KEYS[3] wsg:gr:<instance>   ARGV: instance, member "room user", user
-- Returns 1 when this is the user's first presence in the room cluster-wide, 0 if not, -1 if the lease lapsed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) < now then return -1 end
if redis.call('SADD', KEYS[3], ARGV[2]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[2], ARGV[3], 1) == 1 then return 1 end
return 0
