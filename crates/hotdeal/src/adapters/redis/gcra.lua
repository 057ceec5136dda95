-- One GCRA check (generic cell rate algorithm) on one key: allow a request
-- if it does not arrive earlier than the theoretical arrival time (TAT)
-- minus the burst tolerance; if allowed, push the TAT one interval on.
-- The time is the Redis server's, so every gateway sharing the key uses
-- one clock. The key holds only the TAT and lives no longer than it
-- matters (PX), so idle clients cost nothing.
--
-- KEYS[1]  the limit's key
-- ARGV[1]  emission interval, microseconds (1 s / rate)
-- ARGV[2]  burst tolerance, microseconds (interval * burst)
-- returns  0 when allowed, else the microseconds to wait
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return allow_at - now
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
