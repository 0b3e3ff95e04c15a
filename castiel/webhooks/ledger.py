"""Which deliveries the receiver already accepted in the last 24 hours (DESIGN §6 step 5).

One ``SET NX EX`` per delivery in Redis, and the claims of concurrent requests share one pipelined round trip
(``castiel.coalesce``): the only network round trip on the hot path. When Redis is unreachable the claim
falls back to the document store (a document per delivery with a 24 h TTL), so a verified event is still accepted,
never refused; a delivery first seen while Redis was down and repeated after it is back is caught by the queue's
duplicate detection (deterministic message ids) instead.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from castiel.clock import Clock, system_clock
from castiel.coalesce import Coalescer
from castiel.errors import AlreadyExists, CastielError, NotFound
from castiel.models import stable_id
from castiel.ports import DocumentStore
from castiel.telemetry import log_event

SEEN_TTL_SECONDS = 24 * 3600
_SEEN_CONTAINER = "webhook-audit"


def _seen_key(registration_id: str, delivery_key: str) -> str:
    return f"castiel:webhook:seen:{{{registration_id}}}:{delivery_key}"


def _seen_doc_id(delivery_key: str) -> str:
    return stable_id("seen", delivery_key)


class DeliveryLedger:
    """Idempotency keys per registration."""

    def __init__(self, redis: aioredis.Redis, store: DocumentStore, *, clock: Clock = system_clock) -> None:
        self._redis = redis
        self._store = store
        self._clock = clock
        self._claims: Coalescer[str, bool] = Coalescer(self._set_many)

    async def claim(self, registration_id: str, delivery_key: str) -> bool:
        """Mark a verified delivery seen; False when it was already accepted in the last 24 h."""
        try:
            return await self._claims.submit(_seen_key(registration_id, delivery_key))
        except RedisError as exc:
            log_event("webhook.ledger_fallback", registration_id=registration_id, error=str(exc))
            return await self._claim_in_store(registration_id, delivery_key)

    async def _set_many(self, keys: list[str]) -> list[bool]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, b"1", nx=True, ex=SEEN_TTL_SECONDS)
            return [bool(first) for first in await pipe.execute()]

    async def release(self, registration_id: str, delivery_key: str) -> None:
        """Forget a claim whose enqueue failed, so the provider's retry is accepted."""
        # The claim is in Redis or, if Redis was down, in the store: undo both. A failed undo makes the provider's
        # retry look like a duplicate, so it is logged; the answer (503) stands either way.
        try:
            await self._redis.delete(_seen_key(registration_id, delivery_key))
        except RedisError as exc:
            log_event("webhook.release_failed", registration_id=registration_id, error=str(exc))
        try:
            await self._store.delete(_SEEN_CONTAINER, _seen_doc_id(delivery_key), registration_id)
        except NotFound:
            pass
        except CastielError as exc:
            log_event("webhook.release_failed", registration_id=registration_id, error=str(exc))

    async def _claim_in_store(self, registration_id: str, delivery_key: str) -> bool:
        doc = {
            "id": _seen_doc_id(delivery_key),
            "registrationId": registration_id,
            "outcome": "seen",
            "ttl": SEEN_TTL_SECONDS,
            "seenAt": self._clock(),
        }
        try:
            await self._store.create(_SEEN_CONTAINER, doc)
        except AlreadyExists:
            return False
        return True
