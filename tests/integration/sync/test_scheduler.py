"""The scheduler against a real SQLite store and queue: priority order, batching, races, stuck tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest

from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock, now_utc
from castiel.errors import RetryableError
from castiel.models import Priority, SyncTask, SyncTaskMessage, TaskStatus
from castiel.ports import OutgoingMessage
from castiel.sync.scheduler import SyncScheduler

QUEUE = "sync-inbound"


def scheduler_for(store: Any, queue: Any, clock: ManualClock, batch_size: int = 100) -> SyncScheduler:
    return SyncScheduler(
        store, queue, queue_name=QUEUE, batch_size=batch_size, stuck_timeout=timedelta(minutes=60), clock=clock
    )


async def add_task(
    store: SqliteDocumentStore,
    clock: ManualClock,
    task_id: str,
    *,
    priority: Priority = Priority.NORMAL,
    due_in: timedelta = timedelta(minutes=-1),
    status: TaskStatus = TaskStatus.PENDING,
    status_age: timedelta = timedelta(0),
    tenant: str = "tenant-a",
) -> None:
    now = now_utc(clock)
    task = SyncTask(
        id=task_id,
        tenant_id=tenant,
        integration_id="github",
        connection_id=f"conn-{task_id}",
        priority=priority,
        status=status,
        next_run_at=now + due_in,
        status_changed_at=now - status_age,
    )
    await store.create(SyncTask.container, task.to_doc())


async def queued_task_ids(queue: SqliteMessageQueue) -> list[str]:
    messages = await queue.peek(QUEUE, max_messages=1000)
    return [str(SyncTaskMessage.from_json_bytes(m.body).task_id) for m in messages]


async def task_status(store: SqliteDocumentStore, task_id: str, tenant: str = "tenant-a") -> TaskStatus:
    return SyncTask.model_validate(await store.read(SyncTask.container, task_id, tenant)).status


async def test_due_tasks_are_queued_high_then_normal_then_low_in_batches(
    store: SqliteDocumentStore, queue: SqliteMessageQueue, clock: ManualClock
) -> None:
    plan = [
        ("low-1", Priority.LOW),
        ("normal-1", Priority.NORMAL),
        ("high-1", Priority.HIGH),
        ("low-2", Priority.LOW),
        ("high-2", Priority.HIGH),
        ("normal-2", Priority.NORMAL),
        ("normal-3", Priority.NORMAL),
    ]
    for index, (task_id, priority) in enumerate(plan):
        await add_task(
            store, clock, task_id, priority=priority, due_in=timedelta(minutes=-10 + index), tenant=f"t{index}"
        )
    await add_task(store, clock, "not-due", due_in=timedelta(minutes=5))
    await add_task(store, clock, "paused", status=TaskStatus.PAUSED)

    report = await scheduler_for(store, queue, clock, batch_size=3).run()

    assert report.queued == 7
    assert report.batches == 3
    ids = await queued_task_ids(queue)
    assert ids[:2] == ["high-1", "high-2"]
    assert ids[2:5] == ["normal-1", "normal-2", "normal-3"]
    assert ids[5:] == ["low-1", "low-2"]
    assert await task_status(store, "not-due") is TaskStatus.PENDING
    assert await task_status(store, "paused") is TaskStatus.PAUSED
    assert await task_status(store, "high-1", tenant="t2") is TaskStatus.QUEUED


async def test_a_second_run_queues_nothing_already_queued(
    store: SqliteDocumentStore, queue: SqliteMessageQueue, clock: ManualClock
) -> None:
    for index in range(5):
        await add_task(store, clock, f"task-{index}")
    scheduler = scheduler_for(store, queue, clock)
    assert (await scheduler.run()).queued == 5
    assert (await scheduler.run()).queued == 0
    assert len(await queued_task_ids(queue)) == 5


class InterleavingStore:
    """The real store, but before its first conditional replace another scheduler runs to completion.

    This forces the race the etag guards against: both runs read the same due tasks; the other run claims them first.
    """

    def __init__(self, inner: SqliteDocumentStore, rival: SyncScheduler) -> None:
        self._inner = inner
        self._rival: SyncScheduler | None = rival

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def replace(self, container: str, doc: Mapping[str, Any], *, if_match: str | None = None) -> dict[str, Any]:
        if self._rival is not None:
            rival, self._rival = self._rival, None
            await rival.run()
        return await self._inner.replace(container, doc, if_match=if_match)


async def test_overlapping_runs_never_queue_a_task_twice(
    store: SqliteDocumentStore, queue: SqliteMessageQueue, clock: ManualClock
) -> None:
    for index in range(6):
        await add_task(store, clock, f"task-{index}")
    rival = scheduler_for(store, queue, clock)
    racing = scheduler_for(InterleavingStore(store, rival), queue, clock)

    report = await racing.run()

    assert report.queued == 0
    assert report.lost_races == 6
    assert sorted(await queued_task_ids(queue)) == [f"task-{index}" for index in range(6)]


async def test_tasks_stuck_past_the_timeout_are_re_pended_and_queued_again(
    store: SqliteDocumentStore, queue: SqliteMessageQueue, clock: ManualClock
) -> None:
    await add_task(store, clock, "lost-queued", status=TaskStatus.QUEUED, status_age=timedelta(minutes=90))
    await add_task(store, clock, "lost-running", status=TaskStatus.RUNNING, status_age=timedelta(hours=3))
    await add_task(store, clock, "busy", status=TaskStatus.RUNNING, status_age=timedelta(minutes=5))

    report = await scheduler_for(store, queue, clock).run()

    assert report.recovered == 2
    assert sorted(await queued_task_ids(queue)) == ["lost-queued", "lost-running"]
    assert await task_status(store, "busy") is TaskStatus.RUNNING


class FailingQueue:
    def __init__(self, inner: SqliteMessageQueue) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        raise RetryableError("service bus unavailable")


async def test_a_failed_send_releases_the_claims_for_the_next_run(
    store: SqliteDocumentStore, queue: SqliteMessageQueue, clock: ManualClock
) -> None:
    await add_task(store, clock, "task-1")
    with pytest.raises(RetryableError):
        await scheduler_for(store, FailingQueue(queue), clock).run()
    assert await task_status(store, "task-1") is TaskStatus.PENDING
    assert (await scheduler_for(store, queue, clock).run()).queued == 1


async def test_paused_tasks_resume_once_their_pause_has_ended(
    store: SqliteDocumentStore, queue: SqliteMessageQueue, clock: ManualClock
) -> None:
    now = now_utc(clock)
    for task_id, until in (("pause-over", now - timedelta(seconds=1)), ("still-paused", now + timedelta(minutes=5))):
        task = SyncTask(
            id=task_id,
            tenant_id="tenant-a",
            integration_id="salesforce",
            connection_id=f"conn-{task_id}",
            status=TaskStatus.PAUSED,
            paused_until=until,
            next_run_at=now - timedelta(hours=1),
            status_changed_at=now - timedelta(hours=1),
        )
        await store.create(SyncTask.container, task.to_doc())

    report = await scheduler_for(store, queue, clock).run()

    assert report.recovered == 1
    assert await queued_task_ids(queue) == ["pause-over"]
    assert await task_status(store, "still-paused") is TaskStatus.PAUSED
