"""The delivery ledger on the real Redis server: 24-hour idempotency claims, their release, health counters, and the
fallback to the document store while Redis is unreachable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock, to_datetime
from castiel.errors import RetryableError
from castiel.webhooks.ledger import SEEN_TTL_SECONDS, DeliveryLedger, health_status

from .conftest import NOW


@pytest.fixture
async def store(tmp_path: Path, clock: ManualClock) -> AsyncIterator[SqliteDocumentStore]:
    store = SqliteDocumentStore(tmp_path / "store.db", clock=clock)
    yield store
    await store.close()


@pytest.fixture
def ledger(redis_client: aioredis.Redis, store: SqliteDocumentStore, clock: ManualClock) -> DeliveryLedger:
    return DeliveryLedger(redis_client, store, clock=clock)


@pytest.fixture
def offline(dead_redis: aioredis.Redis, store: SqliteDocumentStore, clock: ManualClock) -> DeliveryLedger:
    return DeliveryLedger(dead_redis, store, clock=clock)


@pytest.mark.parametrize(
    ("accepted", "rejected", "failed", "status"),
    [
        (0, 0, 0, "healthy"),
        (1, 0, 0, "healthy"),
        (100, 4, 0, "healthy"),  # 3.8 % not accepted
        (95, 5, 0, "degraded"),  # exactly 5 %
        (19, 0, 1, "degraded"),
        (51, 25, 24, "degraded"),  # 49 %
        (1, 1, 0, "failing"),  # exactly 50 %
        (0, 0, 1, "failing"),
        (0, 3, 0, "failing"),
    ],
)
def test_health_status_is_the_share_of_deliveries_not_accepted(
    accepted: int, rejected: int, failed: int, status: str
) -> None:
    assert health_status(accepted, rejected, failed) == status


async def test_a_delivery_is_claimed_once_per_registration(ledger: DeliveryLedger) -> None:
    assert (await ledger.claim("reg-1", "delivery-1")).first
    assert not (await ledger.claim("reg-1", "delivery-1")).first
    assert (await ledger.claim("reg-1", "delivery-2")).first
    assert (await ledger.claim("reg-2", "delivery-1")).first


async def test_a_released_claim_can_be_claimed_again_and_is_not_counted(ledger: DeliveryLedger) -> None:
    await ledger.claim("reg-1", "delivery-1")
    await ledger.release("reg-1", "delivery-1")

    assert (await ledger.health("reg-1")).accepted == 0
    assert (await ledger.claim("reg-1", "delivery-1")).first
    assert (await ledger.health("reg-1")).accepted == 1


async def test_releasing_what_was_never_claimed_changes_nothing(ledger: DeliveryLedger) -> None:
    await ledger.claim("reg-1", "delivery-1")
    await ledger.release("reg-1", "delivery-2")

    assert (await ledger.health("reg-1")).accepted == 1
    assert not (await ledger.claim("reg-1", "delivery-1")).first


async def test_a_claim_is_remembered_for_24_hours(ledger: DeliveryLedger, redis_client: aioredis.Redis) -> None:
    await ledger.claim("reg-1", "delivery-1")

    (key,) = [key async for key in redis_client.scan_iter(match="*delivery-1*")]
    assert SEEN_TTL_SECONDS == 24 * 3600
    assert SEEN_TTL_SECONDS - 5 <= await redis_client.ttl(key) <= SEEN_TTL_SECONDS


async def test_health_counts_every_outcome_and_the_last_delivery(ledger: DeliveryLedger, clock: ManualClock) -> None:
    await ledger.claim("reg-1", "delivery-1")
    await ledger.claim("reg-1", "delivery-2")
    await ledger.count("reg-1", "rejected")
    clock.advance(90)
    await ledger.count("reg-1", "failed")
    await ledger.count("reg-2", "rejected")

    health = await ledger.health("reg-1")

    assert (health.accepted, health.rejected, health.failed) == (2, 1, 1)
    assert health.status == "failing"
    assert health.last_received_at == to_datetime(NOW + 90)


async def test_a_registration_never_delivered_to_is_healthy(ledger: DeliveryLedger) -> None:
    health = await ledger.health("reg-never")

    assert (health.accepted, health.rejected, health.failed, health.status) == (0, 0, 0, "healthy")
    assert health.last_received_at is None


async def test_without_redis_claims_fall_back_to_the_store_for_24_hours(
    offline: DeliveryLedger, clock: ManualClock
) -> None:
    assert (await offline.claim("reg-1", "delivery-1")).first
    assert not (await offline.claim("reg-1", "delivery-1")).first
    assert (await offline.claim("reg-2", "delivery-1")).first

    clock.advance(SEEN_TTL_SECONDS - 1)
    assert not (await offline.claim("reg-1", "delivery-1")).first
    clock.advance(2)
    assert (await offline.claim("reg-1", "delivery-1")).first


async def test_without_redis_a_release_still_frees_the_claim(offline: DeliveryLedger) -> None:
    await offline.claim("reg-1", "delivery-1")
    await offline.release("reg-1", "delivery-1")

    assert (await offline.claim("reg-1", "delivery-1")).first


async def test_without_redis_counting_pauses_and_health_is_retryable(offline: DeliveryLedger) -> None:
    await offline.count("reg-1", "rejected")

    with pytest.raises(RetryableError, match="webhook health is unavailable"):
        await offline.health("reg-1")
