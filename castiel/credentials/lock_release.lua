-- Release a credential's refresh lock only if this owner still holds it (its expiry may have handed it on).
-- KEYS[1] the lock; ARGV[1] the owner id. Returns 1 when released, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
