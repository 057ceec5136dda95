-- Adds the units a committed change gave back, once per event name.
-- KEYS: units, held, applied (event names already applied, scored by time),
--       ver
-- ARGV: event, units, user, unclaim, now_ms
-- Returns {units now, ver}, {-1} if the event was applied before, {-2} if
-- the key is not seeded (the store has the increase; a seed will read it).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-2}
end
if redis.call('ZADD', KEYS[3], 'NX', ARGV[5], ARGV[1]) == 0 then
  return {-1}
end
local units = redis.call('INCRBY', KEYS[1], ARGV[2])
local unclaim = tonumber(ARGV[4])
if unclaim > 0 then
  if redis.call('HINCRBY', KEYS[2], ARGV[3], -unclaim) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[3])
  end
end
return {units, redis.call('INCR', KEYS[4])}
