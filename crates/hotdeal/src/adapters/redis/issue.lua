-- Holds one unit of a coupon for one user.
-- KEYS: total, holders, resv, due
-- ARGV: id, user, deadline_ms
-- Returns issued count | -1 (already a holder) | -2 (unseeded) | -3 (sold out)
local total = redis.call('GET', KEYS[1])
if not total then
  return -2
end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then
  return -1
end
local issued = redis.call('SCARD', KEYS[2])
if issued >= tonumber(total) then
  return -3
end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
return issued + 1
