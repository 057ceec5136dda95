-- Seeds a coupon's total and holders unless it is seeded already.
-- KEYS: total, holders
-- ARGV: total, then the holders
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  return 0
end
redis.call('DEL', KEYS[2])
for i = 2, #ARGV do
  redis.call('SADD', KEYS[2], ARGV[i])
end
return 1
