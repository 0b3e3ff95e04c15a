"""Bad input to any ``castiel`` command: one line naming the problem, exit 2 (usage) or 1 (runtime), no traceback,
nothing changed."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.cli import common as cli_common
from castiel.cli import queue as cli_queue
from castiel.models import Connection, SyncTask
from castiel.ports import Query
from castiel.settings import BACKEND_SELECTORS
from tests.integration.cli.helpers import castiel, invoke

A_DIRECTORY = "<a directory>"  # replaced by a real directory
TASK = ("tasks", "add", "--tenant", "acme", "--connection", "gh")
CONNECTION = ("connections", "add", "--tenant", "acme", "--provider", "github")
AT_LEAST_1 = "'{}': Input should be greater than or equal to 1"
VERIFY = ("webhooks", "verify", "--provider", "github", "--secret", "s", "--body-file")

BAD_INPUT = [
    pytest.param([*TASK, "--interval", "0"], 2, AT_LEAST_1.format("--interval"), id="interval-0"),
    pytest.param([*TASK, "--interval", "soon"], 2, "'--interval'", id="interval-not-a-number"),
    pytest.param(
        [*TASK, "--delay", "-5"], 2, "'--delay': Input should be greater than or equal to 0", id="negative-delay"
    ),
    pytest.param([*TASK, "--id", "a/b"], 2, "'--id': 'a/b' is not a valid id", id="task-id-with-slash"),
    pytest.param([*TASK[:-1], "nope"], 1, "connection 'nope' of tenant 'acme' not found", id="unknown-connection"),
    pytest.param(
        [*TASK, "--id", "t1", "--mode", "push"], 1, "task 't1' of tenant 'acme' already exists", id="task-id-taken"
    ),
    pytest.param(
        [*TASK, "--id", "t2"],
        1,
        "connection 'gh' of tenant 'acme' already has pull task 't1', which covers all its entity types",
        id="second-pull-task",
    ),
    pytest.param([*TASK, "--mode", "bidirectional"], 1, "already has pull task 't1'", id="second-pulling-task"),
    pytest.param([*TASK, "--priority", "urgent"], 2, "'--priority'", id="unknown-priority"),
    pytest.param(list(TASK[:4]), 2, "Missing option '--connection'", id="missing-option"),
    pytest.param([*CONNECTION[:3], "", *CONNECTION[4:]], 2, "'--tenant': '' is not", id="empty-tenant"),
    pytest.param([*CONNECTION, "--id", "a/b"], 2, "'--id': 'a/b' is not a valid id", id="connection-id-with-slash"),
    pytest.param([*CONNECTION[:3], "Acme", *CONNECTION[4:]], 2, "'Acme'", id="upper-case-tenant"),
    pytest.param([*CONNECTION, "--id", "a--b"], 2, "'a--b' is not a valid id", id="double-hyphen-id"),
    pytest.param([*CONNECTION, "--id", "x" * 37], 2, "is not a valid id", id="id-too-long"),
    pytest.param(
        [*CONNECTION, "--id", "gh"], 1, "connection 'gh' of tenant 'acme' already exists", id="connection-taken"
    ),
    pytest.param(
        [*CONNECTION, "--base-url", "ftp://example.com"], 2, "'ftp://example.com' is not an http(s) URL", id="ftp-url"
    ),
    pytest.param([*CONNECTION, "--base-url", "api.github.com"], 2, "is not an http(s) URL", id="url-without-scheme"),
    pytest.param([*CONNECTION, "--base-url", "https://x:99999"], 2, "is not an http(s) URL", id="url-bad-port"),
    pytest.param([*CONNECTION, "--provider", "myspace"], 2, "'--provider'", id="unknown-provider"),
    pytest.param([*VERIFY, A_DIRECTORY], 2, "is a directory", id="body-file-is-a-directory"),
    pytest.param([*VERIFY, "/no/such/body.json"], 2, "does not exist", id="body-file-missing"),
    pytest.param(
        ["queue", "stats", "nosuch"],
        2,
        "no queue 'nosuch': the queues are sync-inbound and sync-outbound",
        id="stats-unknown-queue",
    ),
    pytest.param(["queue", "peek", "nosuch"], 2, "no queue 'nosuch'", id="peek-unknown-queue"),
    pytest.param(["queue", "dead-letters", "nosuch"], 2, "no queue 'nosuch'", id="dead-letters-unknown-queue"),
    pytest.param(["queue", "resubmit", "nosuch"], 2, "no queue 'nosuch'", id="resubmit-unknown-queue"),
    pytest.param(
        ["queue", "peek", "sync-inbound", "--max", "-1"], 2, AT_LEAST_1.format("--max"), id="peek-max-negative"
    ),
    pytest.param(["queue", "dead-letters", "sync-inbound", "--max", "0"], 2, "'--max'", id="dead-letters-max-0"),
    pytest.param(["queue", "resubmit", "sync-inbound", "--max", "-1"], 2, "'--max'", id="resubmit-max-negative"),
    pytest.param(["tasks", "retry", "nope"], 1, "task 'nope' not found", id="retry-unknown-task"),
    pytest.param(
        ["tasks", "pause", "nope", "--tenant", "acme"], 1, "task 'nope' of tenant 'acme' not found", id="pause-unknown"
    ),
    pytest.param(["tasks", "remove", "nope"], 1, "task 'nope' not found", id="remove-unknown-task"),
    pytest.param(
        ["tasks", "retry", "t1"], 1, "task 't1' of tenant 'acme' is pending: only a failed", id="retry-pending"
    ),
    pytest.param(["connections", "remove", "nope"], 1, "connection 'nope' not found", id="remove-unknown-connection"),
    pytest.param(["connections", "remove", "gh"], 1, "is used by task(s) t1", id="remove-connection-in-use"),
    pytest.param(["tasks", "launch"], 2, "No such command 'launch'", id="unknown-command"),
    pytest.param(["tasks", "remove", "bad id!"], 2, "'bad id!' is not a valid id", id="remove-malformed-task-id"),
    pytest.param(["tasks", "retry", "t1", "--tenant", "Acme"], 2, "'--tenant': 'Acme' is not", id="retry-bad-tenant"),
    pytest.param(["tasks", "pause", "T1"], 2, "'T1' is not a valid id", id="pause-malformed-task-id"),
    pytest.param([*TASK[:3], "BAD_T", *TASK[4:]], 2, "'--tenant': 'BAD_T' is not", id="task-add-bad-tenant"),
    pytest.param([*TASK[:5], "g h"], 2, "'--connection': 'g h' is not", id="task-add-bad-connection"),
    pytest.param(["shards", "list", "--tenant", "BAD_T"], 2, "'--tenant': 'BAD_T' is not", id="shards-list-bad-tenant"),
    pytest.param(
        ["shards", "show", "s1", "--tenant", "a/b"], 2, "'--tenant': 'a/b' is not", id="shards-show-bad-tenant"
    ),
    pytest.param(
        ["sync", "run", "--tenant", "acme", "--connection", "GH"], 2, "'--connection': 'GH' is not", id="sync-bad-id"
    ),
    pytest.param(
        ["sandbox", "edit", "nope", "--url", "http://127.0.0.1:9"],
        2,
        "'nope' is not a sandbox provider: salesforce, notion, slack, github, google",
        id="sandbox-edit-unknown-provider",
    ),
    pytest.param(["sandbox", "edit", "nope"], 2, "'nope' is not a sandbox provider", id="sandbox-edit-none-running"),
    pytest.param(["--verbose"], 2, "No such option: --verbose", id="unknown-root-option"),
]


def stored(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every connection and task in the data directory's store, read directly."""

    async def read() -> dict[str, list[dict[str, Any]]]:
        store = SqliteDocumentStore(data_dir / DATABASE_FILE)
        try:
            return {
                container: (await store.query(container, Query(order_by=(("id", "asc"),)))).items
                for container in (Connection.container, SyncTask.container)
            }
        finally:
            await store.close()

    return asyncio.run(read())


