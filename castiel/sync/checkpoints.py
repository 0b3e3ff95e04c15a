"""A sync task as the run executing it holds it: its status moves and its cursors are checkpointed, each write
conditional on the etag of the one before.

A run that lost its task — the scheduler's stuck sweep re-pended it, a dead credential moved it to ``needs_reauth``,
an operator paused it — learns so at its next write and stops (``RetryableError``: the redelivered message then finds
the task's new status) instead of overwriting it. Each checkpoint also refreshes ``statusChangedAt``, so a long pull
that keeps saving pages never looks stuck to the scheduler.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import NotFound, PreconditionFailed, RetryableError
from castiel.models import SyncTask, TaskStatus
from castiel.ports import DocumentStore


class RunningTask:
    """``task`` held by one run; every write is etag-conditional on the last one it made."""

    def __init__(self, store: DocumentStore, task: SyncTask, *, clock: Clock = system_clock) -> None:
        self._store = store
        self._task = task
        self._clock = clock

    @property
    def task(self) -> SyncTask:
        """The task as this run last wrote (or read) it."""
        return self._task

    def cursor(self, entity_type: str) -> str | None:
        """Where the last saved page of ``entity_type`` left off (None: from the beginning)."""
        return self._task.cursors.get(entity_type)

    async def checkpoint(self, entity_type: str, cursor: str | None) -> None:
        """After a page is saved: resume ``entity_type`` from ``cursor`` (None leaves the last one), and show the
        task alive."""
        cursors = self._task.cursors if cursor is None else {**self._task.cursors, entity_type: cursor}
        await self._write({"cursors": cursors, "status_changed_at": now_utc(self._clock)})

    async def move(
        self,
        status: TaskStatus,
        *,
        error: str | None = None,
        result_id: str | None = None,
        paused_until: datetime | None = None,
        reschedule: bool = True,
    ) -> None:
        """Set the task's status (``pending`` also schedules its next run, now + its interval, unless not to
        ``reschedule``)."""
        now = now_utc(self._clock)
        update: dict[str, object] = {
            "status": status,
            "status_changed_at": now,
            "last_error": error,
            "paused_until": paused_until,
        }
        if status is TaskStatus.PENDING and reschedule:
            update["next_run_at"] = now + timedelta(minutes=self._task.interval_minutes)
        if result_id is not None:
            update["last_result_id"] = result_id
        await self._write(update, settled=status)

    async def _write(self, update: dict[str, object], *, settled: TaskStatus | None = None) -> None:
        task = self._task
        for first in (True, False):
            try:
                stored = await self._store.replace(
                    SyncTask.container, task.model_copy(update=update).to_doc(), if_match=task.etag
                )
            except (PreconditionFailed, NotFound) as exc:
                current = await self._reread()
                if first and settled is not None and current is not None and current.status is settled:
                    # Someone made the same move first (a dead credential moves every task of its connections):
                    # this run's outcome goes on top of theirs.
                    task = current
                    continue
                raise RetryableError(f"task {task.id} changed while it was being processed") from exc
            self._task = SyncTask.model_validate(stored)
            return

    async def _reread(self) -> SyncTask | None:
        try:
            return SyncTask.model_validate(
                await self._store.read(SyncTask.container, self._task.id, self._task.tenant_id)
            )
        except NotFound:
            return None
