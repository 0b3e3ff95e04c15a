-- The webhook delivery ledger's commands of one event-loop turn, in one round trip (castiel/webhooks/ledger.py).
-- KEYS: delivery keys, the first ARGV[1] of them to confirm, the rest to claim.
-- ARGV[2]: a claim's TTL in seconds (pending), ARGV[3]: a confirmation's TTL in seconds (accepted).
-- A claim sets "pending" only where no key exists: 1 claimed, 0 already claimed or accepted.
-- A confirmation sets "accepted" only where the key still exists: 1 confirmed, 0 the claim is gone.
local confirms = tonumber(ARGV[1])
local replies = {}
for i, key in ipairs(KEYS) do
  local done
  if i <= confirms then
    done = redis.call('SET', key, 'accepted', 'XX', 'EX', ARGV[3])
  else
    done = redis.call('SET', key, 'pending', 'NX', 'EX', ARGV[2])
  end
  replies[i] = done and 1 or 0
end
return replies
