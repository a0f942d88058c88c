-- Remove one connection, only if the entry is still this instance's (never a newer registration).
-- KEYS[1] wsg:p:{user}  KEYS[2] wsg:gc:<instance>   ARGV: conn, instance
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, #ARGV[2] + 1) == ARGV[2] .. '|' then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
