"""The inbound worker's service: one ``SyncTaskMessage`` through the task lifecycle (DESIGN §3, §4).

``queued`` → ``running`` (etag-conditional) → the pull (``pull.py``: every page since the task's checkpoints into
shards) → ``pending`` with ``nextRunAt = now + interval`` on success. Every execution leaves a ``sync-results``
document, written as it goes (``results.py``). How an execution ends, by what stopped it:

- a permanent error (bad configuration, no adapter): ``failed``, and the message is dead-lettered with the reason;
- a dead grant (``InvalidGrant``: the provider refused even a refreshed token, or the credential already needs
  re-authorisation): ``needs_reauth`` — re-authorising resumes it (``castiel credentials connect``), so the message
  is completed, not dead-lettered;
- a pause the provider imposed (a 429 or a spent quota, at the rate check or mid-pull): ``paused`` until it ends,
  the scheduler resumes it then;
- a fetch over a sliding-window limit: deferred — the message is re-sent when the window has room, the task back
  to ``queued``;
- a retryable error: the task stays ``running`` and the message is retried; the retry resumes from the last
  checkpoint.

A message for a task that is not ``queued`` or ``running`` is skipped, with one exception: a dead letter an operator
resubmitted (``castiel queue resubmit``, after fixing the cause) runs its ``failed`` task again.

A run whose task's last run may have stopped between saving a page and checkpointing it is a resumed pull
(``PullOptions.resumed``): the task is still ``running`` (the worker died and the queue delivers the message again,
or a retryable error sent a retry copy), or ``failed``, or the queue counts more than one delivery of the message.
Not covered: a task the scheduler's stuck sweep re-pended (no delivery came back for the stuck timeout: the message
was lost) starts afresh, and a page its dead run saved unsent reaches the other tools with the records' next change.

``run_now`` is ``castiel sync run``: the same execution in the foreground, on the connection's task. What it is asked
for is checked before the task is touched (an entity type the connection does not have is a ``ConfigError``, the
task as it was); and whatever stops it once the task is ``running`` — Ctrl-C or a bug as well as an error above —
puts the task back to ``pending``, never leaving it ``running`` for the stuck sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from adapters.base import AdapterRegistry
from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import (
    CastielError,
    Deferred,
    InvalidGrant,
    NotFound,
    PermanentError,
    PreconditionFailed,
    RateLimited,
    RetryableError,
)
from castiel.models import (
    Connection,
    SyncMode,
    SyncResult,
    SyncTask,
    SyncTaskMessage,
    TaskStatus,
    TriggerKind,
    format_utc,
    stable_id,
)
from castiel.ports import DocumentStore, Filter, Query
from castiel.ratelimit.limiter import RateLimiter
from castiel.ratelimit.policy import PROVIDER_LEVEL
from castiel.sync.checkpoints import RunningTask
from castiel.sync.delivery import Delivery, DeliveryPolicy, GiveUpHook, decode_body
from castiel.sync.pull import PageHook, Puller, PullOptions, entity_types_to_pull
from castiel.sync.results import Phase, ResultRecorder
from castiel.telemetry import correlation, log_event, new_correlation_id
from castiel.telemetry.spans import annotate

_ACTIVE = (TaskStatus.QUEUED, TaskStatus.RUNNING)
PULLING = (SyncMode.PULL, SyncMode.BIDIRECTIONAL)
"""The modes whose task pulls its connection; a connection has one such task, which holds its checkpoints."""

Outcome = tuple[SyncResult, CastielError | None]
"""An execution's result document, and the error the queue worker raises to settle its message (None: complete)."""


