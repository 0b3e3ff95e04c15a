"""``castiel shards update ID --tenant T --set field=value …`` as an operator types it: the shard is written and the
change queued on ``sync-outbound`` (origin local) for the connections of the shard type; bad input changes nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.models import OutboundChange
from tests.integration.cli.helpers import castiel, castiel_json, invoke

SHARD = {
    "id": "shard-1",
    "tenantId": "acme",
    "shardType": "task",
    "data": {"title": "Write the docs", "estimate": 3},
    "externalIds": {"gh": "1000000001"},
    "updatedAt": "2025-01-03T00:00:00.000000Z",
    "deleted": False,
}


def seed(data_dir: Path, *docs: dict[str, Any]) -> None:
    async def write() -> None:
        store = SqliteDocumentStore(data_dir / DATABASE_FILE)
        try:
            for doc in docs:
                await store.create("shards", doc)
        finally:
            await store.close()

    asyncio.run(write())


def queued(data_dir: Path) -> list[OutboundChange]:
    async def peek() -> list[OutboundChange]:
        queue = SqliteMessageQueue(data_dir / DATABASE_FILE)
        try:
            return [OutboundChange.from_json_bytes(m.body) for m in await queue.peek("sync-outbound", max_messages=50)]
        finally:
            await queue.close()

    return asyncio.run(peek())


@pytest.fixture
def shard(data_dir: Path) -> dict[str, Any]:
    castiel("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh")  # creates the data dir
    seed(data_dir, SHARD)
    return SHARD


def test_update_writes_the_fields_and_queues_a_local_change(data_dir: Path, shard: dict[str, Any]) -> None:
    result = invoke("shards", "update", "shard-1", "--tenant", "acme", "--set", "title=Write the README",
                    "--set", "estimate=5", "--set", 'note="8"')  # fmt: skip

    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written["data"] == {"title": "Write the README", "estimate": 5, "note": "8"}
    assert written["fieldSources"] == {"title": "local", "estimate": "local", "note": "local"}
    assert "queued" in result.stderr
    [change] = queued(data_dir)
    assert (change.origin, change.entity_id, change.entity_type, change.connection_id) == (
        "local",
        "shard-1",
        "task",
        None,
    )
    assert change.changes == {"title": "Write the README", "estimate": 5, "note": "8"}
    assert castiel_json("shards", "show", "shard-1", "--tenant", "acme")["data"]["estimate"] == 5


def test_setting_the_values_a_shard_has_queues_nothing(data_dir: Path, shard: dict[str, Any]) -> None:
    result = invoke("shards", "update", "shard-1", "--tenant", "acme", "--set", "estimate=3")
    assert result.exit_code == 0, result.output
    assert "unchanged" in result.stderr
    assert queued(data_dir) == []


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["shard-1", "--tenant", "acme", "--set", "title"], 2, "is not field=value"),
        (["shard-1", "--tenant", "acme", "--set", "no such=1"], 2, "is not field=value"),
        (["shard-1", "--tenant", "acme"], 2, "--set"),
        (["nope", "--tenant", "acme", "--set", "title=x"], 1, "shard 'nope' of tenant 'acme' not found"),
        (["shard-1", "--tenant", "other", "--set", "title=x"], 1, "not found"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    data_dir: Path, shard: dict[str, Any], args: list[str], code: int, says: str
) -> None:
    result = invoke("shards", "update", *args)
    assert result.exit_code == code
    assert says in result.output
    assert "Traceback" not in result.output
    assert queued(data_dir) == []
    assert castiel_json("shards", "show", "shard-1", "--tenant", "acme")["data"] == SHARD["data"]


GITHUB_TASKS = {
    "issue": {"shardType": "task", "fields": {"title": "title", "number": {"field": "number", "readOnly": True}}}
}
NOTION_TASKS = {"page": {"shardType": "task", "fields": {"properties.Name.title[0].text.content": "title",
                                                         "properties.Estimate.number": "estimate"}}}  # fmt: skip


def connect(data_dir: Path, connection_id: str, provider: str, mapping: dict[str, Any], *extra: str) -> None:
    path = data_dir.parent / f"{connection_id}.json"
    path.write_text(json.dumps(mapping))
    castiel("connections", "add", "--tenant", "acme", "--provider", provider, "--id", connection_id,
            "--mapping", str(path), *extra)  # fmt: skip


@pytest.fixture
def task(data_dir: Path) -> dict[str, Any]:
    """Shard ``shard-1`` of type ``task``, synced by GitHub connection ``gh`` (which owns ``number`` read-only)."""
    connect(data_dir, "gh", "github", GITHUB_TASKS)
    seeded = {**SHARD, "data": {"title": "Write the docs", "estimate": 3, "number": 21}}
    seed(data_dir, seeded)
    return seeded


def test_a_field_only_read_only_connections_map_is_refused_and_nothing_changes(
    data_dir: Path, task: dict[str, Any]
) -> None:
    result = invoke("shards", "update", "shard-1", "--tenant", "acme", "--set", "title=Pushed by hand",
                    "--set", "number=999")  # fmt: skip

    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "error: read-only on the connections that sync task shards, and written by none: number by gh. A local value"
        " would never go out, and would hide the provider's own; nothing was changed\n"
    )
    assert queued(data_dir) == []
    assert castiel_json("shards", "show", "shard-1", "--tenant", "acme")["data"] == task["data"]


def test_the_update_says_which_fields_do_not_go_out_to_which_connection(data_dir: Path, task: dict[str, Any]) -> None:
    connect(data_dir, "notion", "notion", {"page": {**NOTION_TASKS["page"], "fields": {
        **NOTION_TASKS["page"]["fields"], "properties.Number.number": "number"}}})  # fmt: skip
    connect(data_dir, "archive", "notion", NOTION_TASKS, "--direction", "pull")

    result = invoke("shards", "update", "shard-1", "--tenant", "acme", "--set", "title=Pushed by hand",
                    "--set", "number=999", "--set", "estimate=3", "--set", "note=x")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "queued: note, number, title of shard shard-1 go out to gh, notion",
        "not to archive: note, number (not in its mapping)",
        "not to archive: title (it syncs pull only)",
        "not to gh: note (not in its mapping)",
        "not to gh: number (read-only there)",
        "not to notion: note (not in its mapping)",
    ]
    [change] = queued(data_dir)
    assert change.changes == {"title": "Pushed by hand", "number": 999, "note": "x"}
