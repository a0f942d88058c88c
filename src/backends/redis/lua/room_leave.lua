-- A user leaves a room on one instance (or a dead instance is reaped). Returns 1 exactly once per
-- cluster-wide leave: only the call that takes the count to zero.
-- KEYS[1] wsg:rm:{room}  KEYS[2] wsg:gr:<instance>   ARGV: member "room user", user
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[1], ARGV[2], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[2])
  return 1
end
return 0
