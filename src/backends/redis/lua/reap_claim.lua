-- A survivor claims a dead instance for cleanup, for a while. Only saves duplicate work: every cleanup step
-- is idempotent and announces each leave once whoever runs it, and a claim that its holder abandons (crash,
-- Redis drop) expires, so the next survivor finishes the reap.
-- KEYS[1] wsg:gl:{instance}  KEYS[2] wsg:gk:{instance}   ARGV: claimant, claim ms
-- Returns 1 when the caller holds the claim (new or its own), 0 when the instance is alive or claimed by another.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 0 end
-- A no-op delete of the (absent) lease first: the claim must work when Redis is full, or reaping would stop.
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
