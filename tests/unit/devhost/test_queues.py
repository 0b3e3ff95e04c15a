"""Queue triggers on a real SQLite queue: settlement by outcome, lock renewal, concurrency, draining on stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from azure.functions.servicebus import ServiceBusMessage

from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.devhost.loader import HostedFunction, QueueBinding, caller
from castiel.devhost.queues import QueuePump
from castiel.errors import InvalidMessage, PermanentError
from castiel.ports import OutgoingMessage, QueueStats

QUEUE = "work"
BOUND = 10.0


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SqliteMessageQueue]:
    backend = SqliteMessageQueue(tmp_path / "queue.db", lock_duration_seconds=1.0)
    yield backend
    await backend.close()


async def send(queue: SqliteMessageQueue, *ids: str) -> None:
    await queue.send(QUEUE, [OutgoingMessage(body=b"{}", message_id=i, correlation_id=f"c-{i}") for i in ids])


async def pump_until(
    queue: SqliteMessageQueue,
    handler: Callable[[ServiceBusMessage], Awaitable[None]],
    done: Callable[[QueueStats], bool],
    *,
    max_concurrent_calls: int = 4,
) -> QueueStats:
    """Run a pump over ``QUEUE`` until ``done(stats)``, then stop it and wait for it to drain."""
    function = HostedFunction("handler", QueueBinding(QUEUE), caller(handler, "msg"))
    pump = QueuePump(
        function,
        queue,
        max_concurrent_calls=max_concurrent_calls,
        max_delivery_count=10,
        timeout=BOUND,
        receive_wait_seconds=0.05,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(pump.run(stop))
    async with asyncio.timeout(BOUND):
        while not done(stats := await queue.stats(QUEUE)):  # noqa: ASYNC110 - the queue has no change event
            await asyncio.sleep(0.01)
        stop.set()
        await task
    return stats


def invocation_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("invocation ")]


async def test_return_completes_and_the_function_gets_the_message(
    queue: SqliteMessageQueue, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[ServiceBusMessage] = []

    async def handler(msg: ServiceBusMessage) -> None:
        seen.append(msg)

    await send(queue, "m1")
    with caplog.at_level(logging.INFO):
        stats = await pump_until(queue, handler, lambda s: s.active == 0)
    assert stats == QueueStats(active=0, scheduled=0, dead_lettered=0)
    assert [(m.message_id, m.correlation_id, m.delivery_count) for m in seen] == [("m1", "c-m1", 1)]
    assert len(invocation_lines(caplog)) == 1
    assert "correlation_id=c-m1" in invocation_lines(caplog)[0]
    assert "outcome=succeeded" in invocation_lines(caplog)[0]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (PermanentError("connection c1 is misconfigured"), "PermanentError: connection c1 is misconfigured"),
        (InvalidMessage("undecodable body: Invalid JSON"), "InvalidMessage: undecodable body: Invalid JSON"),
    ],
)
async def test_a_permanent_error_dead_letters_on_the_first_delivery(
    queue: SqliteMessageQueue, error: Exception, reason: str
) -> None:
    async def handler(msg: ServiceBusMessage) -> None:
        raise error

    await send(queue, "p1")
    await pump_until(queue, handler, lambda s: s.dead_lettered == 1)
    [dead] = await queue.peek(QUEUE, sub_queue="dead_letter")
    assert (dead.delivery_count, dead.dead_letter_reason) == (1, reason)
    assert dead.dead_letter_description is not None
    assert "permanent error on delivery 1" in dead.dead_letter_description


async def test_a_bug_is_abandoned_until_the_max_delivery_count_then_dead_lettered_with_its_reason(
    queue: SqliteMessageQueue, caplog: pytest.LogCaptureFixture
) -> None:
    deliveries: list[int] = []

    def handler(msg: ServiceBusMessage) -> None:
        deliveries.append(msg.delivery_count or 0)
        raise RuntimeError("handler always fails")

    await send(queue, "b1")
    with caplog.at_level(logging.INFO):
        await pump_until(queue, handler, lambda s: s.dead_lettered == 1)
    [dead] = await queue.peek(QUEUE, sub_queue="dead_letter")
    assert deliveries == list(range(1, 11))
    assert (dead.delivery_count, dead.dead_letter_reason) == (10, "RuntimeError: handler always fails")
    outcomes = [line.rsplit("outcome=", 1)[1].split()[0] for line in invocation_lines(caplog)]
    assert outcomes == ["abandoned"] * 9 + ["dead_lettered"]


async def test_a_long_reason_is_truncated(queue: SqliteMessageQueue) -> None:
    async def handler(msg: ServiceBusMessage) -> None:
        raise PermanentError("x" * 5000)

    await send(queue, "long")
    await pump_until(queue, handler, lambda s: s.dead_lettered == 1)
    [dead] = await queue.peek(QUEUE, sub_queue="dead_letter")
    assert dead.dead_letter_reason is not None
    assert len(dead.dead_letter_reason) == 500
    assert dead.dead_letter_reason.startswith("PermanentError: xxx")


async def test_the_lock_is_renewed_while_the_function_runs(queue: SqliteMessageQueue) -> None:
    # The lock lasts 1 s; the function takes 1.3 s: completing works only because the lock was renewed,
    # and without renewal a second receive would take the message while the first call still runs.
    deliveries: list[int] = []

    async def slow(msg: ServiceBusMessage) -> None:
        deliveries.append(msg.delivery_count or 0)
        await asyncio.sleep(1.3)

    await send(queue, "slow")
    await pump_until(queue, slow, lambda s: s.active == 0 or len(deliveries) > 1)
    assert deliveries == [1]
    assert await queue.stats(QUEUE) == QueueStats(active=0, scheduled=0, dead_lettered=0)


async def test_at_most_max_concurrent_calls_run_at_once(queue: SqliteMessageQueue) -> None:
    running = 0
    peak = 0

    async def handler(msg: ServiceBusMessage) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    await send(queue, *(f"c{i}" for i in range(9)))
    await pump_until(queue, handler, lambda s: s.active == 0, max_concurrent_calls=3)
    assert peak == 3


async def test_stop_lets_in_flight_calls_finish_and_leaves_the_rest_untouched(queue: SqliteMessageQueue) -> None:
    started: list[str] = []
    finished: list[str] = []

    async def handler(msg: ServiceBusMessage) -> None:
        started.append(msg.message_id)
        await asyncio.sleep(0.3)
        finished.append(msg.message_id)

    ids = [f"s{i}" for i in range(6)]
    await send(queue, *ids)
    # Stop as soon as the first two are in flight.
    await pump_until(queue, handler, lambda s: len(started) >= 2, max_concurrent_calls=2)
    assert sorted(finished) == sorted(started)
    assert len(started) == 2
    remaining = await queue.peek(QUEUE)
    assert sorted(m.message_id for m in remaining) == sorted(set(ids) - set(started))
    assert all(m.delivery_count == 0 for m in remaining)


async def test_cancelling_the_pump_cuts_its_invocations_and_leaves_their_messages_unsettled(
    queue: SqliteMessageQueue, caplog: pytest.LogCaptureFixture
) -> None:
    started = asyncio.Event()
    cut: list[str] = []

    async def handler(msg: ServiceBusMessage) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cut.append(msg.message_id)
            raise

    await send(queue, "long-1")
    function = HostedFunction("handler", QueueBinding(QUEUE), caller(handler, "msg"))
    pump = QueuePump(function, queue, max_concurrent_calls=4, max_delivery_count=10, timeout=None)
    task = asyncio.create_task(pump.run(asyncio.Event()))
    with caplog.at_level(logging.INFO, logger="castiel"):
        await asyncio.wait_for(started.wait(), BOUND)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, BOUND)

    assert cut == ["long-1"]
    assert "invocation function=handler" in caplog.text
    assert "outcome=cancelled" in caplog.text
    [unsettled] = await queue.peek(QUEUE)
    assert (unsettled.message_id, unsettled.delivery_count) == ("long-1", 1)
    assert (await queue.stats(QUEUE)).dead_lettered == 0
