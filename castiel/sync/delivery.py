"""How a queue worker settles one delivery, decided from the error type alone (DESIGN §7).

The Azure-samples pattern rather than Service Bus's immediate redelivery:

- success → return (the host completes the message);
- ``Deferred`` (a queued rate-limit decision) → a copy is sent scheduled at ``retry_after``, the original completes;
  no retry is counted, because nothing failed;
- ``RetryableError`` → a copy is sent scheduled at now + backoff (``RateLimited`` uses its own retry-after) with the
  retry count raised in its application properties, and the original completes; past ``max_retries`` the delivery is
  given up as a ``PermanentError`` naming the last error;
- ``PermanentError`` → raised: the host dead-letters at once with the message as the reason;
- anything else is a bug → raised, and left to the queue's max delivery count.

Copies get deterministic message ids (``<original>:r<n>`` / ``:d<n>``), so if the original is redelivered after its
copy was sent, duplicate detection drops the second copy.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from pydantic import ValidationError

from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import Deferred, InvalidMessage, PermanentError, RateLimited, RetryableError
from castiel.models import WireModel
from castiel.ports import MessageQueue, OutgoingMessage, PropertyValue
from castiel.telemetry import log_event
from castiel.telemetry.outcomes import dead_lettered

RETRY_COUNT = "castiel-retry-count"
DEFERRAL_COUNT = "castiel-deferral-count"
ORIGINAL_MESSAGE_ID = "castiel-original-message-id"
LAST_ERROR = "castiel-last-error"
RESUBMITTED_REASON = "castiel-resubmitted-reason"
"""Set by ``castiel queue resubmit`` on a dead letter it re-sends: the reason it had been dead-lettered."""

_BACKOFF_BASE_SECONDS = 4.0
_BACKOFF_CAP_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One received queue message, independent of the trigger that brought it."""

    queue: str
    body: bytes
    message_id: str
    correlation_id: str | None = None
    application_properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    delivery_count: int = 1

    def _count(self, name: str) -> int:
        value = self.application_properties.get(name, 0)
        return int(value) if isinstance(value, int | float | str) and str(value).isdigit() else 0

    @property
    def retry_count(self) -> int:
        """How many retries of this work came before this delivery."""
        return self._count(RETRY_COUNT)

    @property
    def deferral_count(self) -> int:
        """How many times this work was postponed by a rate limit."""
        return self._count(DEFERRAL_COUNT)

    @property
    def resubmitted(self) -> bool:
        """The first delivery of a message an operator re-sent from the dead letters; the retry and deferral
        copies made of it later are not, so an old chain of copies never overrides a newer outcome."""
        return RESUBMITTED_REASON in self.application_properties and not (self.retry_count or self.deferral_count)

    @property
    def original_message_id(self) -> str:
        """The id of the first message of this work."""
        return str(self.application_properties.get(ORIGINAL_MESSAGE_ID, self.message_id))


def backoff_seconds(retry: int, *, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff from a few seconds, equal jitter: in ``[d/2, d)`` for ``d = 4 * 2**(retry-1)``, capped."""
    ceiling = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2.0 ** max(0, retry - 1))
    return ceiling / 2 + rng() * ceiling / 2


M = TypeVar("M", bound=WireModel)


def decode_body(model: type[M], delivery: Delivery) -> M:
    """The message body as ``model``; an ``InvalidMessage`` naming the first problem when it is not one."""
    try:
        return model.from_json_bytes(delivery.body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidMessage(
            f"undecodable {model.__name__} in message {delivery.message_id}: {where}: {first['msg']}"
        ) from None


Handler = Callable[[Delivery], Awaitable[None]]
GiveUpHook = Callable[[Delivery, str], Awaitable[None]]


class DeliveryPolicy:
    """Runs a handler for one delivery and settles it per DESIGN §7."""

    def __init__(
        self,
        queue: MessageQueue,
        *,
        max_retries: int,
        clock: Clock = system_clock,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._queue = queue
        self._max_retries = max_retries
        self._clock = clock
        self._rng = rng

    async def run(self, delivery: Delivery, handler: Handler, on_give_up: GiveUpHook | None = None) -> None:
        """Run ``handler``; return when the original may be completed, raise when the host must not complete it.

        ``on_give_up`` runs before retries-exhausted is raised, so the caller can record the final failure.
        """
        try:
            await handler(delivery)
        except Deferred as exc:
            count = delivery.deferral_count + 1
            await self._resend(delivery, f"d{count}", exc.retry_after, {DEFERRAL_COUNT: count}, exc)
        except RetryableError as exc:
            attempt = delivery.retry_count + 1
            if attempt > self._max_retries:
                dead_lettered(queue=delivery.queue, reason="retries_exhausted")
                reason = f"gave up after {self._max_retries} retries; last error: {exc}"
                if on_give_up is not None:
                    await on_give_up(delivery, reason)
                raise PermanentError(reason) from exc
            delay = exc.retry_after if isinstance(exc, RateLimited) else backoff_seconds(attempt, rng=self._rng)
            await self._resend(delivery, f"r{attempt}", delay, {RETRY_COUNT: attempt}, exc)
        except PermanentError:
            dead_lettered(queue=delivery.queue, reason="permanent")
            raise

    async def _resend(
        self,
        delivery: Delivery,
        suffix: str,
        delay_seconds: float,
        counters: Mapping[str, PropertyValue],
        cause: Exception,
    ) -> None:
        original = delivery.original_message_id
        properties: dict[str, PropertyValue] = {
            **delivery.application_properties,
            **counters,
            ORIGINAL_MESSAGE_ID: original,
            LAST_ERROR: str(cause)[:500],
        }
        when = now_utc(self._clock) + timedelta(seconds=delay_seconds)
        copy = OutgoingMessage(
            body=delivery.body,
            message_id=f"{original}:{suffix}",
            correlation_id=delivery.correlation_id,
            application_properties=properties,
            scheduled_enqueue_time=when,
        )
        await self._queue.send(delivery.queue, [copy])
        log_event(
            "delivery.rescheduled",
            queue=delivery.queue,
            message_id=original,
            copy=suffix,
            delay_s=round(delay_seconds, 3),
            error=str(cause)[:200],
        )
