-- An instance's own index of what it holds (its connections, its room holdings), kept in the instance's slot
-- beside its lease so a reaper can find every key the instance wrote. Adding is fenced by the lease: once the
-- lease is gone the index is frozen, and a write refused here never reaches the user's or room's slot.
-- KEYS[1] wsg:gl:{instance}  KEYS[2] wsg:gc:{instance} | wsg:gr:{instance}
-- ARGV: op, then field/value pairs
--   "add":    set each field (refused with -1 when the lease is gone)
--   "addmax": set each field to its ticket unless it holds a newer one (refused with -1 like "add")
--   "delmax": remove each field unless it holds a ticket newer than the given one (a newer join's entry stays)
-- "add"/"addmax" write first with HSET (refused under maxmemory); "delmax" with HDEL (allowed).
local op = ARGV[1]
if op == 'delmax' then
  local removed = 0
  for i = 2, #ARGV, 2 do
    local cur = redis.call('HGET', KEYS[2], ARGV[i])
    if cur and tonumber(cur) <= tonumber(ARGV[i + 1]) then removed = removed + redis.call('HDEL', KEYS[2], ARGV[i]) end
  end
  return removed
end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
for i = 2, #ARGV, 2 do
  if op == 'add' then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  else
    local cur = redis.call('HGET', KEYS[2], ARGV[i])
    if not cur or tonumber(cur) < tonumber(ARGV[i + 1]) then redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
  end
end
return 1
