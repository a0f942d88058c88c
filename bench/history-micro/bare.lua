-- Reference only (bench/history-micro.ts): the least a script can do per copy, XADD + publish, no offset.
-- Same KEYS/ARGV as append.lua.
local maxlen, pub = ARGV[2], ARGV[5]
for i = 1, #KEYS do
  local a = 4 + 3 * i
  local frame = ARGV[a + 1] .. ARGV[a + 2]
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', maxlen, '*', 'm', frame)
  redis.call(pub, ARGV[a], frame)
end
return #KEYS
