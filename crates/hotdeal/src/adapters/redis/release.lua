-- Settles one reservation of one stock key that did not commit. Only the
-- caller that removes the record gives anything back, so a reservation is
-- released once however many settle it (the request, the reconciler).
-- KEYS: units, held, resv, due, ver
-- ARGV: id, keep_units ('1': the store had fewer units than counted, so
--       the units stay taken and the count comes down to the store's)
-- Returns {units now, ver} if this call released it, {-1} if it was
-- already settled, {-2} if the key is gone.
local record = redis.call('HGET', KEYS[3], ARGV[1])
if not record then
  return {-1}
end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
local user, qty, claim = string.match(record, '^(%S+) (%d+) (%d+)$')
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBY', KEYS[1], qty)
end
if tonumber(claim) > 0 then
  if redis.call('HINCRBY', KEYS[2], user, -tonumber(claim)) <= 0 then
    redis.call('HDEL', KEYS[2], user)
  end
end
local units = redis.call('GET', KEYS[1])
if not units then
  return {-2}
end
return {tonumber(units), redis.call('INCR', KEYS[5])}