class InboundSync:
    """Runs sync tasks delivered on ``sync-inbound`` (and on demand, ``run_now``)."""

    def __init__(
        self,
        store: DocumentStore,
        adapters: AdapterRegistry,
        limiter: RateLimiter,
        policy: DeliveryPolicy,
        *,
        retention: timedelta | None = None,
        progress_interval: float = 5.0,
        hooks: Sequence[PageHook] = (),
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._adapters = adapters
        self._policy = policy
        self._puller = Puller(store, adapters, limiter, retention=retention, clock=clock)
        self._interval = progress_interval
        self._hooks = tuple(hooks)
        self._clock = clock

    async def handle(self, delivery: Delivery) -> None:
        """Process one delivery under the retry policy of DESIGN §7."""
        message = decode_body(SyncTaskMessage, delivery)
        annotate(tenant=message.tenant_id, connection=message.connection_id, task=message.task_id)
        with correlation(message.correlation_id):
            await self._policy.run(delivery, lambda _: self._run(message, delivery), self._give_up_hook(message))

    async def run_now(
        self,
        tenant_id: str,
        connection_id: str,
        *,
        entity_type: str | None = None,
        full: bool = False,
        on_page: PageHook | None = None,
    ) -> SyncResult:
        """Pull ``connection_id`` now, on its sync task (its checkpoints, unless ``full``); the result document,
        whatever the outcome. ``NotFound`` without the connection or a pulling task; ``ConfigError`` for an
        ``entity_type`` it does not have; ``PreconditionFailed`` when the task is queued or running already."""
        connection, task = await self._task_of(tenant_id, connection_id)
        if entity_type is not None:
            entity_types_to_pull(connection, self._adapters.get(connection.provider), entity_type)
        if task.status in _ACTIVE:
            since = format_utc(task.status_changed_at) if task.status_changed_at else "unknown"
            raise PreconditionFailed(
                f"task {task.id} of connection {connection_id} is {task.status.value} (since {since}): "
                "a worker has it; wait for it to finish"
            )
        hooks = (*self._hooks, on_page) if on_page is not None else self._hooks
        with correlation(new_correlation_id()) as correlation_id:
            options = PullOptions(entity_type, full, resumed=_resumed(task))
            result, _ = await self._execute(task, correlation_id, TriggerKind.MANUAL, options, hooks, manual=True)
        return result

    def _give_up_hook(self, message: SyncTaskMessage) -> GiveUpHook:
        async def give_up(_: Delivery, reason: str) -> None:
            task = await self._load(message)
            if task is not None:
                await RunningTask(self._store, task, clock=self._clock).move(TaskStatus.FAILED, error=reason)

        return give_up

    async def _run(self, message: SyncTaskMessage, delivery: Delivery) -> None:
        task = await self._load(message)
        if task is not None and delivery.resubmitted and task.status is TaskStatus.FAILED:
            log_event("inbound.resubmitted", task_id=task.id, last_error=task.last_error)
        elif task is None or task.status not in _ACTIVE:
            log_event("inbound.skipped", task_id=message.task_id, status=task.status.value if task else "absent")
            return
        options = PullOptions(resumed=_resumed(task, delivery.delivery_count))
        _, error = await self._execute(task, message.correlation_id, message.trigger, options, self._hooks)
        if error is not None:
            raise error

    async def _execute(
        self,
        task: SyncTask,
        correlation_id: str,
        trigger: TriggerKind,
        options: PullOptions,
        hooks: Sequence[PageHook],
        *,
        manual: bool = False,
    ) -> Outcome:
        started = now_utc(self._clock)
        recorder = ResultRecorder(
            self._store,
            SyncResult(
                id=stable_id("result", task.id, correlation_id, started.timestamp()),
                tenant_id=task.tenant_id,
                task_id=task.id,
                connection_id=task.connection_id,
                status="running",
                started_at=started,
                correlation_id=correlation_id,
                trigger=trigger,
            ),
            interval=self._interval,
            clock=self._clock,
        )
        running = RunningTask(self._store, task, clock=self._clock)
        settle = _Settle(running, recorder, manual)
        try:
            async with recorder.phase(Phase.RECEIVED):
                await running.move(TaskStatus.RUNNING)
                connection = await self._connection(task)
                annotate(provider=connection.provider.value)
            paused_until = await self._puller.pull(running, connection, recorder, options, hooks)
            if paused_until is not None:
                return await settle.paused(paused_until), None
            # Inside the try: a store failing as the run ends is settled like any other failure of the run.
            result = await recorder.finish("succeeded")
            await running.move(TaskStatus.PENDING, result_id=result.id)
        except InvalidGrant as exc:
            return await settle.ended("needs_reauth", TaskStatus.NEEDS_REAUTH, exc), None
        except RateLimited as exc:
            if exc.level != PROVIDER_LEVEL:
                return await settle.retry(exc)
            until = now_utc(self._clock) + timedelta(seconds=exc.retry_after)
            return await settle.paused(until), None
        except Deferred as exc:
            deferred = TaskStatus.PENDING if manual else TaskStatus.QUEUED
            return await settle.ended("deferred", deferred, exc, reschedule=False), exc
        except PermanentError as exc:
            return await settle.ended("failed", TaskStatus.FAILED, exc), exc
        except RetryableError as exc:
            return await settle.retry(exc)
        except BaseException as exc:
            if manual:  # a worker's run stays running: its message is delivered again and resumes it
                await settle.stopped(exc)
            raise
        log_event("inbound.pulled", task_id=task.id, pages=result.pages, **result.counts.model_dump())
        return result, None

    async def _connection(self, task: SyncTask) -> Connection:
        try:
            doc = await self._store.read(Connection.container, task.connection_id, task.tenant_id)
        except NotFound:
            raise PermanentError(f"connection {task.connection_id} of task {task.id} does not exist") from None
        return Connection.model_validate(doc)

    async def _task_of(self, tenant_id: str, connection_id: str) -> tuple[Connection, SyncTask]:
        try:
            connection = Connection.model_validate(
                await self._store.read(Connection.container, connection_id, tenant_id)
            )
        except NotFound:
            raise NotFound(f"connection {connection_id!r} of tenant {tenant_id!r} not found") from None
        query = Query(filters=(Filter("connectionId", "==", connection_id),), partition_key=tenant_id)
        tasks = [SyncTask.model_validate(doc) for doc in (await self._store.query(SyncTask.container, query)).items]
        pulling = sorted((task for task in tasks if task.sync_mode in PULLING), key=lambda task: task.id)
        if not pulling:
            raise NotFound(
                f"connection {connection_id!r} of tenant {tenant_id!r} has no pull or bidirectional sync task "
                f"(its checkpoints live on one): add one with `castiel tasks add --tenant {tenant_id} "
                f"--connection {connection_id}`"
            )
        return connection, pulling[0]

    async def _load(self, message: SyncTaskMessage) -> SyncTask | None:
        if message.task_id is None:
            raise PermanentError("sync task message without taskId")
        try:
            return SyncTask.model_validate(
                await self._store.read(SyncTask.container, message.task_id, message.tenant_id)
            )
        except NotFound:
            return None


def _resumed(task: SyncTask, delivery_count: int = 1) -> bool:
    """Whether the task's last run may have saved a page and stopped before its hooks and checkpoint completed."""
    return task.status in (TaskStatus.RUNNING, TaskStatus.FAILED) or delivery_count > 1


class _Settle:
    """How an execution that did not succeed ends: its result document, then its task."""

    def __init__(self, running: RunningTask, recorder: ResultRecorder, manual: bool) -> None:
        self._running = running
        self._recorder = recorder
        self._manual = manual

    async def ended(
        self, status: str, task_status: TaskStatus, error: CastielError, *, reschedule: bool = True
    ) -> SyncResult:
        result = await self._recorder.finish(status, str(error))
        task_error = None if isinstance(error, Deferred) else str(error)
        await self._running.move(task_status, error=task_error, result_id=result.id, reschedule=reschedule)
        return result

    async def paused(self, until: datetime) -> SyncResult:
        reason = f"provider paused the connection until {until.isoformat()}"
        result = await self._recorder.finish("paused", reason)
        await self._running.move(TaskStatus.PAUSED, error=reason, result_id=result.id, paused_until=until)
        return result

    async def stopped(self, error: BaseException) -> None:
        """A manual run stopped by what no outcome above covers (Ctrl-C, a bug): its task back to ``pending``, its
        checkpoints kept. The original error is what the caller sees, so one here is logged, not raised."""
        if self._running.task.status is not TaskStatus.RUNNING:
            return  # stopped before it was moved to running: nothing to put back
        reason = f"stopped by {type(error).__name__}" + (f": {error}" if str(error) else "")
        try:
            result = await self._recorder.finish("failed", reason)
            await self._running.move(TaskStatus.PENDING, error=reason, result_id=result.id, reschedule=False)
        except Exception as exc:
            log_event("inbound.not_settled", level=logging.WARNING, task_id=self._running.task.id, error=str(exc))

    async def retry(self, error: RetryableError) -> Outcome:
        """The worker's message is retried (the task stays running, its checkpoints kept); a manual run fails, its
        task back to ``pending`` for the scheduler."""
        if not self._manual:
            return await self._recorder.finish("retrying", str(error)), error
        return await self.ended("failed", TaskStatus.PENDING, error, reschedule=False), None
