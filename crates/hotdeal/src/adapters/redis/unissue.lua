-- Releases a coupon hold whose issue did not commit, once.
-- KEYS: holders, resv, due
-- ARGV: id
local user = redis.call('HGET', KEYS[2], ARGV[1])
if not user then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[1], user)
return 1
