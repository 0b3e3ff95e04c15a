"""``castiel serve``, ``connections``, ``tasks``, ``queue`` and ``status``.

Every command works on whichever backends are configured (embedded under ``CASTIEL_DATA_DIR`` by default, Azure when
its settings are present), and builds only the backends it needs.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Annotated, Any

import typer

from castiel.cli.common import JsonFlag, echo_json, run, settings, with_queue, with_store
from castiel.cli.webhooks import webhooks_app
from castiel.errors import CastielError
from castiel.models import (
    Connection,
    Priority,
    Provider,
    Shard,
    SyncMode,
    SyncResult,
    SyncTask,
    TaskStatus,
    utcnow,
)
from castiel.ports import DocumentStore, Filter, MessageQueue, Query, ReceivedMessage
from castiel.settings import Settings
from castiel.sync.resubmit import resubmit_dead_letters

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Castiel sync: integration engine on Azure Functions."
)
tasks_app = typer.Typer(no_args_is_help=True, help="Scheduled sync tasks.")
connections_app = typer.Typer(no_args_is_help=True, help="Tenant connections to providers.")
queue_app = typer.Typer(no_args_is_help=True, help="Queues and their dead letters.")
app.add_typer(tasks_app, name="tasks")
app.add_typer(connections_app, name="connections")
app.add_typer(queue_app, name="queue")
app.add_typer(webhooks_app, name="webhooks")

# ---------------------------------------------------------------- serve


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTP port.")] = 7071,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    run_timers_now: Annotated[bool, typer.Option("--run-timers-now", help="Fire every timer once at start.")] = False,
    only: Annotated[str, typer.Option(help="Comma-separated function names to run (default: all).")] = "",
    app_ref: Annotated[str, typer.Option("--app", help="module:attribute of the FunctionApp.")] = "function_app:app",
) -> None:
    """Run function_app.py in one process: HTTP routes, timers and queue triggers, like the Functions host."""
    from castiel.devhost.host import HostOptions
    from castiel.devhost.host import serve as serve_host

    names = frozenset(name.strip() for name in only.split(",") if name.strip())
    try:
        settings()
        serve_host(HostOptions(port=port, host=host, run_timers_now=run_timers_now, only=names, app=app_ref))
    except CastielError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


# ---------------------------------------------------------------- connections


@connections_app.command("add")
def connections_add(
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    provider: Annotated[Provider, typer.Option(help="Provider.")],
    entity_types: Annotated[str, typer.Option("--entity-types", help="Comma-separated entity types.")] = "",
    connection_id: Annotated[str, typer.Option("--id", help="Connection id (generated when empty).")] = "",
    integration: Annotated[str, typer.Option(help="Integration id (defaults to the provider).")] = "",
    direction: Annotated[SyncMode, typer.Option(help="Sync direction.")] = SyncMode.BIDIRECTIONAL,
    base_url: Annotated[str, typer.Option("--base-url", help="Provider API base URL.")] = "",
) -> None:
    """Add a connection and print it as JSON."""
    connection = Connection(
        id=connection_id or uuid.uuid4().hex,
        tenant_id=tenant,
        integration_id=integration or provider.value,
        provider=provider,
        base_url=base_url or None,
        entity_types=[name.strip() for name in entity_types.split(",") if name.strip()],
        sync_direction=direction,
    )
    stored = run(with_store(lambda store: store.create(Connection.container, connection.to_doc())))
    echo_json(stored)


@connections_app.command("list")
def connections_list(tenant: Annotated[str, typer.Option(help="Only this tenant.")] = "") -> None:
    """List connections as JSON."""
    page = run(with_store(lambda store: store.query(Connection.container, Query(partition_key=tenant or None))))
    echo_json(page.items)


# ---------------------------------------------------------------- tasks


@tasks_app.command("add")
def tasks_add(
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    connection: Annotated[str, typer.Option(help="Connection id.")],
    mode: Annotated[SyncMode, typer.Option(help="pull, push or bidirectional.")] = SyncMode.PULL,
    priority: Annotated[Priority, typer.Option(help="high, normal or low.")] = Priority.NORMAL,
    interval: Annotated[int, typer.Option(help="Minutes between runs.")] = 60,
    delay: Annotated[int, typer.Option(help="Minutes until the first run (0 = due now).")] = 0,
    task_id: Annotated[str, typer.Option("--id", help="Task id (generated when empty).")] = "",
) -> None:
    """Schedule a sync of a connection and print the task as JSON."""

    async def add(store: DocumentStore) -> dict[str, Any]:
        conn = Connection.model_validate(await store.read(Connection.container, connection, tenant))
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
        return await store.create(SyncTask.container, task.to_doc())

    echo_json(run(with_store(add)))


@tasks_app.command("list")
def tasks_list(
    status: Annotated[TaskStatus | None, typer.Option(help="Only tasks in this status.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tasks, due first."""
    filters = (Filter("status", "==", status.value),) if status else ()
    query = Query(filters=filters, order_by=(("nextRunAt", "asc"),))
    page = run(with_store(lambda store: store.query(SyncTask.container, query)))
    if as_json:
        echo_json(page.items)
        return
    for doc in page.items:
        task = SyncTask.model_validate(doc)
        typer.echo(
            f"{task.id}  {task.status.value:<12} {task.priority.value:<6} next={task.next_run_at:%Y-%m-%d %H:%M:%S}Z"
            f"  tenant={task.tenant_id} connection={task.connection_id}"
        )


