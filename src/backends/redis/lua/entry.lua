-- Shared by the presence scripts (scripts.ts puts it in place of their `-- #include entry.lua` line).
--
-- One entry per connection (in wsg:p:{user}) or per (user, gateway process) holder (in wsg:rm:{room}):
--   "L|<instance>|<ticket>|<payload>"  live, written by that instance
--   "X|<instance>|<ticket>|<ms>"       removed (closed connection / left room): refuses older writes
--   "R|<instance>|<ticket>|<ms>"       reaped with its dead instance: refuses that incarnation and older ones
-- An instance is "<process>.<incarnation base36>"; tickets increase over a process's life, in the order its
-- gateway decided. A write lands only if its ticket is newer than the entry's, so a late write never undoes
-- a newer one, and never lands after its own removal. Tombstones (X, R) are pruned after ARGV-given ms
-- (Redis's clock), and a hash with no live entry expires after that long.
-- Fields starting with "!" are bookkeeping: "!n" live entries, "!t" next prune time.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- state, instance, ticket (number), rest
local function parse(v)
  if not v then return nil end
  local s, inst, ticket, rest = string.match(v, '^(%u)|([^|]*)|([^|]*)|(.*)$')
  return s, inst, tonumber(ticket), rest
end

local function incarnation(inst)
  return tonumber(string.match(inst, '%.(%w+)$'), 36) or -1
end

-- Is `inst` (with `ticket`) allowed to write over entry (s, ei, et)? Same gateway process assumed.
local function newer(s, ei, et, inst, ticket)
  if not s then return true end
  if s == 'R' and incarnation(inst) <= incarnation(ei) then return false end
  return tonumber(ticket) > et
end

-- Live-entry count, expiry of a hash that holds only tombstones, and the periodic prune of old tombstones.
-- Called after every write with the change in live entries.
local function upkeep(key, delta, now, tomb)
  local n
  if delta == 0 then n = tonumber(redis.call('HGET', key, '!n') or '0') else n = redis.call('HINCRBY', key, '!n', delta) end
  if n <= 0 then redis.call('PEXPIRE', key, tomb) else redis.call('PERSIST', key) end
  local due = tonumber(redis.call('HGET', key, '!t') or '0')
  if now < due then return end
  if due > 0 then
    local all = redis.call('HGETALL', key)
    for i = 1, #all, 2 do
      local f, v = all[i], all[i + 1]
      local c = string.sub(f, 1, 1)
      if c == '~' then
        -- A leave announcement is kept longer: a gateway that froze past its lease owes a join when it wakes.
        if tonumber(v) < now - tomb * 10 then redis.call('HDEL', key, f) end
      elseif c ~= '!' and c ~= '#' then
        local s, _, _, ms = parse(v)
        if s ~= 'L' and tonumber(ms) < now - tomb then redis.call('HDEL', key, f) end
      end
    end
  end
  redis.call('HSET', key, '!t', now + math.floor(tomb / 2))
end
