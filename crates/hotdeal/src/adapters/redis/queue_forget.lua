-- Drops a deal's queue (its deal ended).
-- KEYS: see queue.lua
-- Returns how many users the queue held.
local n = redis.call('HLEN', KEYS[2])
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return n
