"""The delivery ledger on the real Redis server (24-hour idempotency claims, their release, the fallback to the
document store while Redis is unreachable), and the health a registration's audit lines add up to."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock, to_datetime
from castiel.models import WebhookAudit
from castiel.webhooks.health import health_status, registration_health
from castiel.webhooks.ledger import PENDING_TTL_SECONDS, SEEN_TTL_SECONDS, DeliveryLedger

from .conftest import NOW


@pytest.fixture
def ledger(redis_client: aioredis.Redis, store: SqliteDocumentStore, clock: ManualClock) -> DeliveryLedger:
    return DeliveryLedger(redis_client, store, clock=clock)


@pytest.fixture
def offline(dead_redis: aioredis.Redis, store: SqliteDocumentStore, clock: ManualClock) -> DeliveryLedger:
    return DeliveryLedger(dead_redis, store, clock=clock)


# ---------------------------------------------------------------- idempotency


async def test_a_delivery_is_claimed_once_per_registration(ledger: DeliveryLedger) -> None:
    assert await ledger.claim("reg-1", "delivery-1")
    assert not await ledger.claim("reg-1", "delivery-1")
    assert await ledger.claim("reg-1", "delivery-2")
    assert await ledger.claim("reg-2", "delivery-1")


async def test_a_released_claim_can_be_claimed_again(ledger: DeliveryLedger) -> None:
    await ledger.claim("reg-1", "delivery-1")
    await ledger.claim("reg-1", "delivery-2")

    await ledger.release("reg-1", "delivery-1")

    assert await ledger.claim("reg-1", "delivery-1")
    assert not await ledger.claim("reg-1", "delivery-2")


async def test_a_claim_is_pending_until_confirmed_then_remembered_for_24_hours(
    ledger: DeliveryLedger, redis_client: aioredis.Redis
) -> None:
    await ledger.claim("reg-1", "delivery-1")
    (key,) = [key async for key in redis_client.scan_iter(match="*delivery-1*")]
    assert 0 < await redis_client.ttl(key) <= PENDING_TTL_SECONDS

    ledger.confirm("reg-1", "delivery-1")
    await ledger.drain()

    assert SEEN_TTL_SECONDS == 24 * 3600
    assert SEEN_TTL_SECONDS - 5 <= await redis_client.ttl(key) <= SEEN_TTL_SECONDS
    assert not await ledger.claim("reg-1", "delivery-1")


async def test_claims_and_confirmations_of_one_turn_go_to_redis_as_one_command(
    ledger: DeliveryLedger, redis_client: aioredis.Redis
) -> None:
    assert await ledger.claim("reg-1", "earlier")
    commands_before = (await redis_client.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)

    async def confirm_earlier() -> None:
        ledger.confirm("reg-1", "earlier")

    _, *claims = await asyncio.gather(
        confirm_earlier(), ledger.claim("reg-1", "new"), ledger.claim("reg-1", "earlier"), ledger.claim("reg-1", "new")
    )
    await ledger.drain()

    assert claims == [True, False, False]  # the retry of a confirmed delivery and a repeat in the same turn
    assert (await redis_client.info("commandstats"))["cmdstat_evalsha"]["calls"] == commands_before + 1
    assert await redis_client.get("castiel:webhook:seen:{reg-1}:earlier") == b"accepted"
    assert await redis_client.get("castiel:webhook:seen:{reg-1}:new") == b"pending"


async def test_without_redis_a_confirmed_claim_is_kept_in_the_store_for_24_hours(
    offline: DeliveryLedger, clock: ManualClock
) -> None:
    assert await offline.claim("reg-1", "delivery-1")
    assert not await offline.claim("reg-1", "delivery-1")
    assert await offline.claim("reg-2", "delivery-1")
    offline.confirm("reg-1", "delivery-1")
    await offline.drain()

    clock.advance(SEEN_TTL_SECONDS - 1)
    assert not await offline.claim("reg-1", "delivery-1")
    clock.advance(2)
    assert await offline.claim("reg-1", "delivery-1")


async def test_a_claim_never_confirmed_lapses_so_the_retry_of_a_lost_delivery_is_accepted(
    offline: DeliveryLedger, clock: ManualClock
) -> None:
    # A receiver died between claiming and enqueuing: its claim must not turn the provider's retry into a "duplicate".
    assert await offline.claim("reg-1", "delivery-1")
    clock.advance(PENDING_TTL_SECONDS - 1)
    assert not await offline.claim("reg-1", "delivery-1")
    clock.advance(2)
    assert await offline.claim("reg-1", "delivery-1")


async def test_without_redis_a_release_still_frees_the_claim(offline: DeliveryLedger) -> None:
    await offline.claim("reg-1", "delivery-1")

    await offline.release("reg-1", "delivery-1")

    assert await offline.claim("reg-1", "delivery-1")


# ---------------------------------------------------------------- health


@pytest.mark.parametrize(
    ("accepted", "duplicates", "rejected", "failed", "status"),
    [
        (0, 0, 0, 0, "healthy"),
        (1, 0, 0, 0, "healthy"),
        (100, 0, 4, 0, "healthy"),  # 3.8 % not accepted
        (95, 0, 5, 0, "degraded"),  # exactly 5 %
        (19, 0, 0, 1, "degraded"),
        (51, 0, 25, 24, "degraded"),  # 49 %
        (1, 0, 1, 0, "failing"),  # exactly 50 %
        (0, 0, 0, 1, "failing"),
        (0, 0, 3, 0, "failing"),
        (0, 1, 1, 0, "failing"),  # a provider's retry is no problem, nor is it the sender's success
        (1, 99, 4, 0, "healthy"),  # duplicates are deliveries handled well
    ],
)
def test_health_status_is_the_share_of_deliveries_rejected_or_failed(
    accepted: int, duplicates: int, rejected: int, failed: int, status: str
) -> None:
    assert health_status(accepted, duplicates, rejected, failed) == status


def audit(registration_id: str, outcome: str, received_at: float) -> dict[str, object]:
    return WebhookAudit(
        id=f"{registration_id}-{outcome}-{received_at}",
        registration_id=registration_id,
        outcome=outcome,
        status_code=200,
        latency_ms=1.0,
        received_at=to_datetime(received_at),
    ).to_doc()


async def test_health_adds_up_the_audit_outcomes_and_the_last_delivery(
    offline: DeliveryLedger, store: SqliteDocumentStore
) -> None:
    outcomes = ["accepted", "duplicate", "handshake", "bad_signature", "malformed", "too_large", "enqueue_failed"]
    for offset, outcome in enumerate(outcomes):
        await store.create(WebhookAudit.container, audit("reg-1", outcome, NOW + offset))
    await store.create(WebhookAudit.container, audit("reg-2", "accepted", NOW + 100))
    # An idempotency document of the ledger's fallback shares the container and must not count.
    assert await offline.claim("reg-1", "delivery-1")

    health = await registration_health(store, "reg-1")

    assert (health.accepted, health.duplicates, health.rejected, health.failed) == (2, 1, 3, 1)
    assert health.status == "failing"
    assert health.last_received_at == to_datetime(NOW + len(outcomes) - 1)
    assert (health.last_outcome, health.last_reason) == ("enqueue_failed", None)


async def test_a_registration_never_delivered_to_is_healthy(store: SqliteDocumentStore) -> None:
    health = await registration_health(store, "reg-never")

    assert (health.accepted, health.duplicates, health.rejected, health.failed) == (0, 0, 0, 0)
    assert (health.status, health.last_received_at, health.last_outcome) == ("healthy", None, None)
