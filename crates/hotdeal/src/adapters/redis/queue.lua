-- The waiting room of one deal: what every queue script shares. Each
-- queue script is this file followed by its own body, run as one script,
-- so every operation is atomic for all instances.
--
-- KEYS (every queue script, in this order):
--   meta   hash: created, opened, credit, earned, admitted, slots, pool,
--          seq, rate
--   users  hash: user id (16 bytes) -> the user's latest join (ENTRY)
--   times  string: the admission time of place k at bytes [8k, 8k + 8)
--   rate   list: admission samples (SAMPLE), to measure the rate
--   claims hash: join number -> until when an order holds it (µs)
--   draw   string: the place of early join i at bytes [4i, 4i + 4)
-- ARGV (the scripts that catch up): now_us, opens_at_us, admit_per_sec
--   (at least 1), admitted_for_us, poll_min_ms, poll_max_ms; then the
--   script's own.
--
-- Places are numbered in admission order: place k is admitted once
-- `admitted` > k, and `slots` is the next free place, so no list of users
-- is kept and admitting n users touches no user's entry.
--
-- Times come from the caller's clock (µs since the Unix epoch), never from
-- Redis. Numbers are Lua doubles: every count and time here stays below
-- 2^53, so they are exact, and they are written with int() because
-- tostring() would round them to 14 digits.

