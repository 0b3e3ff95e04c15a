"""``TracedQueue``: a ``MessageQueue`` whose sends carry the sender's trace context, so the receiver continues it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from castiel.ports import MessageQueue, OutgoingMessage, QueueStats, ReceivedMessage, SubQueue
from castiel.telemetry.spans import TRACEPARENT, current_traceparent


class TracedQueue:
    """Adds the current span's ``traceparent`` to every message sent without one; everything else is ``inner``'s.

    A message that has one keeps it: a retry copy (``castiel/sync/delivery.py``) stays in the trace of the work it
    retries. With no span being recorded (telemetry unconfigured) messages go out unchanged.
    """

    def __init__(self, inner: MessageQueue) -> None:
        self.inner = inner

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """``inner.send`` with the trace context added."""
        traceparent = current_traceparent()
        if traceparent is not None:
            messages = [_with_traceparent(message, traceparent) for message in messages]
        await self.inner.send(queue, messages)

    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        max_wait_seconds: float = 0.0,
        sub_queue: SubQueue | None = None,
    ) -> list[ReceivedMessage]:
        """``inner.receive``."""
        return await self.inner.receive(
            queue, max_messages=max_messages, max_wait_seconds=max_wait_seconds, sub_queue=sub_queue
        )

    async def complete(self, queue: str, message: ReceivedMessage) -> None:
        """``inner.complete``."""
        await self.inner.complete(queue, message)

    async def abandon(self, queue: str, message: ReceivedMessage) -> None:
        """``inner.abandon``."""
        await self.inner.abandon(queue, message)

    async def dead_letter(
        self, queue: str, message: ReceivedMessage, *, reason: str, description: str | None = None
    ) -> None:
        """``inner.dead_letter``."""
        await self.inner.dead_letter(queue, message, reason=reason, description=description)

    async def renew_lock(self, queue: str, message: ReceivedMessage) -> datetime:
        """``inner.renew_lock``."""
        return await self.inner.renew_lock(queue, message)

    async def peek(
        self, queue: str, *, max_messages: int = 10, sub_queue: SubQueue | None = None
    ) -> list[ReceivedMessage]:
        """``inner.peek``."""
        return await self.inner.peek(queue, max_messages=max_messages, sub_queue=sub_queue)

    async def stats(self, queue: str) -> QueueStats:
        """``inner.stats``."""
        return await self.inner.stats(queue)

    async def close(self) -> None:
        """``inner.close``."""
        await self.inner.close()


def _with_traceparent(message: OutgoingMessage, traceparent: str) -> OutgoingMessage:
    if TRACEPARENT in message.application_properties:
        return message
    return replace(message, application_properties={**message.application_properties, TRACEPARENT: traceparent})