def assert_one_error_line(result: Any, code: int, named: str) -> str:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert named in line
    return str(line)


@pytest.mark.parametrize(("args", "code", "named"), BAD_INPUT)
def test_bad_input_is_one_line_with_its_exit_code_and_changes_nothing(
    seeded: Path, tmp_path: Path, args: list[str], code: int, named: str
) -> None:
    castiel(*TASK, "--id", "t1")
    before = stored(seeded)
    result = invoke(*[str(tmp_path) if arg == A_DIRECTORY else arg for arg in args])
    assert_one_error_line(result, code, named)
    assert stored(seeded) == before


def test_an_invalid_setting_is_a_usage_error_naming_it(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNC_BATCH_SIZE", "lots")
    assert_one_error_line(invoke("queue", "stats"), 2, "SYNC_BATCH_SIZE")


def fail_opening_the_store(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    def broken(*_: object, **__: object) -> Any:
        raise RuntimeError("boom in build_store")

    monkeypatch.setattr(cli_common, "build_store", broken)
    return ["tasks", "list"]


def fail_before_running(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    def broken(*_: object, **__: object) -> Any:
        raise KeyError("boom outside run")

    monkeypatch.setattr(cli_queue, "queue_names", broken)
    return ["queue", "stats"]


@pytest.mark.parametrize("bug", [fail_opening_the_store, fail_before_running])
def test_a_bug_is_one_line_and_its_traceback_goes_to_a_private_file(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bug: Any
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    line = assert_one_error_line(invoke(*bug(monkeypatch)), 1, "error: unexpected ")
    (log,) = tmp_path.glob("castiel-error-*.log")
    assert str(log) in line
    assert "Traceback" in log.read_text()
    assert "boom" in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_the_installed_command_prints_one_line_and_exits_2_for_a_directory_body(data_dir: Path, tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name.upper() not in BACKEND_SELECTORS}
    done = subprocess.run(
        [sys.executable, "-m", "castiel.cli", *VERIFY, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: Invalid value for '--body-file'")
    assert "is a directory" in line
