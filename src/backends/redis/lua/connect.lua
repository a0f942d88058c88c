-- Register one connection in its user's hash. Runs after the instance index took it (index.lua, fenced by
-- the lease), so only a live instance gets here; the entry rules below stop a write that arrives late.
-- KEYS[1] wsg:p:{user}   ARGV: conn, instance, ticket, payload "gateway|region|since", tombstone ms
-- Returns 1 written, 0 refused (connection already closed, or a newer registration), -1 this incarnation
-- was reaped (the gateway must re-assert under a new one). The first write is HSET, which Redis refuses
-- under maxmemory before anything changed.
-- #include entry.lua
local key, conn, inst, ticket = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local s, ei, et = parse(redis.call('HGET', key, conn))
if s == 'X' then return 0 end
if s == 'R' and incarnation(inst) <= incarnation(ei) then return -1 end
if s and tonumber(ticket) <= et then return 0 end
redis.call('HSET', key, conn, 'L|' .. inst .. '|' .. ticket .. '|' .. ARGV[4])
upkeep(key, s == 'L' and 0 or 1, now_ms(), tonumber(ARGV[5]))
return 1
