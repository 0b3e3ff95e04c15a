"""Queue-not-drop, end to end: the limiter's decisions through the worker's delivery policy (DESIGN §7) on the real
SQLite queue and the real Redis server. A throttled create is re-sent scheduled at its retry-after; a throttled
delete is re-sent at its retry-after up to SYNC_MAX_RETRIES times, then dead-lettered with its reason. At every
step the message exists exactly once: active, scheduled or dead-lettered, never lost."""

from __future__ import annotations

from datetime import timedelta

import orjson

from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.clock import ManualClock, now_utc
from castiel.errors import PermanentError
from castiel.ports import OutgoingMessage
from castiel.ratelimit.limiter import RateLimiter, raise_for_check
from castiel.settings import Settings
from castiel.sync.delivery import RETRY_COUNT, Delivery, DeliveryPolicy

from .conftest import MakeLimiter

QUEUE = "sync-outbound"
LIMITS = {"connections": {"c1": {"operations": {"create": 1, "delete": 1}}}}


class Worker:
    """A queue worker whose handler pushes one change per message, after the rate check."""

    def __init__(self, queue: SqliteMessageQueue, limiter: RateLimiter, clock: ManualClock) -> None:
        self.queue, self.limiter = queue, limiter
        self.policy = DeliveryPolicy(queue, max_retries=Settings().sync_max_retries, clock=clock)
        self.pushed: list[str] = []

    async def handle(self, delivery: Delivery) -> None:
        operation = orjson.loads(delivery.body)["operation"]
        check = await self.limiter.check(tenant_id="t1", connection_id="c1", provider="github", operation=operation)
        raise_for_check(check)
        self.pushed.append(operation)

    async def work_once(self) -> None:
        """Receive one message and settle it as the Functions host would."""
        (message,) = await self.queue.receive(QUEUE, max_messages=1)
        delivery = Delivery(
            queue=QUEUE,
            body=message.body,
            message_id=message.message_id,
            application_properties=message.application_properties,
            delivery_count=message.delivery_count,
        )
        try:
            await self.policy.run(delivery, self.handle)
        except PermanentError as exc:
            await self.queue.dead_letter(QUEUE, message, reason=str(exc))
        else:
            await self.queue.complete(QUEUE, message)


async def send(queue: SqliteMessageQueue, operation: str) -> None:
    body = orjson.dumps({"operation": operation})
    await queue.send(QUEUE, [OutgoingMessage(body=body, message_id=f"change-{operation}")])


async def exists_once(queue: SqliteMessageQueue) -> bool:
    stats = await queue.stats(QUEUE)
    return stats.active + stats.scheduled + stats.dead_lettered == 1


async def test_a_throttled_create_is_resent_scheduled_at_its_retry_after(
    queue: SqliteMessageQueue, make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(LIMITS)
    worker = Worker(queue, limiter, clock)
    assert (await limiter.check(tenant_id="t1", connection_id="c1", provider="github", operation="create")).allowed
    clock.advance(20)

    await send(queue, "create")
    await worker.work_once()
    (copy,) = await queue.peek(QUEUE)
    assert copy.scheduled_enqueue_time == now_utc(clock) + timedelta(seconds=40)
    assert copy.application_properties.get(RETRY_COUNT, 0) == 0  # queued, not failed: no retry counted
    assert await exists_once(queue)
    assert await queue.receive(QUEUE) == []  # not before its time

    clock.advance(40)
    await worker.work_once()
    assert worker.pushed == ["create"]
    stats = await queue.stats(QUEUE)
    assert (stats.active, stats.scheduled, stats.dead_lettered) == (0, 0, 0)


async def test_a_throttled_delete_is_retried_at_its_retry_after_then_dead_lettered_with_the_reason(
    queue: SqliteMessageQueue, make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(LIMITS)
    worker = Worker(queue, limiter, clock)
    max_retries = Settings().sync_max_retries
    await send(queue, "delete")

    for attempt in range(1, max_retries + 2):
        # Another caller takes the one delete slot each time it frees, so every attempt is refused.
        assert (await limiter.check(tenant_id="t1", connection_id="c1", provider="github", operation="delete")).allowed
        clock.advance(15)
        await worker.work_once()
        assert await exists_once(queue)
        if attempt <= max_retries:
            (copy,) = await queue.peek(QUEUE)
            assert copy.application_properties[RETRY_COUNT] == attempt
            assert copy.scheduled_enqueue_time == now_utc(clock) + timedelta(seconds=45)
            clock.advance(45)

    assert worker.pushed == []
    (dead,) = await queue.peek(QUEUE, sub_queue="dead_letter")
    assert dead.dead_letter_reason is not None
    assert f"gave up after {max_retries} retries" in dead.dead_letter_reason
    assert "rate limit (operation)" in dead.dead_letter_reason
