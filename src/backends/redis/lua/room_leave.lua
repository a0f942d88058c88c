-- A user is no longer in a room through one gateway process.
--   mode "leave": its last local connection left (ARGV ticket orders it against the process's joins);
--   mode "reap":  the instance died; only a holding by exactly that instance goes.
-- Either way a tombstone stays, so the matching late join never lands.
-- KEYS[1] wsg:rm:{room}   ARGV: mode, user, process, instance, ticket (leave), tombstone ms,
--   held ("1" when the caller's join for this holding had landed: if nothing of it is left, Redis lost it),
--   and optionally the room's `leave` event frame, "PUBLISH" | "SPUBLISH", the room channel (same slot): the
--   call that announces the leave (returns 1) publishes it, ordered with the room's other events.
-- Returns 1 exactly once per cluster-wide leave (the call that took the user's holders to zero: announce a
-- leave), else 0. A "leave" whose holding Redis lost (restarted empty, failover) while nobody else holds the
-- user there and no leave was announced also returns 1: the members were told "join" and nothing since.
-- The first write is HDEL, which Redis allows under maxmemory.
-- #include entry.lua
local key, mode, user, inst = KEYS[1], ARGV[1], ARGV[2], ARGV[4]
local field = user .. ' ' .. ARGV[3]
local cur = redis.call('HGET', key, field)
local s, ei, et = parse(cur)
local now, tomb = now_ms(), tonumber(ARGV[6])
local function announce()
  if ARGV[8] then redis.call(ARGV[9], ARGV[10], ARGV[8]) end
end
local value
if mode == 'leave' then
  if not newer(s, ei, et, inst, ARGV[5]) then return 0 end
  value = 'X|' .. inst .. '|' .. ARGV[5] .. '|' .. now
elseif s == nil or (s == 'L' and ei == inst) or (s ~= 'L' and incarnation(inst) > incarnation(ei)) then
  value = 'R|' .. inst .. '|' .. (cur and string.format('%d', et) or '0') .. '|' .. now
else
  return 0
end
redis.call('HDEL', key, field)
redis.call('HSET', key, field, value)
if s ~= 'L' then
  local lost = s == nil and mode == 'leave' and ARGV[7] == '1' and not redis.call('HGET', key, '#' .. user)
    and not redis.call('HGET', key, '~' .. user)
  if lost then
    redis.call('HSET', key, '~' .. user, now)
    announce()
  end
  upkeep(key, 0, now, tomb)
  return lost and 1 or 0
end
local left = 0
if redis.call('HINCRBY', key, '#' .. user, -1) <= 0 then
  redis.call('HDEL', key, '#' .. user)
  redis.call('HSET', key, '~' .. user, now)
  left = 1
  announce()
end
upkeep(key, -1, now, tomb)
return left
