"""The hourly scheduler: due tasks onto ``sync-inbound``, exactly once per run slot (DESIGN §3).

A task is claimed by an etag-conditional write (pending → queued) *before* its message is sent, so of two
overlapping runs only the one whose write lands sends; the loser sees ``PreconditionFailed`` and skips it. If the
send then fails, the claims are released (queued → pending) so the next run picks them up; if even that fails,
the stuck-task sweep re-pends them after the timeout. Either way a due task is never lost and never queued twice
(the message id is also deterministic per run slot, so Service Bus duplicate detection backs this up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import CastielError, NotFound, PreconditionFailed
from castiel.models import SyncTask, SyncTaskMessage, TaskStatus, TriggerKind, format_utc
from castiel.ports import DocumentStore, Filter, MessageQueue, OutgoingMessage, Query
from castiel.telemetry import log_event, new_correlation_id
from castiel.telemetry.outcomes import tasks_scheduled

_MAX_BATCHES_PER_RUN = 1_000
_CONTAINER = SyncTask.container


@dataclass(frozen=True, slots=True)
class SchedulerReport:
    """What one scheduler run did."""

    queued: int
    lost_races: int
    recovered: int
    batches: int


class SyncScheduler:
    """Queues due sync tasks in priority order and re-pends tasks stuck past a timeout."""

    def __init__(
        self,
        store: DocumentStore,
        queue: MessageQueue,
        *,
        queue_name: str,
        batch_size: int,
        stuck_timeout: timedelta,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._queue = queue
        self._queue_name = queue_name
        self._batch_size = batch_size
        self._stuck_timeout = stuck_timeout
        self._clock = clock

    async def run(self) -> SchedulerReport:
        """One scheduler pass: re-pend stuck and resumable tasks, then queue every due task, high → normal → low."""
        now = now_utc(self._clock)
        recovered = await self._recover(now)
        queued = lost = batches = 0
        while batches < _MAX_BATCHES_PER_RUN:
            due = await self._due_batch(now)
            if not due:
                break
            batches += 1
            won, lost_here = await self._claim(due, now)
            lost += lost_here
            await self._send(won, now)
            queued += len(won)
            if len(due) < self._batch_size:
                break
        report = SchedulerReport(queued=queued, lost_races=lost, recovered=recovered, batches=batches)
        log_event("scheduler.run", queued=queued, lost_races=lost, recovered=recovered, batches=batches)
        tasks_scheduled(queued)
        return report

    async def _due_batch(self, now: datetime) -> list[SyncTask]:
        page = await self._store.query(
            _CONTAINER,
            Query(
                filters=(
                    Filter("status", "==", TaskStatus.PENDING.value),
                    Filter("nextRunAt", "<=", format_utc(now)),
                ),
                order_by=(("priorityRank", "asc"), ("nextRunAt", "asc")),
                limit=self._batch_size,
            ),
        )
        return [SyncTask.model_validate(doc) for doc in page.items]

    async def _claim(self, tasks: list[SyncTask], now: datetime) -> tuple[list[SyncTask], int]:
        """Mark each task queued under its etag; returns the tasks this run won and how many it lost."""
        won: list[SyncTask] = []
        lost = 0
        for task in tasks:
            claimed = task.model_copy(update={"status": TaskStatus.QUEUED, "status_changed_at": now})
            try:
                stored = await self._store.replace(_CONTAINER, claimed.to_doc(), if_match=task.etag)
            except (PreconditionFailed, NotFound):
                lost += 1
                continue
            won.append(SyncTask.model_validate(stored))
        return won, lost

    async def _send(self, tasks: list[SyncTask], now: datetime) -> None:
        if not tasks:
            return
        messages = [self._message_for(task, now) for task in tasks]
        try:
            await self._queue.send(self._queue_name, messages)
        except CastielError:
            await self._release(tasks)
            raise

    def _message_for(self, task: SyncTask, now: datetime) -> OutgoingMessage:
        message = SyncTaskMessage(
            integration_id=task.integration_id,
            tenant_id=task.tenant_id,
            connection_id=task.connection_id,
            sync_mode=task.sync_mode,
            priority=task.priority,
            correlation_id=new_correlation_id(),
            enqueued_at=now,
            task_id=task.id,
            trigger=TriggerKind.SCHEDULE,
        )
        return OutgoingMessage(
            body=message.to_json_bytes(),
            message_id=message.message_id(task.next_run_at),
            correlation_id=message.correlation_id,
            application_properties={"priority": task.priority.value, "tenantId": task.tenant_id},
        )

    async def _release(self, tasks: list[SyncTask]) -> None:
        """Best effort after a failed send: back to pending for the next run (the stuck sweep is the backstop)."""
        for task in tasks:
            released = task.model_copy(update={"status": TaskStatus.PENDING})
            try:
                await self._store.replace(_CONTAINER, released.to_doc(), if_match=task.etag)
            except CastielError as exc:
                log_event("scheduler.release_failed", task_id=task.id, error=str(exc))

    async def _recover(self, now: datetime) -> int:
        """Re-pend tasks stuck in queued/running past the timeout, and paused tasks whose pause has ended."""
        stuck = (
            Filter("status", "in", (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)),
            Filter("statusChangedAt", "<=", format_utc(now - self._stuck_timeout)),
        )
        resumable = (
            Filter("status", "==", TaskStatus.PAUSED.value),
            Filter("pausedUntil", "<=", format_utc(now)),
        )
        return await self._repend(stuck, now) + await self._repend(resumable, now)

    async def _repend(self, filters: tuple[Filter, ...], now: datetime) -> int:
        """Back to pending, due now, every task matching ``filters`` (re-querying: re-pended ones drop out)."""
        query = Query(filters=filters, limit=self._batch_size)
        recovered = 0
        for _ in range(_MAX_BATCHES_PER_RUN):
            page = await self._store.query(_CONTAINER, query)
            recovered_here = 0
            for doc in page.items:
                task = SyncTask.model_validate(doc)
                pending = task.model_copy(
                    update={
                        "status": TaskStatus.PENDING,
                        "status_changed_at": now,
                        "next_run_at": now,
                        "paused_until": None,
                    }
                )
                try:
                    await self._store.replace(_CONTAINER, pending.to_doc(), if_match=task.etag)
                except (PreconditionFailed, NotFound):
                    continue
                recovered_here += 1
                log_event("scheduler.recovered", task_id=task.id, was=task.status.value)
            recovered += recovered_here
            if recovered_here == 0 or len(page.items) < self._batch_size:
                break
        return recovered
