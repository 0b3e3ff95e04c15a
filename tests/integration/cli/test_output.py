"""What ``castiel`` prints: list commands with ``--json`` in one shape, ``--version``, and help without ``<bool>``."""

from __future__ import annotations

import asyncio
import json
import re
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup

from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.cli import app
from castiel.clock import now_utc
from castiel.models import SyncResult
from tests.integration.cli.helpers import castiel, castiel_json, dead_letter_one

REPO = Path(__file__).resolve().parents[3]
CAMEL_CASE = re.compile(r"[a-z]+(?:[A-Z][a-z0-9]*)*")

LIST_COMMANDS = [
    ["connections", "list"],
    ["tasks", "list"],
    ["queue", "peek", "sync-inbound", "--dead-letter"],
    ["queue", "dead-letters", "sync-inbound"],
    ["webhooks", "list"],
]


@pytest.fixture
def one_of_each(seeded: Path) -> Path:
    castiel("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t1")
    dead_letter_one(seeded, "sync-inbound", "m-1")
    castiel("webhooks", "add", "--tenant", "acme", "--connection", "gh", "--provider", "github", "--secret", "s")
    return seeded


@pytest.mark.parametrize("command", LIST_COMMANDS, ids=" ".join)
def test_every_list_command_prints_a_json_array_of_camel_case_objects_or_one_line_each(
    one_of_each: Path, command: list[str]
) -> None:
    (item,) = castiel_json(*command, "--json")
    assert all(CAMEL_CASE.fullmatch(key) for key in item), sorted(item)
    lines = castiel(*command).splitlines()
    assert len(lines) == 1
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[0])


def test_status_json_prints_last_results_without_the_stores_bookkeeping(seeded: Path) -> None:
    result = SyncResult(
        id="r1", tenant_id="acme", task_id="t1", connection_id="gh", status="succeeded", started_at=now_utc(),
        correlation_id="c1",
    )  # fmt: skip

    async def store_result() -> None:
        store = SqliteDocumentStore(seeded / DATABASE_FILE)
        try:
            await store.create(SyncResult.container, result.to_doc())
        finally:
            await store.close()

    asyncio.run(store_result())
    (shown,) = castiel_json("status", "--json")["lastResults"]
    assert shown == json.loads(json.dumps(result.to_doc(), default=str))
    assert not any(key.startswith("_") for key in shown), sorted(shown)


@pytest.mark.parametrize(
    ("add", "listing"),
    [
        (["connections", "add", "--tenant", "acme", "--provider", "notion", "--id", "n1"], ["connections", "list"]),
        (["tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t2"], ["tasks", "list"]),
    ],
    ids=["connections", "tasks"],
)
def test_what_add_prints_is_what_list_json_prints(seeded: Path, add: list[str], listing: list[str]) -> None:
    added = castiel_json(*add)
    assert not any(key.startswith("_") for key in added)
    assert added in castiel_json(*listing, "--json")


def test_list_lines_name_the_item_and_its_state(one_of_each: Path) -> None:
    connection = "gh  github     tenant=acme direction=bidirectional entities=issue status=active"
    assert castiel("connections", "list") == f"{connection}\n"
    assert castiel("tasks", "list").startswith("t1  pending")
    (line,) = castiel("queue", "dead-letters", "sync-inbound").splitlines()
    assert line.startswith("#1 m-1 deliveries=1 enqueued=")
    assert line.endswith("""reason='PermanentError: bad config' body={"x":1}""")


def test_version_is_the_installed_distributions(data_dir: Path) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert version("castiel-sync") == project["version"]
    assert castiel("--version") == f"castiel {project['version']}\n"


def every_command_path(group: TyperGroup, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            paths += every_command_path(command, (*path, name))
        else:
            paths.append((*path, name))
    return paths


def flags_of(path: tuple[str, ...]) -> list[str]:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return [opt for param in command.params if getattr(param, "is_flag", False) for opt in param.opts]


@pytest.mark.parametrize("path", every_command_path(typer.main.get_group(app)), ids=lambda path: " ".join(path) or "-")
def test_help_shows_flags_without_a_value(path: tuple[str, ...]) -> None:
    shown = castiel(*path, "--help")
    assert "<bool>" not in shown
    for flag in [*flags_of(path), "--help"]:
        assert re.search(rf"^\s+{re.escape(flag)}\s{{2,}}\S", shown, re.MULTILINE), (flag, shown)
