"""The operator's commands end to end, as typed: ``connections add --mapping`` checked when added, ``sync run`` against
the sandbox over loopback (the same service as the worker), ``shards list|show``, ``conflicts list|resolve`` and
``status --json``."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.errors import RetryableError
from castiel.ratelimit.limiter import RateLimiter
from castiel.sandbox.app import build_app
from castiel.sandbox.state import Sandbox
from castiel.sync.results import ResultRecorder
from tests.integration.cli.helpers import castiel, castiel_json, invoke
from tests.integration.credentials.conftest import serving

RECORDS = 12
MAPPING = {"issue": {"shardType": "task", "fields": {"title": "title", "state": "state"}}}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[Sandbox, str]]:
    """The sandbox on a loopback port in a thread, so commands run in this thread can call it."""
    served = Sandbox(records=RECORDS)
    with serving(build_app(served)) as url:
        yield served, url


@pytest.fixture
def github(
    sandbox: tuple[Sandbox, str], data_dir: Path, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> Sandbox:
    """Tenant ``acme``'s GitHub connection ``gh`` (issues mapped onto ``task`` shards, conflicts left to a person)
    to the sandbox, with its credential and pull task."""
    served, url = sandbox
    served.reset()
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    mapping = data_dir.parent / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    castiel("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh", "--entity-types",
            "issue", "--base-url", f"{url}/github", "--settings", '{"repository": "acme/widgets"}',
            "--conflict-strategy", "manual", "--mapping", str(mapping))  # fmt: skip
    castiel("credentials", "add", "--tenant", "acme", "--connection", "gh", "--type", "bearer_token", "--value", "t")
    castiel("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "pull-gh")
    return served


def sync_run(*extra: str, expect: int = 0) -> dict[str, Any]:
    result = invoke("sync", "run", "--tenant", "acme", "--connection", "gh", *extra)
    assert result.exit_code == expect, result.output
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def open_issue_ids(served: Sandbox) -> list[str]:
    return [item.id for item in served.github.datasets["issue"].after(None) if "pull_request" not in item.body]


def test_sync_run_fills_shards_a_full_rerun_is_unchanged_and_an_edit_is_one_update(github: Sandbox) -> None:
    issues = open_issue_ids(github)

    first = sync_run()
    assert (first["status"], first["phase"], first["trigger"]) == ("succeeded", "complete", "manual")
    assert first["counts"]["created"] == first["counts"]["fetched"] == len(issues)
    assert sync_run("--full")["counts"]["unchanged"] == len(issues)

    github.edit("github", ids=[issues[0]])
    edited = sync_run()
    assert (edited["counts"]["updated"], edited["counts"]["created"]) == (1, 0)

    shards = castiel_json("shards", "list", "--tenant", "acme", "--type", "task", "--json")
    assert len(shards) == len(issues)
    assert {shard["shardType"] for shard in shards} == {"task"}
    assert sum(shard["data"]["title"].endswith("(edited)") for shard in shards) == 1
    shown = castiel_json("shards", "show", shards[0]["id"], "--tenant", "acme")
    assert shown == shards[0]
    assert "_etag" not in shown
    status = castiel_json("status", "--json")
    assert status["shards"] == {"task": len(issues)}
    assert status["conflicts"] == {"open": 0, "duplicateCandidates": 0}


def test_lists_are_one_line_each_and_say_when_they_stop_at_the_limit(github: Sandbox) -> None:
    sync_run()
    listed = invoke("shards", "list", "--tenant", "acme", "--limit", "3")
    lines = listed.stdout.splitlines()
    assert len(lines) == 3
    assert all("  task " in line and "ids=gh:" in line for line in lines)
    assert "more than 3" in listed.stderr
    assert "not found" in invoke("shards", "show", "nope", "--tenant", "acme").stderr


def test_a_progress_line_per_page_on_a_terminal(github: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("castiel.cli.sync.on_terminal", lambda: True)
    result = invoke("sync", "run", "--tenant", "acme", "--connection", "gh")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("issue page 1: ")
    assert f"{len(open_issue_ids(github))} fetched so far" in result.stderr


def test_a_conflict_waits_for_a_person_who_takes_a_side(github: Sandbox, data_dir: Path) -> None:
    sync_run()
    first = open_issue_ids(github)[0]
    (shard,) = [
        s for s in castiel_json("shards", "list", "--tenant", "acme", "--json") if s["externalIds"]["gh"] == first
    ]
    asyncio.run(edit_locally(data_dir, shard["id"], title="Renamed here"))
    (remote,) = github.edit("github", ids=[first])

    assert sync_run()["counts"]["conflicts"] == 1
    (conflict,) = castiel_json("conflicts", "list", "--tenant", "acme", "--json")
    assert (conflict["field"], conflict["localValue"], conflict["remoteValue"]) == (
        "title",
        "Renamed here",
        remote["title"],
    )
    assert castiel_json("status", "--json")["conflicts"]["open"] == 1
    line = castiel("conflicts", "list", "--tenant", "acme")
    assert f"{conflict['id']}  open" in line
    assert "rule=manual kept=local" in line

    assert invoke("conflicts", "resolve", conflict["id"], "--take", "neither").exit_code == 2
    resolved = castiel_json("conflicts", "resolve", conflict["id"], "--take", "remote")
    assert (resolved["status"], resolved["kept"]) == ("resolved", "remote")
    after = castiel_json("shards", "show", shard["id"], "--tenant", "acme")
    assert after["data"]["title"] == remote["title"]
    assert after["fieldSources"]["title"] == "gh"
    assert castiel_json("conflicts", "list", "--tenant", "acme", "--json") == []
    assert len(castiel_json("conflicts", "list", "--tenant", "acme", "--all", "--json")) == 1
    assert sync_run()["counts"]["conflicts"] == 0


def test_a_conflict_no_longer_open_is_refused_and_nothing_changes(github: Sandbox, data_dir: Path) -> None:
    sync_run()
    first = open_issue_ids(github)[0]
    (shard,) = [
        s for s in castiel_json("shards", "list", "--tenant", "acme", "--json") if s["externalIds"]["gh"] == first
    ]
    asyncio.run(edit_locally(data_dir, shard["id"], title="Renamed here"))
    (remote,) = github.edit("github", ids=[first])
    sync_run()
    (conflict,) = castiel_json("conflicts", "list", "--tenant", "acme", "--json")
    resolved = castiel_json("conflicts", "resolve", conflict["id"], "--take", "remote")
    before = castiel_json("shards", "show", shard["id"], "--tenant", "acme")

    again = invoke("conflicts", "resolve", conflict["id"], "--take", "local")

    assert again.exit_code == 1, again.output
    assert again.stderr == (
        f"error: conflict {conflict['id']} is not open: resolved by hand at {resolved['resolvedAt']},"
        " keeping the remote value\n"
    )
    assert castiel_json("shards", "show", shard["id"], "--tenant", "acme") == before
    assert before["data"]["title"] == remote["title"]
    (stored,) = castiel_json("conflicts", "list", "--tenant", "acme", "--all", "--json")
    assert stored == resolved


async def edit_locally(data_dir: Path, shard_id: str, **fields: Any) -> None:
    """A local edit of a shard, as ``castiel shards update`` will make it."""
    store = SqliteDocumentStore(data_dir / DATABASE_FILE)
    try:
        shard = await store.read("shards", shard_id, "acme")
        data = {**shard["data"], **fields}
        sources = {**shard["fieldSources"], **dict.fromkeys(fields, "local")}
        await store.replace("shards", {**shard, "data": data, "fieldSources": sources}, if_match=shard["_etag"])
    finally:
        await store.close()


def test_sync_run_says_why_it_cannot_run_and_exits_1(github: Sandbox) -> None:
    result = invoke("sync", "run", "--tenant", "acme", "--connection", "nope")
    assert (result.exit_code, result.stderr) == (1, "error: connection 'nope' of tenant 'acme' not found\n")
    castiel("tasks", "remove", "pull-gh")
    result = invoke("sync", "run", "--tenant", "acme", "--connection", "gh")
    assert result.exit_code == 1
    assert "has no pull or bidirectional sync task" in result.stderr
    assert "castiel tasks add --tenant acme --connection gh" in result.stderr


def test_an_unknown_entity_type_is_a_usage_error_and_the_task_stays_as_it_was(github: Sandbox) -> None:
    before = castiel_json("tasks", "list", "--json")
    result = invoke("sync", "run", "--tenant", "acme", "--connection", "gh", "--entity-type", "widget")
    assert result.exit_code == 2, result.output
    assert result.stderr == "error: github connection gh has no entity type 'widget' (it has: issue)\n"
    assert castiel_json("tasks", "list", "--json") == before
    assert castiel_json("status", "--json")["lastResults"] == []


def test_a_run_stopped_by_a_bug_before_the_pull_leaves_its_task_pending_not_running(
    github: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the bug's traceback file goes

    async def broken(*_: object, **__: object) -> Any:
        raise RuntimeError("boom at the rate check")

    monkeypatch.setattr(RateLimiter, "peek", broken)
    result = invoke("sync", "run", "--tenant", "acme", "--connection", "gh")
    assert result.exit_code == 1
    assert "unexpected RuntimeError: boom at the rate check" in result.stderr
    (task,) = castiel_json("tasks", "list", "--json")
    assert (task["status"], task["lastError"]) == ("pending", "stopped by RuntimeError: boom at the rate check")
    (last,) = castiel_json("status", "--json")["lastResults"]
    assert (last["status"], last["id"]) == ("failed", task["lastResultId"])


def test_a_store_failing_as_a_run_ends_leaves_its_task_pending_not_running(
    github: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish = ResultRecorder.finish

    async def unreachable_when_succeeding(self: ResultRecorder, status: str, error: str | None = None) -> Any:
        if status == "succeeded":
            raise RetryableError("database castiel.db is unreachable")
        return await finish(self, status, error)

    monkeypatch.setattr(ResultRecorder, "finish", unreachable_when_succeeding)
    failed = sync_run(expect=1)
    assert (failed["status"], failed["error"]) == ("failed", "database castiel.db is unreachable")
    (task,) = castiel_json("tasks", "list", "--json")
    assert (task["status"], task["lastResultId"]) == ("pending", failed["id"])


def test_a_failed_pull_prints_its_result_and_exits_1_with_the_reason(github: Sandbox) -> None:
    github.tokens.strict = True  # the credential's token is refused: a permanent failure, named
    failed = sync_run(expect=1)
    assert failed["status"] == "failed"
    tasks = castiel_json("tasks", "list", "--json")
    assert (tasks[0]["status"], tasks[0]["lastResultId"]) == ("failed", failed["id"])


@pytest.mark.parametrize(
    ("mapping", "problem"),
    [
        ({"pull": {"shardType": "task"}}, "entityMappings.pull: unknown entity type (the provider has: issue)"),
        ({"issue": {"shardType": "task", "fields": {"labels[x": "labels"}}}, "entityMappings.issue.fields"),
        ({"issue": {"fields": {"title": "title"}}}, "entityMappings.issue.shardType: Field required"),
    ],
)
def test_a_mapping_is_refused_with_its_reason_when_added_and_nothing_is_stored(
    data_dir: Path, mapping: dict[str, Any], problem: str
) -> None:
    path = data_dir.parent / "mapping.json"
    path.write_text(json.dumps(mapping))
    result = invoke("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh",
                    "--mapping", str(path))  # fmt: skip
    assert result.exit_code == 2
    assert problem in result.stderr
    assert not (data_dir / DATABASE_FILE).exists()


def test_a_mapping_file_that_is_not_json_is_a_usage_error(data_dir: Path) -> None:
    path = data_dir.parent / "mapping.json"
    path.write_text("{not json")
    result = invoke("connections", "add", "--tenant", "acme", "--provider", "github", "--mapping", str(path))
    assert result.exit_code == 2
    assert "is not a JSON file" in result.stderr


def test_connections_list_shows_the_mapping(github: Sandbox) -> None:
    (listed,) = castiel_json("connections", "list", "--json")
    assert listed["entityMappings"] == MAPPING
    assert castiel("connections", "list").rstrip().endswith("mapping=issue→task")
