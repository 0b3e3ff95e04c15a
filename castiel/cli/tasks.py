"""``castiel tasks``: scheduled syncs of a connection, and what an operator does to one.

``retry``, ``pause`` and ``remove`` take a task id alone (tasks are partitioned by tenant, so it is looked up across
tenants; ``--tenant`` is needed only when the id is in several). Their writes are etag-conditional: a task the
scheduler or a worker changed meanwhile is refused rather than overwritten.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

import typer

from castiel.cli.common import JsonFlag, echo_items, echo_json, public, run, settings, with_store
from castiel.cli.flags import ID_RULE, check_id, check_optional_id
from castiel.cli.lookup import create_named, find_named, read_named
from castiel.cli.status import collect_host
from castiel.clock import now_utc
from castiel.devhost.timers import next_fire
from castiel.errors import AlreadyExists, CastielError, PreconditionFailed
from castiel.models import (
    Connection,
    Priority,
    SyncMode,
    SyncTask,
    TaskStatus,
    format_utc,
)
from castiel.ports import DocumentStore, Filter, Query
from castiel.sync.inbound import PULLING
from castiel.text import printable

tasks_app = typer.Typer(no_args_is_help=True, help="Scheduled sync tasks.")


@tasks_app.command("add")
def tasks_add(
    tenant: Annotated[str, typer.Option(callback=check_id, help="Tenant id.")],
    connection: Annotated[str, typer.Option(callback=check_id, help="Connection id.")],
    mode: Annotated[SyncMode, typer.Option(help="pull, push or bidirectional.")] = SyncMode.PULL,
    priority: Annotated[Priority, typer.Option(help="high, normal or low.")] = Priority.NORMAL,
    interval: Annotated[int, typer.Option(min=1, help="Minutes between runs.")] = 60,
    delay: Annotated[int, typer.Option(min=0, help="Minutes until the first run (0 = due now).")] = 0,
    task_id: Annotated[
        str, typer.Option("--id", callback=check_optional_id, help=f"Task id ({ID_RULE}; generated when empty).")
    ] = "",
) -> None:
    """Schedule a sync of a connection and print the task as JSON; stderr says when the scheduler picks it up.
    A connection has one pull (or bidirectional) task, which covers all its entity types and holds their checkpoints:
    a second is refused."""

    async def add(store: DocumentStore) -> dict[str, Any]:
        conn = await read_named(store, Connection, "connection", connection, tenant)
        if mode in PULLING:
            await _refuse_a_second_pull(store, conn)
        now = now_utc()
        task = SyncTask(
            id=task_id or uuid.uuid4().hex,
            tenant_id=tenant,
            integration_id=conn.integration_id,
            connection_id=conn.id,
            sync_mode=mode,
            priority=priority,
            next_run_at=now + timedelta(minutes=delay),
            interval_minutes=interval,
            status_changed_at=now,
        )
        return await create_named(store, task, "task")

    added = public(run(with_store(add)))
    echo_json(added)
    typer.echo(pickup_note(SyncTask.model_validate(added)), err=True)


async def _refuse_a_second_pull(store: DocumentStore, connection: Connection) -> None:
    """Two pulling tasks would pull the connection twice, each from its own checkpoints (``sync run`` on one only)."""
    query = Query(filters=(Filter("connectionId", "==", connection.id),), partition_key=connection.tenant_id)
    tasks = [SyncTask.model_validate(doc) for doc in (await store.query(SyncTask.container, query)).items]
    pulling = sorted(task.id for task in tasks if task.sync_mode in PULLING)
    if pulling:
        raise AlreadyExists(
            f"connection {connection.id!r} of tenant {connection.tenant_id!r} already has pull task {pulling[0]!r},"
            " which covers all its entity types: change that one (`castiel tasks pause|retry|remove`) rather than"
            " add a second"
        )


def pickup_note(task: SyncTask) -> str:
    """When the scheduler queues ``task``: its first run at or after the task is due (the schedule is read from the
    app, as ``castiel status`` does), or, for a task due now, at once under ``castiel serve --run-timers-now``."""
    due_now = task.next_run_at <= now_utc()
    due = "due now" if due_now else f"due at {format_utc(task.next_run_at)}"
    try:
        host = collect_host(settings())
    except CastielError as exc:  # the task is added: a note that cannot be worked out must not fail the command
        host = {"scheduler": {"error": str(exc)}}
    scheduler = host["scheduler"]
    if "error" in scheduler:
        when = f"the scheduler's next run is unknown ({scheduler['error']})"
    else:
        # The scheduler queues what is due when it runs: its first occurrence at or after the due time.
        run_at = next_fire(scheduler["schedule"], task.next_run_at - timedelta(microseconds=1))
        when = f"the scheduler ({scheduler['function']}, {scheduler['schedule']}) queues it at {format_utc(run_at)}"
        if not host["serve"]["running"]:
            when += " if `castiel serve` runs on this data directory then"
    sooner = ", or at once when `castiel serve --run-timers-now` starts" if due_now else ""
    return f"task {task.id!r} is {due}: {when}{sooner}"


@tasks_app.command("list")
def tasks_list(
    status: Annotated[TaskStatus | None, typer.Option(help="Only tasks in this status.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tasks, due first, one line each (``--json``: an array)."""
    filters = (Filter("status", "==", status.value),) if status else ()
    query = Query(filters=filters, order_by=(("nextRunAt", "asc"),))
    page = run(with_store(lambda store: store.query(SyncTask.container, query)))
    echo_items(page.items, as_json, _line)


