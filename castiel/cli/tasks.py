"""``castiel tasks``: scheduled syncs of a connection."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

import typer

from castiel.cli.common import JsonFlag, echo_items, echo_json, public, run, with_store
from castiel.cli.flags import ID_RULE, check_optional_id
from castiel.cli.lookup import create_named, read_named
from castiel.models import (
    Connection,
    Priority,
    SyncMode,
    SyncTask,
    TaskStatus,
    utcnow,
)
from castiel.ports import DocumentStore, Filter, Query

tasks_app = typer.Typer(no_args_is_help=True, help="Scheduled sync tasks.")


@tasks_app.command("add")
def tasks_add(
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    connection: Annotated[str, typer.Option(help="Connection id.")],
    mode: Annotated[SyncMode, typer.Option(help="pull, push or bidirectional.")] = SyncMode.PULL,
    priority: Annotated[Priority, typer.Option(help="high, normal or low.")] = Priority.NORMAL,
    interval: Annotated[int, typer.Option(min=1, help="Minutes between runs.")] = 60,
    delay: Annotated[int, typer.Option(min=0, help="Minutes until the first run (0 = due now).")] = 0,
    task_id: Annotated[
        str, typer.Option("--id", callback=check_optional_id, help=f"Task id ({ID_RULE}; generated when empty).")
    ] = "",
) -> None:
    """Schedule a sync of a connection and print the task as JSON."""

    async def add(store: DocumentStore) -> dict[str, Any]:
        conn = await read_named(store, Connection, "connection", connection, tenant)
        task = SyncTask(
            id=task_id or uuid.uuid4().hex,
            tenant_id=tenant,
            integration_id=conn.integration_id,
            connection_id=conn.id,
            sync_mode=mode,
            priority=priority,
            next_run_at=utcnow() + timedelta(minutes=delay),
            interval_minutes=interval,
            status_changed_at=utcnow(),
        )
        return await create_named(store, task, "task")

    echo_json(public(run(with_store(add))))


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
    return (
        f"{task.id}  {task.status.value:<12} {task.priority.value:<6} next={task.next_run_at:%Y-%m-%d %H:%M:%S}Z"
        f"  tenant={task.tenant_id} connection={task.connection_id}"
    )
