--[[
Sliding-window log rate limiter: a batch of checks, each across three levels, in one atomic call.

Check i has 4 KEYS — the integration, operation and tenant sorted sets, then the connection's throttle hash
(adaptive.lua) — and ARGV[i]: "now member limit1 window1 limit2 window2 limit3 window3" (one string, because
parsing it here costs less than encoding eight arguments in the client). Times are integer epoch microseconds.
A sorted set holds one member per admitted call, scored by its time; an entry scored <= now - window has left the
window. A check is admitted only if every level has room, and only then recorded, at every level. A paused
connection is refused; a throttled one has its integration limit divided by 2 or 4.

Reply: one string, checks separated by ";", each "admitted level retry_after remaining reset_at used1 used2 used3
limit1 limit2 limit3" (level: 0 none, 1-3 the refusing level, 4 the provider's pause). Numbers go through %d:
Lua's own number-to-string keeps 14 digits, too few for a time in microseconds. local_window.py is the same
algorithm in Python.
]]
local REPLY = '%d %d %d %d %d %d %d %d %d %d %d'
local replies = {}
for check = 1, #ARGV do
  local k = (check - 1) * 4
  local fields = {}
  for field in string.gmatch(ARGV[check], '%S+') do
    fields[#fields + 1] = field
  end
  local now, member = tonumber(fields[1]), fields[2]
  local limits, windows, used = {}, {}, {0, 0, 0}
  for level = 1, 3 do
    limits[level] = tonumber(fields[1 + 2 * level])
    windows[level] = tonumber(fields[2 + 2 * level])
  end
  local throttle = redis.call('HMGET', KEYS[k + 4], 'paused', 'quarter', 'half')
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
      local key = KEYS[k + level]
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
        local key = KEYS[k + level]
        redis.call('ZADD', key, now, member)
        redis.call('PEXPIRE', key, math.ceil(windows[level] / 1000))
        used[level] = used[level] + 1
        local left = limits[level] - used[level]
        if tightest == 0 or left < remaining then
          tightest, remaining = level, left
        end
      end
      local oldest = redis.call('ZRANGE', KEYS[k + tightest], 0, 0, 'WITHSCORES')
      replies[check] = string.format(REPLY, 1, 0, 0, remaining, tonumber(oldest[2]) + windows[tightest],
        used[1], used[2], used[3], limits[1], limits[2], limits[3])
    end
  end
end
return table.concat(replies, ';')
