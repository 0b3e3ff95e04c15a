"""The ``MessageQueue`` contract, one suite for every backend.

``sqlite`` always runs; ``servicebus`` runs against a throw-away queue when ``ServiceBusConnection`` (or
``SERVICE_BUS_CONNECTION_STRING``) is set. Cases that move time need a ``ManualClock`` and run on SQLite only;
cases about the embedded file itself (reopen, two processes, purge) use the ``sqlite_queue`` fixture.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.servicebus.aio.management import ServiceBusAdministrationClient
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    ServiceBusConnectionError,
    ServiceBusServerBusyError,
    SessionLockLostError,
)

from castiel.backends.servicebus import ERRORS, ServiceBusMessageQueue
from castiel.backends.sqlite_queue import MAX_DELIVERY_COUNT_EXCEEDED, SqliteMessageQueue
from castiel.clock import ManualClock, to_datetime
from castiel.errors import CastielError, ConfigError, InvalidMessage, LockLost, RetryableError
from castiel.ports import MessageQueue, OutgoingMessage, QueueStats, ReceivedMessage
from castiel.settings import load_settings

LOCK_SECONDS = 30.0
MAX_DELIVERIES = 3
WINDOW_SECONDS = 600.0
WORKER = Path(__file__).with_name("queue_worker_proc.py")


@dataclass
class Backend:
    """A queue under test, the queue name to use on it, and its clock when tests may move it."""

    queue: MessageQueue
    name: str
    clock: ManualClock | None
    wait: float
    """How long a receive that expects messages may wait: a broker needs a moment, SQLite none."""

    def now(self) -> datetime:
        return to_datetime(self.clock()) if self.clock is not None else datetime.now(UTC)

    def manual_clock(self) -> ManualClock:
        if self.clock is None:
            pytest.skip("moves the clock: sqlite backend only")
        return self.clock

    async def receive(self, **options: Any) -> list[ReceivedMessage]:
        return await self.queue.receive(self.name, max_wait_seconds=self.wait, **options)

    async def receive_one(self, **options: Any) -> ReceivedMessage:
        (message,) = await self.receive(**options)
        return message


def new_sqlite_queue(path: Path, clock: ManualClock) -> SqliteMessageQueue:
    return SqliteMessageQueue(
        path,
        clock=clock,
        lock_duration_seconds=LOCK_SECONDS,
        max_delivery_count=MAX_DELIVERIES,
        duplicate_window_seconds=WINDOW_SECONDS,
    )


@asynccontextmanager
async def service_bus_backend(connection_string: str) -> AsyncIterator[Backend]:
    """A fresh queue with the contract's settings, deleted afterwards."""
    name = f"contract-{uuid.uuid4().hex[:12]}"
    async with ServiceBusAdministrationClient.from_connection_string(connection_string) as admin:
        await admin.create_queue(
            name,
            requires_duplicate_detection=True,
            duplicate_detection_history_time_window=timedelta(seconds=WINDOW_SECONDS),
            max_delivery_count=MAX_DELIVERIES,
            lock_duration=timedelta(seconds=LOCK_SECONDS),
        )
        queue = ServiceBusMessageQueue.from_connection_string(connection_string)
        try:
            yield Backend(queue, name, clock=None, wait=5.0)
        finally:
            await queue.close()
            await admin.delete_queue(name)


