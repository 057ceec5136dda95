-- Ends a claim; when its order committed, the join is spent.
-- KEYS: see queue.lua
-- ARGV: user id, join number, 1 if the order committed
-- Returns 1 | 0 (no such claim)
local user, seq = ARGV[1], tonumber(ARGV[2])
if redis.call('HDEL', KEYS[5], int(seq)) == 0 then
  return 0
end
if ARGV[3] == '1' then
  local raw = redis.call('HGET', KEYS[2], user)
  if raw then
    local e = decode(raw)
    if e.seq == seq then
      e.used = 1
      redis.call('HSET', KEYS[2], user, encode(e))
    end
  end
end
return 1
