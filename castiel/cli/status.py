"""``castiel status``: which data directory; tasks per status, shards per type, queue depths and the last results."""

from __future__ import annotations

from typing import Any

import typer

from castiel.backends.data_dir import shown
from castiel.cli.common import JsonFlag, echo_json, run, settings, with_queue, with_store
from castiel.cli.queue import queue_names
from castiel.models import (
    Connection,
    Shard,
    SyncResult,
    SyncTask,
    TaskStatus,
)
from castiel.ports import DocumentStore, Filter, MessageQueue, Query
from castiel.settings import Settings


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
    for name in queue_names(settings, None):
        counts = await queue.stats(name)
        queues[name] = {"active": counts.active, "scheduled": counts.scheduled, "dead_lettered": counts.dead_lettered}
    results = await store.query(SyncResult.container, Query(order_by=(("startedAt", "desc"),), limit=10))
    return {"tasks": tasks, "shards": shards, "queues": queues, "lastResults": results.items}


def status(as_json: JsonFlag = False) -> None:
    """Which data directory; tasks per status, shards per type, queue depths and the last results."""

    async def gather(store: DocumentStore) -> dict[str, Any]:
        return await with_queue(lambda queue, config: collect_status(store, queue, config))

    counts = run(with_store(gather))  # first: a missing or unusable data directory is the error to report
    report = {"dataDir": shown(settings().data_dir), **counts}
    if as_json:
        echo_json(report)
        return
    typer.echo(f"data directory: {report['dataDir']}")
    typer.echo("tasks:   " + "  ".join(f"{key}={value}" for key, value in report["tasks"].items()))
    typer.echo("shards:  " + ("  ".join(f"{key}={value}" for key, value in report["shards"].items()) or "none"))
    for name, counts in report["queues"].items():
        typer.echo(f"queue {name}: " + "  ".join(f"{key}={value}" for key, value in counts.items()))
    for result in report["lastResults"]:
        typer.echo(
            f"result {result.get('startedAt')} {result.get('status')} task={result.get('taskId')}"
            f" error={result.get('error') or '-'}"
        )
