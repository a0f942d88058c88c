-- Append a direct message to the recipient's history and publish it, in one round trip.
-- KEYS[1] history stream wsg:h:{user}   KEYS[2] history meta wsg:hm:{user} (e = epoch, s = last seq)
-- ARGV[1] channel  ARGV[2] frame head  ARGV[3] frame tail  ARGV[4] max entries  ARGV[5] ttl ms
-- ARGV[6] origin (the sending gateway delivers to its own connections itself and skips this echo)
-- ARGV[7] PUBLISH, or SPUBLISH on Redis Cluster (the channel shares the keys' hash tag, so one slot)
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  -- History was never written, expired or lost: a new epoch so no offset is ever reused.
  -- An orphaned stream (meta evicted alone) would hold higher ids than the new seqs: drop it.
  redis.call('DEL', KEYS[1])
  local t = redis.call('TIME')
  epoch = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('HSET', KEYS[2], 'e', epoch)
end
local seq = redis.call('HINCRBY', KEYS[2], 's', 1)
local offset = epoch .. ':' .. seq
local frame = ARGV[2] .. ',"offset":"' .. offset .. '"' .. ARGV[3]
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[4], seq .. '-1', 'm', frame)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call(ARGV[7] or 'PUBLISH', ARGV[1], 'm' .. offset .. '\1' .. ARGV[6] .. '\1' .. frame)
return offset
