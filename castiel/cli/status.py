"""``castiel status``: which data directory, whether a ``serve`` runs on it and when the scheduler fires next; then
tasks per status, live shards per type, open conflicts and duplicate candidates, queue depths and the last results."""

from __future__ import annotations

from typing import Any

import typer

from castiel.backends import data_dir_redis
from castiel.backends.data_dir import shown
from castiel.backends.redis_client import redacted
from castiel.cli.common import JsonFlag, echo_json, public, run, settings, with_queue, with_store
from castiel.cli.queue import queue_names
from castiel.clock import Clock, now_utc, system_clock
from castiel.devhost.instance import running_serve
from castiel.devhost.timers import next_fire, timer_schedule
from castiel.errors import CastielError, ConfigError
from castiel.models import Conflict, ConflictStatus, Connection, Shard, SyncResult, SyncTask, TaskStatus, format_utc
from castiel.ports import DocumentStore, Filter, MessageQueue, Query
from castiel.settings import Settings
from castiel.sync.pull import mapping_of

SCHEDULER_FUNCTION = "sync_scheduler"
DEFAULT_APP = "function_app:app"


async def collect_status(store: DocumentStore, queue: MessageQueue, settings: Settings) -> dict[str, Any]:
    """Tasks per status, shards per type, queue depths and the last results (``public``, as every command prints a
    stored thing)."""
    tasks = {
        status.value: await store.count(SyncTask.container, Query(filters=(Filter("status", "==", status.value),)))
        for status in TaskStatus
    }
    connections = await store.query(Connection.container, Query())
    shard_types = sorted({kind for doc in connections.items for kind in _shard_types(Connection.model_validate(doc))})
    live = Filter("deleted", "==", False)
    shards = {
        kind: await store.count(Shard.container, Query(filters=(Filter("shardType", "==", kind), live)))
        for kind in shard_types
    }
    waiting = Filter("status", "==", ConflictStatus.OPEN.value)
    conflicts = {
        "open": await store.count(Conflict.container, Query(filters=(waiting, Filter("kind", "==", "field")))),
        "duplicateCandidates": await store.count(
            Conflict.container, Query(filters=(waiting, Filter("kind", "==", "duplicate")))
        ),
    }
    queues = {}
    for name in queue_names(settings, None):
        counts = await queue.stats(name)
        queues[name] = {"active": counts.active, "scheduled": counts.scheduled, "dead_lettered": counts.dead_lettered}
    results = await store.query(SyncResult.container, Query(order_by=(("startedAt", "desc"),), limit=10))
    last = [public(result) for result in results.items]
    return {"tasks": tasks, "shards": shards, "conflicts": conflicts, "queues": queues, "lastResults": last}


def _shard_types(connection: Connection) -> set[str]:
    """The shard types a connection's records land in: its entity mapping's, for the entity types it syncs."""
    try:
        mapping = mapping_of(connection)
    except ConfigError:
        return set()  # no adapter, or a mapping edited by hand past the check when it was set: sync reports it
    known = mapping.entity_types
    return {mapping.entity(name).shard_type for name in connection.entity_types or known if name in known}


def collect_host(settings: Settings, clock: Clock = system_clock) -> dict[str, Any]:
    """The data directory, its running ``serve`` (if any), the Redis in use and the scheduler's next run."""
    serve = running_serve(settings.data_dir)
    app = (serve.app if serve is not None else None) or DEFAULT_APP
    try:
        schedule = timer_schedule(app, SCHEDULER_FUNCTION)
    except (CastielError, ImportError) as exc:
        scheduler: dict[str, Any] = {"function": SCHEDULER_FUNCTION, "app": app, "error": str(exc)}
    else:
        next_run = next_fire(schedule, now_utc(clock))
        scheduler = {"function": SCHEDULER_FUNCTION, "schedule": schedule, "nextRunAt": format_utc(next_run)}
    return {
        "dataDir": shown(settings.data_dir),
        "serve": {"running": True, **serve.as_json()} if serve is not None else {"running": False},
        "redis": _redis(settings),
        "scheduler": scheduler,
    }


def _redis(settings: Settings) -> dict[str, Any]:
    if settings.redis_url is not None:
        return {"url": redacted(settings.redis_url), "embedded": False}
    record = data_dir_redis.read_record(settings.data_dir)
    if record is None or not record.is_live():
        return {"embedded": True, "running": False}
    return {"embedded": True, "running": True, **record.as_json()}


def status(as_json: JsonFlag = False) -> None:
    """Which data directory, whether a serve runs on it and when the scheduler fires next; then tasks per status,
    shards per type, queue depths and the last results."""

    async def gather(store: DocumentStore) -> dict[str, Any]:
        return await with_queue(lambda queue, config: collect_status(store, queue, config))

    counts = run(with_store(gather))  # first: a missing or unusable data directory is the error to report
    report = {**collect_host(settings()), **counts}
    if as_json:
        echo_json(report)
        return
    for line in _host_lines(report):
        typer.echo(line)
    typer.echo("tasks:   " + "  ".join(f"{key}={value}" for key, value in report["tasks"].items()))
    typer.echo("shards:  " + ("  ".join(f"{key}={value}" for key, value in report["shards"].items()) or "none"))
    typer.echo("conflicts: " + "  ".join(f"{key}={value}" for key, value in report["conflicts"].items()))
    for name, counts in report["queues"].items():
        typer.echo(f"queue {name}: " + "  ".join(f"{key}={value}" for key, value in counts.items()))
    for result in report["lastResults"]:
        typer.echo(_result_line(result))


def _result_line(result: dict[str, Any]) -> str:
    """A pull's result names its task; an outbound change's, its shard (``-`` when it had none to push)."""
    subject = f"task={result['taskId']}" if result.get("taskId") else f"shard={result.get('shardId') or '-'}"
    return f"result {result.get('startedAt')} {result.get('status')} {subject} error={result.get('error') or '-'}"


def _host_lines(report: dict[str, Any]) -> list[str]:
    serve, redis, scheduler = report["serve"], report["redis"], report["scheduler"]
    if serve["running"]:
        serving = f"running, pid {serve['pid']} on {serve['url'] or '(starting)'} since {serve['startedAt']}"
    else:
        serving = "not running on this data directory"
    if not redis["embedded"]:
        redis_line = f"{redis['url']} (REDIS_URL)"
    elif redis["running"]:
        redis_line = f"embedded, {redis['url']} (pid {redis['pid']})"
    else:
        redis_line = "embedded, not running (started by the first serve or command that needs it)"
    if "error" in scheduler:
        next_run = f"unknown: {scheduler['error']}"
    else:
        next_run = f"{scheduler['nextRunAt']} ({scheduler['function']}, {scheduler['schedule']})"
        if not serve["running"]:
            next_run += " once `castiel serve` runs"
    return [
        f"data directory: {report['dataDir']}",
        f"serve:   {serving}",
        f"redis:   {redis_line}",
        f"scheduler: next run {next_run}",
    ]
