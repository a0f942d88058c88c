-- A user is in a room through one gateway process (its first local connection joined, or a re-assert).
-- The holder field is per (user, process), so a new incarnation's re-assert takes over the old one's entry.
-- Runs after the instance index took the holding (index.lua, fenced by the lease).
-- KEYS[1] wsg:rm:{room}   ARGV: user, process, instance, ticket, mode "join" | "reassert", tombstone ms,
--   and optionally the room's `join` event frame, "PUBLISH" | "SPUBLISH", the room channel (same slot): when
--   this call decides a join is announced (returns 1), the script publishes it, so a room's events are ordered
--   as the scripts that decided them ran, whichever gateways ran them.
-- Mode "reassert" is for a re-assert's holdings whose join had landed before (so was announced); a holding
-- whose join had not landed yet is re-asserted as "join" (seed 2005: else nobody ever announces it).
-- Returns 1 when the user is now in the room cluster-wide for the first time and a join is to be announced
-- (always for "join"; for "reassert" only if a leave was announced, not when Redis merely lost the data),
-- 2 when a "reassert" made them present without an announcement owed, 0 when they were in already (a newer
-- join landed first), -2 when refused as older than a leave that landed, -1 when this incarnation was reaped.
-- The first write is HSET, which Redis refuses under maxmemory before anything changed.
-- #include entry.lua
local key, user, inst, ticket = KEYS[1], ARGV[1], ARGV[3], ARGV[4]
local field = user .. ' ' .. ARGV[2]
local s, ei, et = parse(redis.call('HGET', key, field))
if s == 'R' and incarnation(inst) <= incarnation(ei) then return -1 end
if s and tonumber(ticket) <= et then return s == 'L' and 0 or -2 end
redis.call('HSET', key, field, 'L|' .. inst .. '|' .. ticket .. '|')
local now = now_ms()
if s == 'L' then
  upkeep(key, 0, now, tonumber(ARGV[6]))
  return 0
end
local first = 0
if redis.call('HINCRBY', key, '#' .. user, 1) == 1 then
  local announced = redis.call('HGET', key, '~' .. user)
  if announced then redis.call('HDEL', key, '~' .. user) end
  if ARGV[5] == 'join' or announced then first = 1 else first = 2 end
end
upkeep(key, 1, now, tonumber(ARGV[6]))
if first == 1 and ARGV[7] then redis.call(ARGV[8], ARGV[9], ARGV[7]) end
return first
