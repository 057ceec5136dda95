-- Joins a deal's queue, or answers the user's live ticket again.
-- KEYS, ARGV 1-6: see queue.lua
-- ARGV: user id, first join number of a new queue, 1 if the rooms may
--       take another user, a random integer below 2^53 (for the draw)
-- Returns a ticket (see answer) followed by two flags: the user is new to
--       this queue, the queue is new | {FULL}
local r = rules()
local user, first_seq, room = ARGV[7], tonumber(ARGV[8]), ARGV[9] == '1'
local q = load()
local created = q == nil
if created then
  q = { created = r.now, opened = false, credit = 0, earned = r.opens_at, admitted = 0,
    slots = 0, seq = first_seq, pool = 0 }
end
catch_up(q, r)
local raw = redis.call('HGET', KEYS[2], user)
if raw then
  local e = decode(raw)
  local kind = state_of(e, q, r)
  if kind ~= LAPSED and kind ~= SPENT then
    save(q, r)
    local t = answer(user, e, q, r)
    t[#t + 1] = 0
    t[#t + 1] = 0
    return t
  end
elseif not room then
  -- Joining again replaces the user's entry; only a new user takes room.
  save(q, r)
  return { FULL }
end
local e = { seq = q.seq, slot = q.slots, ok = 0, used = 0 }
q.seq = (q.seq + 1) % 4294967296
q.slots = q.slots + 1
if not q.opened then
  enter_draw(e.slot, tonumber(ARGV[10]))
elseif e.slot == q.admitted and q.credit >= UNIT then
  -- An idle queue with credit banked: straight in. (Not before the last
  -- admission, should this instance's clock be behind another's.)
  stamp(e.slot, { math.max(r.now, q.earned) })
  q.admitted = q.admitted + 1
  q.credit = q.credit - UNIT
end
save(q, r)
local t = answer(user, e, q, r)
t[#t + 1] = raw and 0 or 1
t[#t + 1] = created and 1 or 0
return t
