"""Which deliveries the receiver already accepted in the last 24 hours (DESIGN §6 step 5).

A delivery is *claimed* before it is enqueued (``SET NX`` with a short TTL) and *confirmed* once its changes are
durably queued (the key's TTL raised to 24 h). A receiver that dies between the two leaves only a pending claim,
which lapses within ``PENDING_TTL_SECONDS``: the provider's retry is then accepted rather than taken for a
duplicate, so a verified event is never lost (at worst queued twice, which the queue's duplicate detection on
deterministic message ids absorbs within its window).

The claims of concurrent requests share one pipelined round trip (``castiel.coalesce``), the only network round
trip on the hot path; confirmations are coalesced too and run after the answer. When Redis is unreachable, claims
fall back to the document store (a document per delivery, with the same TTLs), so a verified event is still
accepted, never refused.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from castiel.clock import Clock, system_clock
from castiel.coalesce import Coalescer
from castiel.errors import AlreadyExists, CastielError, NotFound
from castiel.models import stable_id
from castiel.ports import DocumentStore
from castiel.telemetry import log_event

SEEN_TTL_SECONDS = 24 * 3600
PENDING_TTL_SECONDS = 120
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
        self._claims: Coalescer[str, bool] = Coalescer(self._claim_many)
        self._confirms: Coalescer[str, bool] = Coalescer(self._confirm_many)
        self._background: set[asyncio.Task[None]] = set()

    async def claim(self, registration_id: str, delivery_key: str) -> bool:
        """Claim a verified delivery, pending its enqueue; False when it is already claimed or accepted."""
        try:
            return await self._claims.submit(_seen_key(registration_id, delivery_key))
        except RedisError as exc:
            log_event("webhook.ledger_fallback", registration_id=registration_id, error=str(exc))
            return await self._claim_in_store(registration_id, delivery_key)

    def confirm(self, registration_id: str, delivery_key: str) -> None:
        """Remember an enqueued delivery for 24 h; runs in the background, after the answer (see ``drain``)."""
        task = asyncio.get_running_loop().create_task(self._confirm(registration_id, delivery_key))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for confirmations still in flight."""
        while self._background:
            await asyncio.gather(*list(self._background))

    async def _claim_many(self, keys: list[str]) -> list[bool]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, b"pending", nx=True, ex=PENDING_TTL_SECONDS)
            return [bool(first) for first in await pipe.execute()]

    async def _confirm_many(self, keys: list[str]) -> list[bool]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, b"accepted", xx=True, ex=SEEN_TTL_SECONDS)
            return [bool(present) for present in await pipe.execute()]

    async def _confirm(self, registration_id: str, delivery_key: str) -> None:
        try:
            if await self._confirms.submit(_seen_key(registration_id, delivery_key)):
                return
        except RedisError as exc:
            log_event("webhook.ledger_fallback", registration_id=registration_id, error=str(exc))
        # Not in Redis: the claim was made in the store while Redis was down.
        try:
            await self._store.upsert(_SEEN_CONTAINER, self._seen_doc(registration_id, delivery_key, SEEN_TTL_SECONDS))
        except CastielError as exc:
            # The pending claim lapses instead: a redelivery after that is accepted again (never lost).
            log_event("webhook.confirm_failed", registration_id=registration_id, error=str(exc))

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

    def _seen_doc(self, registration_id: str, delivery_key: str, ttl: int) -> dict[str, object]:
        return {
            "id": _seen_doc_id(delivery_key),
            "registrationId": registration_id,
            "outcome": "seen",
            "ttl": ttl,
            "seenAt": self._clock(),
        }

    async def _claim_in_store(self, registration_id: str, delivery_key: str) -> bool:
        try:
            await self._store.create(
                _SEEN_CONTAINER, self._seen_doc(registration_id, delivery_key, PENDING_TTL_SECONDS)
            )
        except AlreadyExists:
            return False
        return True
