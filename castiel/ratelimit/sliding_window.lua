--[[
Sliding-window log rate limiter: a batch of checks, each across three levels, in one atomic call.

KEYS: every key of the batch, once. ARGV[i], check i, one string (parsing it here costs less than encoding thirteen
arguments in the client): "k1 k2 k3 k4 now member record limit1 window1 limit2 window2 limit3 window3", where k1-k3
index KEYS for the integration, operation and tenant sorted sets and k4 the connection's throttle hash
(adaptive.lua), and record is 1 for a check, 0 for a peek. Times are integer epoch microseconds.
A sorted set holds one member per admitted call, scored by its time; an entry scored <= now - window has left the
window. A check is admitted only if every level has room, and only then recorded, at every level. A peek answers
the same question and records nothing (it only drops entries that have left their window, which changes no answer).
A paused connection is refused; a throttled one has its integration limit divided by 2 or 4.

Reply: one string, checks separated by ";", each "admitted level retry_after remaining reset_at used1 used2 used3
limit1 limit2 limit3" (level: 0 none, 1-3 the refusing level, 4 the provider's pause; an admitted check counts
itself in used and remaining, a peek does not, and its reset_at is now when the tightest window is empty). Numbers
go through %d: Lua's own number-to-string keeps 14 digits, too few for a time in microseconds. local_window.py is
the same algorithm in Python.
]]
local SPEC = '^(%d+) (%d+) (%d+) (%d+) (%d+) (%S+) ([01]) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$'
local REPLY = '%d %d %d %d %d %d %d %d %d %d %d'
local replies = {}
local expiring = {}  -- keys whose expiry this call has already pushed back
local throttles = {}  -- throttle hashes already read: nothing changes them during this call
for check = 1, #ARGV do
  local k1, k2, k3, k4, now, member, record, l1, w1, l2, w2, l3, w3 = string.match(ARGV[check], SPEC)
  local keys = {KEYS[tonumber(k1)], KEYS[tonumber(k2)], KEYS[tonumber(k3)]}
  local limits = {tonumber(l1), tonumber(l2), tonumber(l3)}
  local windows = {tonumber(w1), tonumber(w2), tonumber(w3)}
  local used = {0, 0, 0}
  now = tonumber(now)
  local throttle_key = KEYS[tonumber(k4)]
  local throttle = throttles[throttle_key]
  if not throttle then
    throttle = redis.call('HMGET', throttle_key, 'paused', 'quarter', 'half')
    throttles[throttle_key] = throttle
  end
  local paused = tonumber(throttle[1]) or 0
  if paused > now then
    replies[check] = string.format(REPLY, 0, 4, paused - now, 0, paused, 0, 0, 0, limits[1], limits[2], limits[3])
  else
    if (tonumber(throttle[2]) or 0) > now then
      limits[1] = math.max(1, math.floor(limits[1] / 4))
    elseif (tonumber(throttle[3]) or 0) > now then
      limits[1] = math.max(1, math.floor(limits[1] / 2))
    end
    local refused, wait = 0, 0
    for level = 1, 3 do
      local key = keys[level]
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - windows[level])
      used[level] = redis.call('ZCARD', key)
      local excess = used[level] - limits[level]
      if excess >= 0 then
        -- the call needs excess + 1 entries gone; the one at rank `excess` is the last of them to leave
        local entry = redis.call('ZRANGE', key, excess, excess, 'WITHSCORES')
        local level_wait = tonumber(entry[2]) + windows[level] - now
        if level_wait > wait then
          refused, wait = level, level_wait
        end
      end
    end
    if refused > 0 then
      replies[check] = string.format(REPLY, 0, refused, wait, 0, now + wait,
        used[1], used[2], used[3], limits[1], limits[2], limits[3])
    else
      local tightest, remaining = 0, 0
      for level = 1, 3 do
        if record == '1' then
          local key = keys[level]
          redis.call('ZADD', key, now, member)
          if not expiring[key] then
            redis.call('PEXPIRE', key, math.ceil(windows[level] / 1000))
            expiring[key] = true
          end
          used[level] = used[level] + 1
        end
        local left = limits[level] - used[level]
        if tightest == 0 or left < remaining then
          tightest, remaining = level, left
        end
      end
      local oldest = redis.call('ZRANGE', keys[tightest], 0, 0, 'WITHSCORES')
      local reset_at = now
      if oldest[2] then
        reset_at = tonumber(oldest[2]) + windows[tightest]
      end
      replies[check] = string.format(REPLY, 1, 0, 0, remaining, reset_at,
        used[1], used[2], used[3], limits[1], limits[2], limits[3])
    end
  end
end
return table.concat(replies, ';')
