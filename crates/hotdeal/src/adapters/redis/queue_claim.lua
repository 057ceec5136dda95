-- Takes an admitted join for one order, until settled or `lease` passes
-- (an instance that dies mid-order must not hold the token for ever).
-- KEYS, ARGV 1-6: see queue.lua
-- ARGV: user id, join number, lease_us
-- Returns 0 (taken) | 1 (still waiting) | 2 (expired, spent or unknown)
--       | 3 (an order holds it)
local r = rules()
local user, seq, lease = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local q = load()
if not q then
  return 2
end
catch_up(q, r)
save(q, r)
local raw = redis.call('HGET', KEYS[2], user)
if not raw then
  return 2
end
local e = decode(raw)
if e.seq ~= seq then
  return 2
end
if claimed(seq, r.now) then
  return 3
end
local kind = state_of(e, q, r)
if kind == ADMITTED then
  redis.call('HSET', KEYS[5], int(seq), int(r.now + lease))
  return 0
end
if kind == DRAWING or kind == WAITS then
  return 1
end
return 2
