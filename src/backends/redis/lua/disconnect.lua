-- Remove one connection from its user's hash.
--   mode "close": the connection closed; it leaves a tombstone so a registration that arrives later never lands.
--   mode "reap":  the instance died; only an entry naming exactly that instance goes (a newer incarnation's
--                 re-registration stays), and the tombstone refuses that incarnation's late writes.
-- KEYS[1] wsg:p:{user}   ARGV: mode, conn, instance, ticket (close), tombstone ms
-- Returns 1 when a live entry was removed. The first write is HDEL, which Redis allows under maxmemory:
-- a removal must still work when Redis is full.
-- #include entry.lua
local key, mode, conn, inst = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local cur = redis.call('HGET', key, conn)
local s, ei, et = parse(cur)
local now, tomb = now_ms(), tonumber(ARGV[5])
local value
if mode == 'close' then
  if s == 'X' then return 0 end
  value = 'X|' .. inst .. '|' .. ARGV[4] .. '|' .. now
elseif s == nil or (s == 'L' and ei == inst) or (s ~= 'L' and incarnation(inst) > incarnation(ei)) then
  value = 'R|' .. inst .. '|' .. (cur and string.format('%d', et) or '0') .. '|' .. now
else
  return 0
end
redis.call('HDEL', key, conn)
redis.call('HSET', key, conn, value)
local removed = s == 'L' and 1 or 0
upkeep(key, -removed, now, tomb)
return removed
