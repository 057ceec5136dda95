-- One queue at a glance, as of its last join or poll.
-- KEYS: see queue.lua
-- Returns {waiting, admitted, rate numerator, rate denominator} | {} (no
--       queue)
local m = redis.call('HMGET', KEYS[1], 'admitted', 'slots', 'rate')
if not m[1] then
  return {}
end
local admitted = tonumber(m[1])
local num, den = measured(tonumber(m[3]))
return { tonumber(m[2]) - admitted, admitted, num, den }
