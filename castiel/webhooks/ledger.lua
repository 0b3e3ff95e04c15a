-- The webhook delivery ledger's commands of one event-loop turn, in one round trip (castiel/webhooks/ledger.py).
-- KEYS: delivery keys. ARGV[1]: a claim's TTL in seconds (pending), ARGV[2]: a confirmation's TTL (accepted),
-- ARGV[2 + i]: what to do with KEYS[i], "claim" or "confirm".
-- A claim sets "pending" only where no key exists: 1 claimed, 0 already claimed or accepted.
-- A confirmation sets "accepted" only where the key still exists: 1 confirmed, 0 the claim is gone.
local replies = {}
for i, key in ipairs(KEYS) do
  local done
  if ARGV[2 + i] == 'confirm' then
    done = redis.call('SET', key, 'accepted', 'XX', 'EX', ARGV[2])
  else
    done = redis.call('SET', key, 'pending', 'NX', 'EX', ARGV[1])
  end
  replies[i] = done and 1 or 0
end
return replies