local UNIT = 1000000 -- one admission, in the credit's unit
local BURST_SECS = 1 -- admission a queue may bank while nobody waits
local RATE_WINDOW_US = 10000000 -- how far back the rate is measured
local CHUNK = 1000 -- values per command when many are written (unpack's limit)

-- seq, slot (the place; for a join before the opening, its index in the
-- draw), poll_ok_ms (since `created`), used (1 once an order spent it):
-- 13 bytes.
local ENTRY = '<I4I4I4B'
-- time_us, admissions so far
local SAMPLE = '<dd'

-- Reply codes, and the kinds of a ticket's state.
local TICKET, UNKNOWN, TOO_SOON, FULL = 0, 1, 2, 3
local DRAWING, WAITS, ADMITTED, LAPSED, SPENT = 0, 1, 2, 3, 4

local function int(x)
  return string.format('%.0f', x)
end

-- floor(a / b), exactly: the double quotient may round up to an integer.
local function div_floor(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  end
  return q
end

-- ceil(a / b) for a >= 0, exactly.
local function div_ceil(a, b)
  local q = div_floor(a, b)
  if q * b < a then
    q = q + 1
  end
  return q
end

-- a / b rounded toward zero, as Rust's integer division.
local function quot(a, b)
  if a < 0 then
    return -div_floor(-a, b)
  end
  return div_floor(a, b)
end

local function decode(raw)
  local seq, slot, ok, used = struct.unpack(ENTRY, raw)
  return { seq = seq, slot = slot, ok = ok, used = used }
end

local function encode(e)
  return struct.pack(ENTRY, e.seq, e.slot, e.ok, e.used)
end

local function rules()
  return {
    now = tonumber(ARGV[1]),
    opens_at = tonumber(ARGV[2]),
    rate = tonumber(ARGV[3]),
    admitted_for = tonumber(ARGV[4]),
    poll_min = tonumber(ARGV[5]),
    poll_max = tonumber(ARGV[6]),
  }
end

-- The queue's counters, or nil when the deal has no queue.
local function load()
  local m = redis.call('HMGET', KEYS[1], 'created', 'opened', 'credit', 'earned', 'admitted',
    'slots', 'seq', 'pool')
  if not m[1] then
    return nil
  end
  return {
    created = tonumber(m[1]),
    opened = m[2] == '1',
    credit = tonumber(m[3]),
    earned = tonumber(m[4]),
    admitted = tonumber(m[5]),
    slots = tonumber(m[6]),
    seq = tonumber(m[7]),
    pool = tonumber(m[8]) or 0,
  }
end

local function save(q, r)
  redis.call('HSET', KEYS[1], 'created', int(q.created), 'opened', q.opened and '1' or '0',
    'credit', int(q.credit), 'earned', int(q.earned), 'admitted', int(q.admitted),
    'slots', int(q.slots), 'seq', int(q.seq), 'pool', int(q.pool),
    'rate', int(r.rate))
end

-- The draw, one join at a time (inside-out Fisher-Yates): join i takes
-- position j, uniform in [0, i] from the caller's random `r` (below 2^53),
-- and the join at j moves to i. After n joins the positions are a uniform
-- permutation of 0 .. n - 1 whatever the order of arrival, so the opening
-- has nothing left to shuffle: it only stops the draw.
local function enter_draw(i, r)
  local j = r - div_floor(r, i + 1) * (i + 1)
  if j ~= i then
    redis.call('SETRANGE', KEYS[6], 4 * i, redis.call('GETRANGE', KEYS[6], 4 * j, 4 * j + 3))
  end
  redis.call('SETRANGE', KEYS[6], 4 * j, struct.pack('<I4', i))
end

-- The place of entry e: a join before the opening holds its index in
-- the draw.
local function place(e, q)
  if e.slot < q.pool then
    local drawn = redis.call('GETRANGE', KEYS[6], 4 * e.slot, 4 * e.slot + 3)
    -- (Missing only if Redis lost the key: the join's index then stands.)
    if #drawn == 4 then
      return (struct.unpack('<I4', drawn))
    end
  end
  return e.slot
end

-- Writes the admission times of places first, first + 1, ...
local function stamp(first, times)
  for i = 1, #times, CHUNK do
    local last = math.min(i + CHUNK - 1, #times)
    redis.call('SETRANGE', KEYS[3], (first + i - 1) * 8,
      struct.pack('<' .. string.rep('d', last - i + 1), unpack(times, i, last)))
  end
end

local function admitted_at(slot)
  local raw = redis.call('GETRANGE', KEYS[3], slot * 8, slot * 8 + 7)
  if #raw < 8 then
    return nil
  end
  return (struct.unpack('<d', raw))
end

-- Opens the queue if `now` is past the opening (ending the draw), then admits
-- what the credit earned until `now` allows, each admission stamped with
-- the moment its unit of credit was earned (as adapters::memory_queue).
local function catch_up(q, r)
  if not q.opened then
    -- Credit starts at the opening, which the seller may still move.
    q.earned = r.opens_at
    if r.now < r.opens_at then
      return
    end
    -- The first script at or after the opening ends the draw, for all
    -- instances at once: the joins so far hold places 0 .. pool - 1 as
    -- drawn, later ones queue behind them.
    q.opened = true
    q.pool = q.slots
  end
  local from = q.earned
  if r.now <= from then
    return
  end
  q.earned = r.now
  local before = q.credit
  local waiting = q.slots - q.admitted
  -- More credit than admits everyone waiting and fills the burst changes
  -- nothing, and would leave the range where doubles are exact.
  local cap = (waiting + 1 + r.rate * BURST_SECS) * UNIT
  local credit = before + math.min((r.now - from) * r.rate, cap)
  local n = math.min(div_floor(credit, UNIT), waiting)
  if n > 0 then
    local times = {}
    for k = 1, n do
      -- The moment the k-th whole admission was earned.
      local need = math.max(k * UNIT - before, 0)
      times[k] = math.min(math.max(from + div_ceil(need, r.rate), from), r.now)
    end
    stamp(q.admitted, times)
    q.admitted = q.admitted + n
    waiting = waiting - n
    credit = credit - n * UNIT
  end
  if waiting == 0 then
    credit = math.min(credit, r.rate * BURST_SECS * UNIT)
    redis.call('DEL', KEYS[4])
  else
    local last = redis.call('LINDEX', KEYS[4], -1)
    if not last or r.now - struct.unpack(SAMPLE, last) >= 1000000 then
      redis.call('RPUSH', KEYS[4], struct.pack(SAMPLE, r.now, q.admitted))
      while true do
        local first = redis.call('LINDEX', KEYS[4], 0)
        if not first or r.now - struct.unpack(SAMPLE, first) <= RATE_WINDOW_US then
          break
        end
        redis.call('LPOP', KEYS[4])
      end
    end
  end
  q.credit = credit
end

-- Admissions per second over the samples, as (admissions, µs); the set
-- rate as (rate, 1e6) until there is a measurement.
local function measured(rate)
  local first = redis.call('LINDEX', KEYS[4], 0)
  local last = redis.call('LINDEX', KEYS[4], -1)
  if first and last then
    local t0, a0 = struct.unpack(SAMPLE, first)
    local t1, a1 = struct.unpack(SAMPLE, last)
    if t1 - t0 >= 1000000 then
      return a1 - a0, t1 - t0
    end
  end
  return rate, 1000000
end

-- Whether an order holds the join `seq` now.
local function claimed(seq, now)
  local ends = redis.call('HGET', KEYS[5], int(seq))
  return ends and tonumber(ends) > now
end

-- Where entry e stands: its kind and number (pool, ahead, or until µs).
local function state_of(e, q, r)
  if not q.opened then
    return DRAWING, q.slots
  end
  local slot = place(e, q)
  if e.used == 1 then
    return SPENT, 0
  end
  if slot >= q.admitted then
    return WAITS, slot - q.admitted
  end
  local at = admitted_at(slot)
  if not at then
    -- Admitted with no time recorded: cannot happen while the keys are
    -- whole; read as spent rather than admitted for ever.
    return SPENT, 0
  end
  local ends = at + r.admitted_for
  if r.now < ends or claimed(e.seq, r.now) then
    return ADMITTED, ends
  end
  return LAPSED, ends
end

-- ports::queue::poll_after, in whole milliseconds.
local function poll_after(kind, n, rate, r)
  local wanted
  if kind == DRAWING then
    wanted = quot(r.opens_at - r.now, 1000)
  elseif kind == WAITS then
    wanted = math.floor(math.min((n + 1) / math.max(rate, 0.001) * 1000.0 / 2.0, 1e12))
  else
    wanted = r.poll_max
  end
  return math.min(math.max(wanted, r.poll_min), math.max(r.poll_max, r.poll_min))
end

-- The ticket of `user`'s entry e as answered now; arms the poll limit.
-- {TICKET, seq, kind, number, rate numerator, rate denominator (the rate
-- is numerator * 1e6 / denominator), poll_after_ms}
local function answer(user, e, q, r)
  local kind, n = state_of(e, q, r)
  local num, den = measured(r.rate)
  local wait = poll_after(kind, n, num * 1000000 / den, r)
  local ok = quot(r.now - q.created, 1000) + wait
  -- A u32, as in memory: past 49 days a queue no longer limits polls.
  if ok < 0 or ok > 4294967295 then
    ok = 0
  end
  e.ok = ok
  redis.call('HSET', KEYS[2], user, encode(e))
  return { TICKET, e.seq, kind, n, num, den, wait }
end
