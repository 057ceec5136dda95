-- Holds units of one stock key for one write, all or nothing.
-- KEYS: units, held (per-user counts of a limited deal), resv, due, ver
--       (bumped on every change of units, to order the answers)
-- ARGV: id, qty, user, limit, claim, deadline_ms
-- Returns {0, units left, ver} | {-1, units there} (short) | {-2} (unseeded)
--       | {-3, held} (over the per-user limit) | {-4} (id already held)
local units = redis.call('GET', KEYS[1])
if not units then
  return {-2}
end
units = tonumber(units)
local qty = tonumber(ARGV[2])
local claim = tonumber(ARGV[5])
if claim > 0 then
  local held = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
  if held + claim > tonumber(ARGV[4]) then
    return {-3, held}
  end
end
if units < qty then
  return {-1, units}
end
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[3] .. ' ' .. qty .. ' ' .. claim) == 0 then
  return {-4}
end
redis.call('DECRBY', KEYS[1], qty)
if claim > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[3], claim)
end
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
return {0, units - qty, redis.call('INCR', KEYS[5])}
