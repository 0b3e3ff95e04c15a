"""Which deliveries the receiver already accepted in the last 24 hours (DESIGN §6 step 5).

A delivery is *claimed* before it is enqueued (``SET NX`` with a short TTL) and *confirmed* once its changes are
durably queued (the key's TTL raised to 24 h). A receiver that dies between the two leaves only a pending claim,
which lapses within ``PENDING_TTL_SECONDS``: the provider's retry is then accepted rather than taken for a
duplicate, so a verified event is never lost (at worst queued twice, which the queue's duplicate detection on
deterministic message ids absorbs within its window).

The claims of concurrent requests, and the confirmations of the requests answered just before, go to Redis together
as one ``EVALSHA`` of ``ledger.lua`` per registration and event-loop turn (``castiel.coalesce``; a script's keys
share one cluster slot): the only network round trip on the hot path, and one command to encode instead of one per
key. Confirmations are not waited for. When Redis is
unreachable, claims fall back to the document store (a document per delivery, with the same TTLs), so a verified
event is still accepted, never refused.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial

import redis.asyncio as aioredis

from castiel.clock import Clock, system_clock
from castiel.coalesce import Coalescer
from castiel.errors import AlreadyExists, CastielError, NotFound, RetryableError
from castiel.models import stable_id
from castiel.ports import DocumentStore
from castiel.redis_script import RedisScript, hash_tag, redis_errors
from castiel.telemetry import log_event

SEEN_TTL_SECONDS = 24 * 3600
PENDING_TTL_SECONDS = 120
REDIS_TIMEOUT_SECONDS = 1.0
"""How long a claim waits for Redis before the store stands in (Slack, the least patient sender, waits 3 s)."""
_SEEN_CONTAINER = "webhook-audit"


def _seen_key(registration_id: str, delivery_key: str) -> str:
    return f"castiel:webhook:seen:{{{registration_id}}}:{delivery_key}"


def _seen_doc_id(delivery_key: str) -> str:
    return stable_id("seen", delivery_key)


@dataclass(frozen=True, slots=True)
class _Command:
    key: str
    confirm: bool


class DeliveryLedger:
    """Idempotency keys per registration."""

    def __init__(self, redis: aioredis.Redis, store: DocumentStore, *, clock: Clock = system_clock) -> None:
        self._redis = redis
        self._store = store
        self._clock = clock
        self._script = RedisScript(
            redis, "castiel.webhooks", "ledger.lua", purpose="the webhook ledger", timeout_seconds=REDIS_TIMEOUT_SECONDS
        )
        # One script call per registration's hash tag: a call may only touch keys of one cluster slot.
        self._commands: Coalescer[_Command, bool] = Coalescer(self._run, group=lambda command: hash_tag(command.key))
        self._background: set[asyncio.Future[bool] | asyncio.Task[None]] = set()

    async def claim(self, registration_id: str, delivery_key: str) -> bool:
        """Claim a verified delivery, pending its enqueue; False when it is already claimed or accepted."""
        try:
            return await self._commands.submit(_Command(_seen_key(registration_id, delivery_key), confirm=False))
        except RetryableError as exc:
            log_event("webhook.ledger_fallback", registration_id=registration_id, error=str(exc))
            return await self._claim_in_store(registration_id, delivery_key)

    def confirm(self, registration_id: str, delivery_key: str) -> None:
        """Remember an enqueued delivery for 24 h; runs in the background, after the answer (see ``drain``)."""
        confirmed = self._commands.post(_Command(_seen_key(registration_id, delivery_key), confirm=True))
        self._background.add(confirmed)
        confirmed.add_done_callback(partial(self._after_confirm, registration_id, delivery_key))

    async def drain(self) -> None:
        """Wait for confirmations still in flight."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _run(self, commands: list[_Command]) -> list[bool]:
        keys = [command.key for command in commands]
        operations = ["confirm" if command.confirm else "claim" for command in commands]
        replies = await self._script.run(keys, (PENDING_TTL_SECONDS, SEEN_TTL_SECONDS, *operations))
        return [bool(reply) for reply in replies]

    def _after_confirm(self, registration_id: str, delivery_key: str, confirmed: asyncio.Future[bool]) -> None:
        self._background.discard(confirmed)
        if confirmed.cancelled():
            return
        error = confirmed.exception()
        if error is None and confirmed.result():
            return
        if error is not None:
            log_event("webhook.ledger_fallback", registration_id=registration_id, error=str(error))
        # Not in Redis: the claim was made in the store while Redis was down (or Redis is down now).
        task = asyncio.get_running_loop().create_task(self._confirm_in_store(registration_id, delivery_key))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _confirm_in_store(self, registration_id: str, delivery_key: str) -> None:
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
            with redis_errors("the webhook ledger"):
                await self._redis.delete(_seen_key(registration_id, delivery_key))
        except RetryableError as exc:
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
