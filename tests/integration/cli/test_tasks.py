"""``castiel tasks retry / pause / remove`` on the embedded store, checked against the real scheduler."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import Clock, now_utc, system_clock
from castiel.devhost.timers import next_fire, timer_schedule
from castiel.models import SyncTask, TaskStatus, format_utc
from castiel.sync.scheduler import SyncScheduler
from tests.integration.cli.helpers import castiel, castiel_json, invoke

THIRTY_DAYS = 30 * 24 * 3600.0


def run_scheduler(data_dir: Path, clock: Clock = system_clock) -> int:
    """One pass of the real scheduler over the data directory; how many tasks it queued."""

    async def once() -> int:
        store = SqliteDocumentStore(data_dir / DATABASE_FILE)
        queue = SqliteMessageQueue(data_dir / DATABASE_FILE)
        try:
            scheduler = SyncScheduler(
                store, queue, queue_name="sync-inbound", batch_size=10, stuck_timeout=timedelta(hours=1), clock=clock
            )
            return (await scheduler.run()).queued
        finally:
            await queue.close()
            await store.close()

    return asyncio.run(once())


def set_status(data_dir: Path, status: TaskStatus, tenant: str = "acme", **changes: Any) -> None:
    """Move task t1 as the worker would."""

    async def write() -> None:
        store = SqliteDocumentStore(data_dir / DATABASE_FILE)
        try:
            task = SyncTask.model_validate(await store.read(SyncTask.container, "t1", tenant))
            moved = task.model_copy(update={"status": status, **changes})
            await store.replace(SyncTask.container, moved.to_doc(), if_match=task.etag)
        finally:
            await store.close()

    asyncio.run(write())


def status_of(tenant: str = "acme") -> str:
    tasks = castiel_json("tasks", "list", "--json")
    (task,) = [task for task in tasks if task["tenantId"] == tenant]
    return str(task["status"])


@pytest.mark.parametrize("status", [TaskStatus.FAILED, TaskStatus.PAUSED])
def test_retry_puts_a_failed_or_paused_task_back_to_pending_due_now(seeded: Path, status: TaskStatus) -> None:
    castiel("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t1", "--delay", "120")
    set_status(seeded, status, last_error="bad config")

    retried = castiel_json("tasks", "retry", "t1")

    assert retried["status"] == "pending"
    assert "lastError" not in retried
    assert "pausedUntil" not in retried
    # Added due in two hours, the task is queued by a run now: retry made it due now.
    assert run_scheduler(seeded) == 1
    assert status_of() == "queued"


def test_a_paused_task_is_skipped_by_every_scheduler_run_until_it_is_retried(seeded: Path) -> None:
    castiel("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t1")

    paused = castiel_json("tasks", "pause", "t1")

    assert paused["status"] == "paused"
    assert "pausedUntil" not in paused
    far_ahead = system_clock() + THIRTY_DAYS
    assert run_scheduler(seeded, clock=lambda: far_ahead) == 0
    assert status_of() == "paused"
    castiel("tasks", "retry", "t1")
    assert run_scheduler(seeded) == 1


def test_pausing_a_task_the_provider_paused_makes_the_pause_indefinite(seeded: Path) -> None:
    castiel("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t1")
    set_status(seeded, TaskStatus.PAUSED, paused_until=now_utc() + timedelta(hours=1))

    assert "pausedUntil" not in castiel_json("tasks", "pause", "t1")
    far_ahead = system_clock() + THIRTY_DAYS
    assert run_scheduler(seeded, clock=lambda: far_ahead) == 0


def test_a_task_line_shows_until_when_its_pause_ends_and_its_last_error_on_one_line(seeded: Path) -> None:
    castiel("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t1")
    until = now_utc() + timedelta(hours=1)
    set_status(seeded, TaskStatus.PAUSED, paused_until=until, last_error="429 from github:\nslow down " + "x" * 300)

    (line,) = castiel("tasks", "list").splitlines()
    assert f"  until={format_utc(until)}  error=429 from github:\\nslow down x" in line
    assert line.endswith("…(+207 chars)")


def test_remove_deletes_the_task(seeded: Path) -> None:
    castiel("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t1")
    assert castiel("tasks", "remove", "t1") == "removed task 't1' of tenant 'acme'\n"
    assert castiel_json("tasks", "list", "--json") == []


@pytest.mark.parametrize(
    ("status", "command", "refusal"),
    [
        (TaskStatus.PENDING, "retry", "task 't1' of tenant 'acme' is pending: only a failed or paused task"),
        (TaskStatus.RUNNING, "retry", "task 't1' of tenant 'acme' is running: only a failed or paused task can be"),
        (TaskStatus.NEEDS_REAUTH, "retry", "task 't1' of tenant 'acme' is needs_reauth: only a failed or paused"),
        (TaskStatus.RUNNING, "remove", "task 't1' of tenant 'acme' is running: pause it first"),
    ],
)
def test_a_command_the_tasks_state_refuses_is_one_line_exit_1_and_changes_nothing(
    seeded: Path, status: TaskStatus, command: str, refusal: str
) -> None:
    castiel("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t1")
    set_status(seeded, status)
    before = castiel_json("tasks", "list", "--json")

    result = invoke("tasks", command, "t1")

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {refusal}"), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert castiel_json("tasks", "list", "--json") == before


def test_an_id_in_two_tenants_needs_tenant_and_then_touches_only_that_tenants_task(seeded: Path) -> None:
    castiel("connections", "add", "--tenant", "globex", "--provider", "github", "--id", "gh")
    for tenant in ("acme", "globex"):
        castiel("tasks", "add", "--tenant", tenant, "--connection", "gh", "--id", "t1")

    ambiguous = invoke("tasks", "pause", "t1")
    assert ambiguous.exit_code == 2
    assert ambiguous.stderr.startswith("error: Invalid value: task 't1' exists in tenants acme, globex: name one")

    castiel("tasks", "pause", "t1", "--tenant", "globex")
    assert (status_of("acme"), status_of("globex")) == ("pending", "paused")


@pytest.mark.parametrize("delay", ["0", "90"])
def test_add_prints_the_task_on_stdout_and_when_the_scheduler_picks_it_up_on_stderr(seeded: Path, delay: str) -> None:
    result = invoke("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t1", "--delay", delay)

    assert result.exit_code == 0, result.output
    task = SyncTask.model_validate(json.loads(result.stdout))
    schedule = timer_schedule("function_app:app", "sync_scheduler")
    assert schedule == "0 0 * * * *"
    picked_up = next_fire(schedule, task.next_run_at - timedelta(microseconds=1))
    (note,) = result.stderr.splitlines()
    assert f"the scheduler (sync_scheduler, {schedule}) queues it at {format_utc(picked_up)}" in note
    assert "if `castiel serve` runs on this data directory then" in note
    if delay == "0":
        assert note.startswith("task 't1' is due now: ")
        assert note.endswith(", or at once when `castiel serve --run-timers-now` starts")
    else:
        assert note.startswith(f"task 't1' is due at {format_utc(task.next_run_at)}: ")
        assert "--run-timers-now" not in note
