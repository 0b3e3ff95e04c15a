"""Every Lua call keeps its keys in one cluster hash slot, so it runs on a clustered cache (Azure Managed Redis refuses
a script across slots with CROSSSLOT). The real limiter, webhook ledger and credential lock run against a real Redis
with concurrent work for several tenants, registrations and credentials, and every ``EVALSHA`` they send is checked
with redis-py's own CRC16 slot function."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.credentials.lock import RefreshLocks
from castiel.ratelimit.limiter import RateLimiter
from castiel.ratelimit.policy import RateLimitPolicy
from castiel.redis_script import hash_tag
from castiel.webhooks.ledger import DeliveryLedger


class RecordingRedis(aioredis.Redis):
    """A real client that notes the keys of every script call it sends."""

    calls: list[tuple[str, ...]]

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:  # type: ignore[override]
        self.calls.append(tuple(str(key) for key in keys_and_args[:numkeys]))
        return await super().evalsha(sha, numkeys, *keys_and_args)


@pytest.fixture
async def recording(redis_server: EmbeddedRedis) -> AsyncIterator[RecordingRedis]:
    client = RecordingRedis.from_url(redis_server.url)
    client.calls = []
    await client.flushdb()
    yield client
    await client.aclose()


def slots(keys: tuple[str, ...]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


def assert_one_slot_per_call(calls: list[tuple[str, ...]]) -> None:
    assert calls, "no script ran"
    spanning = [keys for keys in calls if len(slots(keys)) > 1]
    assert spanning == [], f"script calls across hash slots: {spanning}"


async def test_the_limiter_s_three_levels_and_throttle_share_a_slot_even_in_a_mixed_batch(
    recording: RecordingRedis,
) -> None:
    limiter = RateLimiter(recording, RateLimitPolicy({}))
    checks = [
        limiter.check(tenant_id=f"tenant-{t}", connection_id=f"conn-{c}", provider="github", operation=operation)
        for t in range(4)
        for c in range(2)
        for operation in ("fetch", "update")
    ]
    peeks = [limiter.peek(tenant_id=f"tenant-{t}", connection_id="conn-0", provider="notion", operation="fetch")
             for t in range(3)]  # fmt: skip

    answers = await asyncio.gather(*checks, *peeks)
    await limiter.observe_response(
        tenant_id="tenant-1", connection_id="conn-1", provider="github", status_code=429, headers={"Retry-After": "30"}
    )

    assert all(answer.allowed for answer in answers)
    assert_one_slot_per_call(recording.calls)
    # Each script call carries the integration, operation and tenant windows (and the throttle) of its tenants' checks.
    assert max(len(keys) for keys in recording.calls) >= 4


async def test_the_webhook_ledger_s_batch_of_claims_shares_a_slot(recording: RecordingRedis, data_dir: Path) -> None:
    store = SqliteDocumentStore(data_dir / "store.db")
    ledger = DeliveryLedger(recording, store)

    claimed = await asyncio.gather(
        *(ledger.claim(f"registration-{r}", f"delivery-{d}") for r in range(5) for d in range(3))
    )
    for r in range(5):
        ledger.confirm(f"registration-{r}", "delivery-0")
    await ledger.drain()
    await store.close()

    assert all(claimed)
    assert_one_slot_per_call(recording.calls)
    assert max(len(keys) for keys in recording.calls) == 3  # a registration's claims still travel together


async def test_the_credential_lock_and_its_fencing_counter_share_a_slot(recording: RecordingRedis) -> None:
    locks = RefreshLocks(recording)

    async def refresh(tenant: str, credential: str) -> int | None:
        async with locks.hold(tenant, credential, floor=0) as lease:
            return lease.fence

    fences = await asyncio.gather(*(refresh(f"t{n}", f"cred-{n}") for n in range(4)))

    assert fences == [1, 1, 1, 1]
    assert_one_slot_per_call(recording.calls)


@pytest.mark.parametrize(
    ("key", "tag"),
    [
        ("castiel:rl:{t1}:conn:c1", "t1"),
        ("castiel:webhook:seen:{reg-1}:abc", "reg-1"),
        ("no-tag", "no-tag"),
        ("empty:{}:tag", "empty:{}:tag"),
        ("two:{a}:{b}", "a"),
        ("open:{only", "open:{only"),
    ],
)
def test_hash_tag_is_what_redis_cluster_hashes(key: str, tag: str) -> None:
    assert hash_tag(key) == tag
    assert key_slot(key.encode()) == key_slot(tag.encode())
