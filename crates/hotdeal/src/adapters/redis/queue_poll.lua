-- Where a join stands; a poll sooner than the last answer allowed is
-- refused.
-- KEYS, ARGV 1-6: see queue.lua
-- ARGV: user id, join number
-- Returns a ticket (see answer) | {UNKNOWN} (no queue, or not the user's
--       latest join) | {TOO_SOON, ms left}
local r = rules()
local user, seq = ARGV[7], tonumber(ARGV[8])
local q = load()
if not q then
  return { UNKNOWN }
end
catch_up(q, r)
save(q, r)
local raw = redis.call('HGET', KEYS[2], user)
if not raw then
  return { UNKNOWN }
end
local e = decode(raw)
if e.seq ~= seq then
  return { UNKNOWN }
end
local since = quot(r.now - q.created, 1000)
if since < e.ok then
  return { TOO_SOON, e.ok - since }
end
return answer(user, e, q, r)
