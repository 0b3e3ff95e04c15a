"""The inbound worker's service: one ``SyncTaskMessage`` through the task lifecycle (DESIGN §3, §4).

``queued`` → ``running`` (etag-conditional) → the pull → ``pending`` with ``nextRunAt = now + interval`` on success,
``failed`` on a permanent error; every execution leaves a ``sync-results`` document. The pull itself runs through the
provider's adapter from the registry; a connection whose provider has no adapter installed fails permanently with
that reason.

Every pull is admitted by the rate limiter first. A connection paused by its provider (a 429, or a daily quota spent)
checkpoints the task as ``paused`` until the reset — the scheduler resumes it then — instead of failing; a fetch
over a sliding-window limit is deferred (the message is re-sent when the window has room), the task back to
``queued``.

A message for a task that is not ``queued`` or ``running`` is skipped, with one exception: a dead letter an operator
resubmitted (``castiel queue resubmit``, after fixing the cause) runs its ``failed`` task again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from adapters.base import AdapterRegistry
from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import Deferred, NotFound, PermanentError, PreconditionFailed, RetryableError
from castiel.models import Connection, SyncResult, SyncTask, SyncTaskMessage, TaskStatus, stable_id
from castiel.ports import DocumentStore
from castiel.ratelimit.limiter import RateLimiter, raise_for_check
from castiel.ratelimit.policy import PROVIDER_LEVEL
from castiel.sync.delivery import Delivery, DeliveryPolicy, GiveUpHook, decode_body
from castiel.telemetry import correlation, log_event

_ACTIVE = (TaskStatus.QUEUED, TaskStatus.RUNNING)


class InboundSync:
    """Runs sync tasks delivered on ``sync-inbound``."""

    def __init__(
        self,
        store: DocumentStore,
        adapters: AdapterRegistry,
        limiter: RateLimiter,
        policy: DeliveryPolicy,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._adapters = adapters
        self._limiter = limiter
        self._policy = policy
        self._clock = clock

    async def handle(self, delivery: Delivery) -> None:
        """Process one delivery under the retry policy of DESIGN §7."""
        message = decode_body(SyncTaskMessage, delivery)
        with correlation(message.correlation_id):
            await self._policy.run(
                delivery, lambda _: self._run(message, delivery.resubmitted), self._give_up_hook(message)
            )

    def _give_up_hook(self, message: SyncTaskMessage) -> GiveUpHook:
        async def give_up(_: Delivery, reason: str) -> None:
            task = await self._load(message)
            if task is not None:
                await self._set_status(task, TaskStatus.FAILED, error=reason)

        return give_up

    async def _run(self, message: SyncTaskMessage, resubmitted: bool) -> None:
        task = await self._load(message)
        if task is not None and resubmitted and task.status is TaskStatus.FAILED:
            log_event("inbound.resubmitted", task_id=task.id, last_error=task.last_error)
        elif task is None or task.status not in _ACTIVE:
            log_event("inbound.skipped", task_id=message.task_id, status=task.status.value if task else "absent")
            return
        task = await self._set_status(task, TaskStatus.RUNNING)
        started = now_utc(self._clock)
        result = SyncResult(
            id=stable_id("result", task.id, message.correlation_id, started.timestamp()),
            tenant_id=task.tenant_id,
            task_id=task.id,
            connection_id=task.connection_id,
            status="running",
            started_at=started,
            correlation_id=message.correlation_id,
        )
        try:
            paused_until = await self._pull(task)
        except Deferred:
            await self._record(result, "deferred", None)
            await self._set_status(task, TaskStatus.QUEUED, result_id=result.id)
            raise
        except PermanentError as exc:
            await self._record(result, "failed", str(exc))
            await self._set_status(task, TaskStatus.FAILED, error=str(exc), result_id=result.id)
            raise
        except RetryableError as exc:
            await self._record(result, "retrying", str(exc))
            raise
        if paused_until is not None:
            await self._record(result, "paused", f"provider paused the connection until {paused_until.isoformat()}")
            await self._set_status(task, TaskStatus.PAUSED, result_id=result.id, paused_until=paused_until)
            return
        await self._record(result, "succeeded", None)
        await self._set_status(task, TaskStatus.PENDING, result_id=result.id)

    async def _pull(self, task: SyncTask) -> datetime | None:
        """Run the pull; returns the time the provider's pause ends when the connection is paused instead."""
        try:
            doc = await self._store.read(Connection.container, task.connection_id, task.tenant_id)
        except NotFound:
            raise PermanentError(f"connection {task.connection_id} of task {task.id} does not exist") from None
        connection = Connection.model_validate(doc)
        check = await self._limiter.check(
            tenant_id=task.tenant_id,
            connection_id=connection.id,
            provider=connection.provider.value,
            operation="fetch",
        )
        if not check.allowed and check.level == PROVIDER_LEVEL:
            return check.reset_at
        raise_for_check(check)
        self._adapters.get(connection.provider)
        return None

    async def _load(self, message: SyncTaskMessage) -> SyncTask | None:
        if message.task_id is None:
            raise PermanentError("sync task message without taskId")
        try:
            return SyncTask.model_validate(
                await self._store.read(SyncTask.container, message.task_id, message.tenant_id)
            )
        except NotFound:
            return None

    async def _set_status(
        self,
        task: SyncTask,
        status: TaskStatus,
        *,
        error: str | None = None,
        result_id: str | None = None,
        paused_until: datetime | None = None,
    ) -> SyncTask:
        now = now_utc(self._clock)
        update: dict[str, object] = {
            "status": status,
            "status_changed_at": now,
            "last_error": error,
            "paused_until": paused_until,
        }
        if status is TaskStatus.PENDING:
            update["next_run_at"] = now + timedelta(minutes=task.interval_minutes)
        if result_id is not None:
            update["last_result_id"] = result_id
        try:
            stored = await self._store.replace(
                SyncTask.container, task.model_copy(update=update).to_doc(), if_match=task.etag
            )
        except PreconditionFailed as exc:
            raise RetryableError(f"task {task.id} changed while it was being processed") from exc
        return SyncTask.model_validate(stored)

    async def _record(self, result: SyncResult, status: str, error: str | None) -> None:
        finished = result.model_copy(update={"status": status, "error": error, "finished_at": now_utc(self._clock)})
        await self._store.upsert(SyncResult.container, finished.to_doc())
