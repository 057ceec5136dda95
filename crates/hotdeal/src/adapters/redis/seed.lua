-- Seeds one stock key from the store, unless it is seeded already: a count
-- other instances are selling from is never overwritten.
-- KEYS: units, held, ver
-- ARGV: units, then user, held pairs
-- Returns {units now, ver} (the seeded ones, or those already there).
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  return {tonumber(redis.call('GET', KEYS[1])), tonumber(redis.call('GET', KEYS[3]) or '0')}
end
redis.call('DEL', KEYS[2])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
return {tonumber(ARGV[1]), redis.call('INCR', KEYS[3])}
