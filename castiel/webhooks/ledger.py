"""What the receiver remembers between deliveries: which were already accepted (24 h) and each registration's health.

Both live in Redis and the hot path touches them in ONE round trip: ``SET NX EX`` on the delivery key pipelined with
the health counters. When Redis is unreachable, idempotency falls back to the document store (a document per
delivery with a 24 h TTL) and health counting pauses: a verified event is still accepted, never refused.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from castiel.clock import Clock, system_clock, to_datetime
from castiel.errors import AlreadyExists, NotFound
from castiel.models import WebhookHealth, stable_id
from castiel.ports import DocumentStore
from castiel.telemetry import log_event

SEEN_TTL_SECONDS = 24 * 3600
_SEEN_CONTAINER = "webhook-audit"
_OUTCOMES = ("accepted", "rejected", "failed")


def _seen_key(registration_id: str, delivery_key: str) -> str:
    return f"castiel:webhook:seen:{{{registration_id}}}:{delivery_key}"


def _health_key(registration_id: str) -> str:
    return f"castiel:webhook:health:{{{registration_id}}}"


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming a delivery: ``first`` is False for a delivery already accepted in the last 24 h."""

    first: bool


def health_status(accepted: int, rejected: int, failed: int) -> str:
    """healthy / degraded / failing from the share of deliveries that were not accepted."""
    total = accepted + rejected + failed
    if total == 0:
        return "healthy"
    bad = (rejected + failed) / total
    if bad >= 0.5:
        return "failing"
    if bad >= 0.05:
        return "degraded"
    return "healthy"


class DeliveryLedger:
    """Idempotency keys and health counters per registration."""

    def __init__(self, redis: aioredis.Redis, store: DocumentStore, *, clock: Clock = system_clock) -> None:
        self._redis = redis
        self._store = store
        self._clock = clock

    async def claim(self, registration_id: str, delivery_key: str) -> Claim:
        """Mark a verified delivery seen and count it accepted, in one round trip; False-first means a repeat."""
        now = self._clock()
        health = _health_key(registration_id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(_seen_key(registration_id, delivery_key), b"1", nx=True, ex=SEEN_TTL_SECONDS)
                pipe.hincrby(health, "accepted", 1)
                pipe.hset(health, "last", str(now))
                first, *_ = await pipe.execute()
            return Claim(first=bool(first))
        except RedisError as exc:
            log_event("webhook.ledger_fallback", registration_id=registration_id, error=str(exc))
            return await self._claim_in_store(registration_id, delivery_key, now)

    async def release(self, registration_id: str, delivery_key: str) -> None:
        """Forget a claim whose enqueue failed, so the provider's retry is accepted."""
        with suppress(RedisError):
            await self._redis.delete(_seen_key(registration_id, delivery_key))
        with suppress(NotFound):
            await self._store.delete(_SEEN_CONTAINER, _seen_doc_id(delivery_key), registration_id)

    async def count(self, registration_id: str, outcome: str) -> None:
        """Count a rejected or failed delivery (accepted ones are counted by ``claim``)."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(_health_key(registration_id), outcome, 1)
                pipe.hset(_health_key(registration_id), "last", str(self._clock()))
                await pipe.execute()
        except RedisError as exc:
            log_event("webhook.health_unrecorded", registration_id=registration_id, outcome=outcome, error=str(exc))

    async def health(self, registration_id: str) -> WebhookHealth:
        """The registration's counters, last delivery time and status."""
        raw = await self._redis.hgetall(_health_key(registration_id))
        values = {_text(key): _text(value) for key, value in raw.items()}
        counts = {outcome: int(values.get(outcome, 0)) for outcome in _OUTCOMES}
        last = values.get("last")
        return WebhookHealth(
            **counts,
            last_received_at=to_datetime(float(last)) if last else None,
            status=health_status(**counts),
        )

    async def _claim_in_store(self, registration_id: str, delivery_key: str, now: float) -> Claim:
        doc = {
            "id": _seen_doc_id(delivery_key),
            "registrationId": registration_id,
            "outcome": "seen",
            "ttl": SEEN_TTL_SECONDS,
            "seenAt": now,
        }
        try:
            await self._store.create(_SEEN_CONTAINER, doc)
        except AlreadyExists:
            return Claim(first=False)
        return Claim(first=True)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _seen_doc_id(delivery_key: str) -> str:
    return stable_id("seen", delivery_key)