# ---------------------------------------------------------------- queue


def _queue_names(settings: Settings, queue: str | None) -> list[str]:
    return [queue] if queue else [settings.service_bus_queue, settings.service_bus_queue_outbound]


@queue_app.command("stats")
def queue_stats(
    queue: Annotated[str | None, typer.Argument(help="One queue (default: both).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Active, scheduled and dead-lettered counts per queue."""

    async def stats(mq: MessageQueue, settings: Settings) -> dict[str, dict[str, int]]:
        result = {}
        for name in _queue_names(settings, queue):
            counts = await mq.stats(name)
            result[name] = {
                "active": counts.active,
                "scheduled": counts.scheduled,
                "dead_lettered": counts.dead_lettered,
            }
        return result

    result = run(with_queue(stats))
    if as_json:
        echo_json(result)
        return
    for name, counts in result.items():
        typer.echo(f"{name:<20} " + "  ".join(f"{key}={value}" for key, value in counts.items()))


def _message_json(message: ReceivedMessage) -> dict[str, Any]:
    body: Any
    try:
        body = json.loads(message.body)
    except ValueError:
        body = message.body.decode("utf-8", errors="replace")
    return {
        "messageId": message.message_id,
        "sequenceNumber": message.sequence_number,
        "deliveryCount": message.delivery_count,
        "enqueuedTime": message.enqueued_time.isoformat(),
        "scheduledEnqueueTime": message.scheduled_enqueue_time.isoformat() if message.scheduled_enqueue_time else None,
        "correlationId": message.correlation_id,
        "applicationProperties": dict(message.application_properties),
        "deadLetterReason": message.dead_letter_reason,
        "deadLetterDescription": message.dead_letter_description,
        "body": body,
    }


def _peek(queue: str, max_messages: int, dead_letter: bool) -> None:
    async def peek(mq: MessageQueue, _: Settings) -> list[ReceivedMessage]:
        return await mq.peek(queue, max_messages=max_messages, sub_queue="dead_letter" if dead_letter else None)

    echo_json([_message_json(message) for message in run(with_queue(peek))])


@queue_app.command("peek")
def queue_peek(
    queue: Annotated[str, typer.Argument(help="Queue name.")],
    max_messages: Annotated[int, typer.Option("--max", help="How many.")] = 10,
    dead_letter: Annotated[bool, typer.Option("--dead-letter", help="Peek the dead-letter sub-queue.")] = False,
) -> None:
    """Show messages without locking them."""
    _peek(queue, max_messages, dead_letter)


@queue_app.command("dead-letters")
def queue_dead_letters(
    queue: Annotated[str, typer.Argument(help="Queue name.")],
    max_messages: Annotated[int, typer.Option("--max", help="How many.")] = 50,
) -> None:
    """Show dead-lettered messages with their reasons."""
    _peek(queue, max_messages, dead_letter=True)


@queue_app.command("resubmit")
def queue_resubmit(
    queue: Annotated[str, typer.Argument(help="Queue name.")],
    max_messages: Annotated[int, typer.Option("--max", help="At most this many.")] = 100,
) -> None:
    """Send dead-lettered messages back to their queue (retry counts reset), removing them from the dead letters."""
    count = run(with_queue(lambda mq, _: resubmit_dead_letters(mq, queue, max_messages=max_messages)))
    typer.echo(f"resubmitted {count} message(s) to {queue}")


# ---------------------------------------------------------------- status


async def collect_status(store: DocumentStore, queue: MessageQueue, settings: Settings) -> dict[str, Any]:
    """Tasks per status, shards per type, queue depths and the last results."""
    tasks = {
        status.value: await store.count(SyncTask.container, Query(filters=(Filter("status", "==", status.value),)))
        for status in TaskStatus
    }
    connections = await store.query(Connection.container, Query())
    shard_types = sorted({kind for doc in connections.items for kind in doc.get("entityTypes", [])})
    shards = {
        kind: await store.count(Shard.container, Query(filters=(Filter("shardType", "==", kind),)))
        for kind in shard_types
    }
    queues = {}
    for name in _queue_names(settings, None):
        counts = await queue.stats(name)
        queues[name] = {"active": counts.active, "scheduled": counts.scheduled, "dead_lettered": counts.dead_lettered}
    results = await store.query(SyncResult.container, Query(order_by=(("startedAt", "desc"),), limit=10))
    return {"tasks": tasks, "shards": shards, "queues": queues, "lastResults": results.items}


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """Tasks per status, shards per type, queue depths and the last results."""

    async def gather(store: DocumentStore) -> dict[str, Any]:
        return await with_queue(lambda queue, settings: collect_status(store, queue, settings))

    report = run(with_store(gather))
    if as_json:
        echo_json(report)
        return
    typer.echo("tasks:   " + "  ".join(f"{key}={value}" for key, value in report["tasks"].items()))
    typer.echo("shards:  " + ("  ".join(f"{key}={value}" for key, value in report["shards"].items()) or "none"))
    for name, counts in report["queues"].items():
        typer.echo(f"queue {name}: " + "  ".join(f"{key}={value}" for key, value in counts.items()))
    for result in report["lastResults"]:
        typer.echo(
            f"result {result.get('startedAt')} {result.get('status')} task={result.get('taskId')}"
            f" error={result.get('error') or '-'}"
        )