def _line(item: dict[str, Any]) -> str:
    task = SyncTask.model_validate(item)
    line = (
        f"{task.id}  {task.status.value:<12} {task.priority.value:<6} next={task.next_run_at:%Y-%m-%d %H:%M:%S}Z"
        f"  tenant={task.tenant_id} connection={task.connection_id}"
    )
    if task.paused_until is not None:
        line += f"  until={format_utc(task.paused_until)}"
    if task.last_error:
        line += f"  error={printable(task.last_error, _ERROR_SHOWN)}"
    return line


TaskId = Annotated[str, typer.Argument(callback=check_id, help="Task id.")]
TaskTenant = Annotated[
    str,
    typer.Option(callback=check_optional_id, help="The task's tenant (needed only when the id is in several tenants)."),
]
_ERROR_SHOWN = 120  # a list line shows the start of a task's last error; `--json` has all of it
_RETRYABLE = (TaskStatus.FAILED, TaskStatus.PAUSED)


@tasks_app.command("retry")
def tasks_retry(task_id: TaskId, tenant: TaskTenant = "") -> None:
    """Put a failed or paused task back to pending, due now, and print it as JSON."""

    async def retry(store: DocumentStore) -> dict[str, Any]:
        task = await find_named(store, SyncTask, "task", task_id, tenant)
        if task.status not in _RETRYABLE:
            raise PreconditionFailed(
                f"task {task.id!r} of tenant {task.tenant_id!r} is {task.status.value}: only a failed or paused task"
                " can be retried"
            )
        now = now_utc()
        return await _save(store, task, status=TaskStatus.PENDING, next_run_at=now, paused_until=None, last_error=None)

    echo_json(public(run(with_store(retry))))


@tasks_app.command("pause")
def tasks_pause(task_id: TaskId, tenant: TaskTenant = "") -> None:
    """Pause a task until ``tasks retry`` (the scheduler skips it; a pause the provider set becomes indefinite)."""

    async def pause(store: DocumentStore) -> dict[str, Any]:
        task = await find_named(store, SyncTask, "task", task_id, tenant)
        return await _save(store, task, status=TaskStatus.PAUSED, paused_until=None)

    echo_json(public(run(with_store(pause))))


@tasks_app.command("remove")
def tasks_remove(task_id: TaskId, tenant: TaskTenant = "") -> None:
    """Delete a task that is not running; a message already queued for it is skipped by the worker."""

    async def remove(store: DocumentStore) -> SyncTask:
        task = await find_named(store, SyncTask, "task", task_id, tenant)
        if task.status is TaskStatus.RUNNING:
            raise PreconditionFailed(
                f"task {task.id!r} of tenant {task.tenant_id!r} is running: pause it first (the worker then stops"
                " at its next step), or wait for the run to finish"
            )
        try:
            await store.delete(SyncTask.container, task.id, task.tenant_id, if_match=task.etag)
        except PreconditionFailed:
            raise _changed(task) from None
        return task

    task = run(with_store(remove))
    typer.echo(f"removed task {task.id!r} of tenant {task.tenant_id!r}")


async def _save(store: DocumentStore, task: SyncTask, *, status: TaskStatus, **changes: object) -> dict[str, Any]:
    changed = task.model_copy(update={"status": status, "status_changed_at": now_utc(), **changes})
    try:
        return await store.replace(SyncTask.container, changed.to_doc(), if_match=task.etag)
    except PreconditionFailed:
        raise _changed(task) from None


def _changed(task: SyncTask) -> PreconditionFailed:
    return PreconditionFailed(
        f"task {task.id!r} of tenant {task.tenant_id!r} changed while this command ran (the scheduler or a worker"
        " moved it): run the command again"
    )