@pytest.fixture(params=["sqlite", "servicebus"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        clock = ManualClock()
        queue = new_sqlite_queue(tmp_path / "queue.db", clock)
        yield Backend(queue, "contract", clock=clock, wait=0.0)
        await queue.close()
        return
    connection_string = load_settings().service_bus_connection
    if connection_string is None:
        pytest.skip("ServiceBusConnection not set: Service Bus contract skipped")
    async with service_bus_backend(connection_string) as live:
        yield live


@pytest.fixture
async def sqlite_queue(tmp_path: Path) -> AsyncIterator[tuple[SqliteMessageQueue, ManualClock]]:
    clock = ManualClock()
    queue = new_sqlite_queue(tmp_path / "queue.db", clock)
    yield queue, clock
    await queue.close()


def outgoing(key: str, **fields: Any) -> OutgoingMessage:
    return OutgoingMessage(body=json.dumps({"key": key}).encode(), message_id=f"msg-{key}", **fields)


# ---------------------------------------------------------------- send, receive, complete


async def test_send_receive_complete_in_sequence_order(backend: Backend) -> None:
    await backend.queue.send(backend.name, [outgoing("a"), outgoing("b"), outgoing("c")])

    received = await backend.receive(max_messages=10)

    assert [m.message_id for m in received] == ["msg-a", "msg-b", "msg-c"]
    assert [m.body for m in received] == [b'{"key": "a"}', b'{"key": "b"}', b'{"key": "c"}']
    assert [m.delivery_count for m in received] == [1, 1, 1]
    sequence = [m.sequence_number for m in received]
    assert sequence == sorted(sequence)
    assert len(set(sequence)) == 3
    tokens = {m.lock_token for m in received}
    assert len(tokens) == 3
    assert None not in tokens
    assert all(m.locked_until is not None and m.locked_until > m.enqueued_time for m in received)
    for message in received:
        await backend.queue.complete(backend.name, message)
    assert await backend.queue.receive(backend.name) == []
    assert await backend.queue.peek(backend.name) == []


async def test_max_messages_bounds_one_receive(backend: Backend) -> None:
    await backend.queue.send(backend.name, [outgoing(str(n)) for n in range(5)])

    first = await backend.receive(max_messages=2)
    rest = await backend.receive(max_messages=10)

    assert [m.message_id for m in first] == ["msg-0", "msg-1"]
    assert [m.message_id for m in rest] == ["msg-2", "msg-3", "msg-4"]


async def test_sequence_numbers_are_per_queue_and_only_grow(
    sqlite_queue: tuple[SqliteMessageQueue, ManualClock],
) -> None:
    queue, _ = sqlite_queue
    await queue.send("left", [outgoing("a"), outgoing("b")])
    await queue.send("right", [outgoing("c")])
    await queue.send("left", [outgoing("d")])

    left = await queue.receive("left", max_messages=10)
    right = await queue.receive("right", max_messages=10)

    assert [(m.message_id, m.sequence_number) for m in left] == [("msg-a", 1), ("msg-b", 2), ("msg-d", 3)]
    assert [(m.message_id, m.sequence_number) for m in right] == [("msg-c", 1)]


@pytest.mark.parametrize(
    ("properties", "correlation_id", "content_type"),
    [
        ({}, None, "application/json"),
        ({"retryCount": 2, "tenantId": "t-1"}, "corr-1", "application/json"),
        ({"ratio": 0.25, "urgent": True, "quiet": False, "zero": 0}, "corr-2", "text/plain"),
    ],
)
async def test_ids_and_properties_round_trip(
    backend: Backend, properties: dict[str, Any], correlation_id: str | None, content_type: str
) -> None:
    sent = outgoing("p", correlation_id=correlation_id, application_properties=properties, content_type=content_type)
    await backend.queue.send(backend.name, [sent])

    (peeked,) = await backend.queue.peek(backend.name)
    received = await backend.receive_one()

    for message in (peeked, received):
        assert (message.message_id, message.correlation_id, message.content_type) == (
            "msg-p",
            correlation_id,
            content_type,
        )
        assert dict(message.application_properties) == properties
        assert [type(v) for v in message.application_properties.values()] == [type(v) for v in properties.values()]
    assert peeked.lock_token is None
    assert received.lock_token is not None


# ---------------------------------------------------------------- duplicate detection


async def test_duplicate_inside_the_window_is_dropped(backend: Backend) -> None:
    await backend.queue.send(backend.name, [outgoing("a"), outgoing("a")])
    await backend.queue.send(backend.name, [outgoing("a", application_properties={"second": True})])

    received = await backend.receive(max_messages=10)

    assert [(m.message_id, dict(m.application_properties)) for m in received] == [("msg-a", {})]


async def test_a_large_send_keeps_every_message_in_order_and_drops_its_own_duplicates(backend: Backend) -> None:
    # More messages than the embedded queue writes in one statement, with repeats far apart in the batch.
    ids = [str(n) for n in range(250)]
    await backend.queue.send(backend.name, [outgoing(i) for i in [*ids, "3", "249", "120"]])

    peeked = await backend.queue.peek(backend.name, max_messages=300)

    assert [m.message_id for m in peeked] == [f"msg-{i}" for i in ids]
    sequence_numbers = [m.sequence_number for m in peeked]
    assert sequence_numbers == sorted(set(sequence_numbers))


@pytest.mark.parametrize(("elapsed", "accepted"), [(1.0, 1), (WINDOW_SECONDS - 1, 1), (WINDOW_SECONDS + 1, 2)])
async def test_duplicate_detection_window(backend: Backend, elapsed: float, accepted: int) -> None:
    clock = backend.manual_clock()
    await backend.queue.send(backend.name, [outgoing("a")])
    clock.advance(elapsed)
    await backend.queue.send(backend.name, [outgoing("a")])

    assert len(await backend.queue.peek(backend.name)) == accepted


async def test_a_dropped_duplicate_does_not_extend_the_window(backend: Backend) -> None:
    clock = backend.manual_clock()
    await backend.queue.send(backend.name, [outgoing("a")])
    clock.advance(WINDOW_SECONDS - 10)
    await backend.queue.send(backend.name, [outgoing("a")])
    clock.advance(20)
    await backend.queue.send(backend.name, [outgoing("a")])

    assert len(await backend.queue.peek(backend.name)) == 2


async def test_expired_duplicate_entries_are_purged(
    sqlite_queue: tuple[SqliteMessageQueue, ManualClock], tmp_path: Path
) -> None:
    queue, clock = sqlite_queue
    await queue.send("contract", [outgoing(str(n)) for n in range(3)])
    clock.advance(WINDOW_SECONDS + 1)
    await queue.send("contract", [outgoing("late")])

    with sqlite3.connect(tmp_path / "queue.db") as conn:
        remembered = [row[0] for row in conn.execute("SELECT message_id FROM queue_duplicates")]
    assert remembered == ["msg-late"]


# ---------------------------------------------------------------- scheduled messages


async def test_scheduled_message_is_invisible_then_delivered(backend: Backend) -> None:
    clock = backend.manual_clock()
    due = backend.now() + timedelta(minutes=2)
    await backend.queue.send(backend.name, [outgoing("later", scheduled_enqueue_time=due)])

    assert await backend.queue.receive(backend.name) == []
    assert await backend.queue.stats(backend.name) == QueueStats(active=0, scheduled=1, dead_lettered=0)
    (peeked,) = await backend.queue.peek(backend.name)
    assert peeked.scheduled_enqueue_time == due

    clock.advance(121)
    message = await backend.receive_one()

    assert (message.message_id, message.scheduled_enqueue_time, message.enqueued_time) == ("msg-later", due, due)
    assert await backend.queue.stats(backend.name) == QueueStats(active=1, scheduled=0, dead_lettered=0)


async def test_scheduled_in_the_past_is_active_at_once(backend: Backend) -> None:
    past = backend.now() - timedelta(minutes=5)
    await backend.queue.send(backend.name, [outgoing("now", scheduled_enqueue_time=past)])

    assert (await backend.receive_one()).message_id == "msg-now"


async def test_scheduled_messages_wait_behind_their_time_not_their_sequence(backend: Backend) -> None:
    clock = backend.manual_clock()
    await backend.queue.send(
        backend.name,
        [outgoing("late", scheduled_enqueue_time=backend.now() + timedelta(seconds=60)), outgoing("ready")],
    )

    (ready,) = await backend.receive(max_messages=10)
    assert ready.message_id == "msg-ready"
    await backend.queue.complete(backend.name, ready)
    clock.advance(61)
    assert [m.message_id for m in await backend.receive(max_messages=10)] == ["msg-late"]


# ---------------------------------------------------------------- locks


async def test_expired_lock_redelivers_with_a_higher_count(backend: Backend) -> None:
    clock = backend.manual_clock()
    await backend.queue.send(backend.name, [outgoing("a")])
    first = await backend.receive_one()
    assert await backend.queue.receive(backend.name) == []  # still locked

    clock.advance(LOCK_SECONDS + 1)
    again = await backend.receive_one()

    assert (again.message_id, again.sequence_number, again.delivery_count) == ("msg-a", first.sequence_number, 2)
    assert again.lock_token != first.lock_token
    with pytest.raises(LockLost):
        await backend.queue.complete(backend.name, first)
    await backend.queue.complete(backend.name, again)
    assert await backend.queue.peek(backend.name) == []


async def test_renew_lock_extends_it(backend: Backend) -> None:
    await backend.queue.send(backend.name, [outgoing("a")])
    message = await backend.receive_one()
    assert message.locked_until is not None

    renewed = await backend.queue.renew_lock(backend.name, message)

    assert renewed >= message.locked_until
    await backend.queue.complete(backend.name, message)


async def test_a_renewed_lock_outlives_the_original(backend: Backend) -> None:
    clock = backend.manual_clock()
    await backend.queue.send(backend.name, [outgoing("a")])
    message = await backend.receive_one()
    clock.advance(20)

    renewed = await backend.queue.renew_lock(backend.name, message)
    clock.advance(20)  # past the original lock, inside the renewed one

    assert renewed == backend.now() - timedelta(seconds=20) + timedelta(seconds=LOCK_SECONDS)
    assert await backend.queue.receive(backend.name) == []
    await backend.queue.complete(backend.name, message)


SETTLE: dict[str, Callable[[MessageQueue, str, ReceivedMessage], Awaitable[object]]] = {
    "complete": lambda queue, name, message: queue.complete(name, message),
    "abandon": lambda queue, name, message: queue.abandon(name, message),
    "dead_letter": lambda queue, name, message: queue.dead_letter(name, message, reason="Bad"),
    "renew_lock": lambda queue, name, message: queue.renew_lock(name, message),
}


@pytest.mark.parametrize("operation", sorted(SETTLE))
@pytest.mark.parametrize("how", ["already completed", "peeked, never locked"])
async def test_settling_without_the_lock_raises_lock_lost(backend: Backend, operation: str, how: str) -> None:
    await backend.queue.send(backend.name, [outgoing("a"), outgoing("b")])
    if how == "already completed":
        stale = await backend.receive_one()
        await backend.queue.complete(backend.name, stale)
    else:
        stale = (await backend.queue.peek(backend.name))[0]

    with pytest.raises(LockLost):
        await SETTLE[operation](backend.queue, backend.name, stale)


@pytest.mark.parametrize("operation", sorted(SETTLE))
async def test_settling_after_the_lock_expired_raises_lock_lost(backend: Backend, operation: str) -> None:
    clock = backend.manual_clock()
    await backend.queue.send(backend.name, [outgoing("a")])
    message = await backend.receive_one()
    clock.advance(LOCK_SECONDS)

    with pytest.raises(LockLost):
        await SETTLE[operation](backend.queue, backend.name, message)
    assert (await backend.queue.peek(backend.name))[0].dead_letter_reason is None


async def test_a_newer_lock_makes_the_old_token_stale(backend: Backend) -> None:
    clock = backend.manual_clock()
    await backend.queue.send(backend.name, [outgoing("a")])
    old = await backend.receive_one()
    clock.advance(LOCK_SECONDS + 1)
    current = await backend.receive_one()

    for operation in SETTLE.values():
        with pytest.raises(LockLost):
            await operation(backend.queue, backend.name, old)
    await backend.queue.renew_lock(backend.name, current)


# ---------------------------------------------------------------- abandon and dead letters


async def test_abandon_redelivers(backend: Backend) -> None:
    await backend.queue.send(backend.name, [outgoing("a")])
    first = await backend.receive_one()

    await backend.queue.abandon(backend.name, first)
    again = await backend.receive_one()

    assert (again.message_id, again.delivery_count) == ("msg-a", 2)


async def test_abandon_at_max_delivery_count_dead_letters(backend: Backend) -> None:
    await backend.queue.send(backend.name, [outgoing("a", application_properties={"k": "v"})])
    for attempt in range(1, MAX_DELIVERIES + 1):
        message = await backend.receive_one()
        assert message.delivery_count == attempt
        await backend.queue.abandon(backend.name, message)

    assert await backend.queue.receive(backend.name) == []
    (dead,) = await backend.queue.peek(backend.name, sub_queue="dead_letter")
    assert (dead.message_id, dead.dead_letter_reason, dead.delivery_count) == (
        "msg-a",
        MAX_DELIVERY_COUNT_EXCEEDED,
        MAX_DELIVERIES,
    )
    assert dict(dead.application_properties) == {"k": "v"}
    assert await backend.queue.stats(backend.name) == QueueStats(active=0, scheduled=0, dead_lettered=1)


async def test_expired_lock_at_max_delivery_count_dead_letters(backend: Backend) -> None:
    clock = backend.manual_clock()
    await backend.queue.send(backend.name, [outgoing("a")])
    for _ in range(MAX_DELIVERIES):
        await backend.receive_one()
        clock.advance(LOCK_SECONDS + 1)

    assert await backend.queue.stats(backend.name) == QueueStats(active=0, scheduled=0, dead_lettered=1)
    assert await backend.queue.receive(backend.name) == []
    (dead,) = await backend.queue.peek(backend.name, sub_queue="dead_letter")
    assert (dead.dead_letter_reason, dead.delivery_count) == (MAX_DELIVERY_COUNT_EXCEEDED, MAX_DELIVERIES)


async def test_dead_letter_keeps_the_message_and_its_reason(backend: Backend) -> None:
    sent = outgoing("a", correlation_id="corr-9", application_properties={"retryCount": 1})
    await backend.queue.send(backend.name, [sent])
    message = await backend.receive_one()

    await backend.queue.dead_letter(backend.name, message, reason="InvalidMessage", description="syncMode missing")

    assert await backend.queue.peek(backend.name) == []
    (dead,) = await backend.queue.peek(backend.name, sub_queue="dead_letter")
    assert (dead.body, dead.message_id, dead.correlation_id, dead.delivery_count) == (sent.body, "msg-a", "corr-9", 1)
    assert (dead.dead_letter_reason, dead.dead_letter_description) == ("InvalidMessage", "syncMode missing")
    assert dict(dead.application_properties) == {"retryCount": 1}
    assert dead.lock_token is None


async def test_dead_letters_can_be_received_resubmitted_and_completed(backend: Backend) -> None:
    await backend.queue.send(backend.name, [outgoing("a")])
    await backend.queue.dead_letter(backend.name, await backend.receive_one(), reason="Bad")

    dead = await backend.receive_one(sub_queue="dead_letter")
    assert (dead.message_id, dead.dead_letter_reason) == ("msg-a", "Bad")
    assert dead.lock_token is not None
    assert await backend.queue.receive(backend.name, sub_queue="dead_letter") == []  # locked
    resubmitted = OutgoingMessage(body=dead.body, message_id=f"{dead.message_id}-resubmit-1")
    await backend.queue.send(backend.name, [resubmitted])
    await backend.queue.complete(backend.name, dead)

    assert (await backend.receive_one()).message_id == "msg-a-resubmit-1"
    assert await backend.queue.peek(backend.name, sub_queue="dead_letter") == []


async def test_stats_count_active_scheduled_and_dead_lettered(backend: Backend) -> None:
    later = backend.now() + timedelta(hours=1)
    await backend.queue.send(
        backend.name,
        [outgoing("locked"), outgoing("dead"), outgoing("idle"), outgoing("later", scheduled_enqueue_time=later)],
    )
    await backend.receive_one()  # "locked" stays active while locked
    await backend.queue.dead_letter(backend.name, await backend.receive_one(), reason="Bad")

    assert await backend.queue.stats(backend.name) == QueueStats(active=2, scheduled=1, dead_lettered=1)


# ---------------------------------------------------------------- waiting


async def test_receive_times_out_with_nothing(backend: Backend) -> None:
    assert await backend.queue.receive(backend.name, max_wait_seconds=0.1) == []


async def test_a_waiting_receive_wakes_on_send_from_another_task(backend: Backend) -> None:
    waiting = asyncio.create_task(backend.queue.receive(backend.name, max_wait_seconds=60))
    await asyncio.sleep(0.05)
    assert not waiting.done()

    await backend.queue.send(backend.name, [outgoing("a")])
    received = await asyncio.wait_for(waiting, timeout=30)

    assert [m.message_id for m in received] == ["msg-a"]


async def test_a_waiting_receive_wakes_on_abandon(backend: Backend) -> None:
    await backend.queue.send(backend.name, [outgoing("a")])
    held = await backend.receive_one()
    waiting = asyncio.create_task(backend.queue.receive(backend.name, max_wait_seconds=60))
    await asyncio.sleep(0.05)
    assert not waiting.done()

    await backend.queue.abandon(backend.name, held)
    received = await asyncio.wait_for(waiting, timeout=30)

    assert [(m.message_id, m.delivery_count) for m in received] == [("msg-a", 2)]


# ---------------------------------------------------------------- the embedded file


async def test_messages_and_locks_survive_close_and_reopen(tmp_path: Path) -> None:
    clock = ManualClock()
    first = new_sqlite_queue(tmp_path / "queue.db", clock)
    await first.send("contract", [outgoing("held"), outgoing("waiting")])
    held = await first.receive("contract")
    await first.close()

    reopened = new_sqlite_queue(tmp_path / "queue.db", clock)
    try:
        assert [m.message_id for m in await reopened.receive("contract", max_messages=10)] == ["msg-waiting"]
        await reopened.complete("contract", held[0])  # the lock token is still good after the reopen
        await reopened.send("contract", [outgoing("new"), outgoing("held")])  # "held" is still a duplicate
        assert [(m.message_id, m.sequence_number) for m in await reopened.peek("contract")] == [
            ("msg-waiting", 2),
            ("msg-new", 3),
        ]
    finally:
        await reopened.close()


async def test_two_processes_receive_every_message_exactly_once(tmp_path: Path) -> None:
    path, go = tmp_path / "queue.db", tmp_path / "go"
    expected = [f"msg-{n}" for n in range(400)]
    seed = SqliteMessageQueue(path)
    await seed.send("shared", [outgoing(str(n)) for n in range(400)])
    await seed.close()

    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(WORKER), str(path), "shared", str(go), stdout=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert await asyncio.wait_for(worker.stdout.readline(), timeout=30) == b"ready\n"
        go.touch()
        outputs = [await asyncio.wait_for(worker.communicate(), timeout=60) for worker in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    assert [worker.returncode for worker in workers] == [0, 0]
    first, second = (json.loads(stdout.splitlines()[-1]) for stdout, _ in outputs)

    assert set(first).isdisjoint(second)
    assert sorted(first + second) == sorted(expected)
    assert first, "the first worker received nothing: the two never ran side by side"
    assert second, "the second worker received nothing: the two never ran side by side"
    check = SqliteMessageQueue(path)
    try:
        assert await check.stats("shared") == QueueStats(active=0, scheduled=0, dead_lettered=0)
    finally:
        await check.close()


# ---------------------------------------------------------------- Service Bus error translation


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (MessageLockLostError(), LockLost),
        (SessionLockLostError(), LockLost),
        (MessageAlreadySettled(action="complete"), LockLost),
        (MessagingEntityNotFoundError(message="no such entity"), ConfigError),
        (ResourceNotFoundError("Queue sync-inbound does not exist"), ConfigError),
        (ServiceBusConnectionError(), RetryableError),
        (ServiceBusServerBusyError(message="busy"), RetryableError),
        (OperationTimeoutError(), RetryableError),
        (MessageSizeExceededError(message="too big"), InvalidMessage),
    ],
)
def test_service_bus_errors_translate_by_what_the_caller_does_next(
    raised: BaseException, expected: type[CastielError]
) -> None:
    translated = ERRORS.translate(raised, "queue 'sync-inbound'")

    assert type(translated) is expected
    assert "'sync-inbound'" in str(translated)


def test_foreign_errors_are_not_translated() -> None:
    assert ERRORS.translate(KeyError("x"), "queue 'sync-inbound'") is None
