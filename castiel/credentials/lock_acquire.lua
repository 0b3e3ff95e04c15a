-- Take a credential's refresh lock and hand out its next fencing token, atomically.
-- KEYS[1] the lock, KEYS[2] the credential's fencing counter (same hash slot).
-- ARGV[1] the owner id, ARGV[2] the lock's expiry in ms, ARGV[3] the highest token already stored with the credential.
-- Returns the new fencing token, or 0 when another holder has the lock.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
-- A Redis that lost its data (a restart without persistence) must still hand out tokens above the stored one.
local floor = tonumber(ARGV[3])
if tonumber(redis.call('GET', KEYS[2]) or '0') < floor then
  redis.call('SET', KEYS[2], floor)
end
return redis.call('INCR', KEYS[2])
