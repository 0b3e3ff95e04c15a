--[[
Raise a connection's throttle (adaptive.py): each deadline only ever moves later, so instances merge by maximum,
and the hash lives until its last deadline.

KEYS[1]: the throttle hash. ARGV: now, paused, quarter, half (integer epoch microseconds; 0 for "no change").
Reply: the pause deadline the connection had before, so the caller can tell a new pause from an extended one.
]]
local now = tonumber(ARGV[1])
local fields = {'paused', 'quarter', 'half'}
local current = redis.call('HMGET', KEYS[1], 'paused', 'quarter', 'half')
local latest = now
for i, name in ipairs(fields) do
  local deadline = tonumber(current[i]) or 0
  local proposed = tonumber(ARGV[i + 1])
  if proposed > deadline and proposed > now then
    redis.call('HSET', KEYS[1], name, ARGV[i + 1])
    deadline = proposed
  end
  if deadline > latest then
    latest = deadline
  end
end
local ttl = math.ceil((latest - now) / 1000)
if ttl > 0 and redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return tonumber(current[1]) or 0
