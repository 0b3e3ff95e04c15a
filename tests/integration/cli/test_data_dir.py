"""Every command says which data directory it uses, never creates one just to read, and an unusable one (missing,
a file, read-only, a damaged ``castiel.db``) is one line naming it, exit 1, never a traceback. Bad ``serve`` flags
are usage errors (exit 2)."""

from __future__ import annotations

import ctypes
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import Result

from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.devhost.timers import next_fire
from tests.e2e.conftest import REPO, host_env
from tests.integration.cli.helpers import castiel, castiel_json, invoke

CONNECTION = ("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh2")
READ_ONLY = [
    ("status",),
    ("status", "--json"),
    ("connections", "list"),
    ("tasks", "list"),
    ("queue", "stats"),
    ("queue", "peek", "sync-inbound"),
    ("queue", "dead-letters", "sync-inbound"),
    ("webhooks", "list"),
]
OPENING = [("status",), ("tasks", "list"), ("queue", "stats"), CONNECTION]


def one_error_line(output: str, stdout: str = "") -> str:
    assert "Traceback" not in output
    assert stdout == ""
    (line,) = output.strip().splitlines()
    assert line.startswith("error: ")
    return line


def failed(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return one_error_line(result.stderr, result.stdout)


def test_status_names_the_data_directory_in_use(seeded: Path) -> None:
    assert castiel_json("status", "--json")["dataDir"] == str(seeded.absolute())
    assert f"data directory: {seeded.absolute()}" in castiel("status").splitlines()


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_read_only_command_says_there_is_no_data_directory_and_creates_none(data_dir: Path, args: list[str]) -> None:
    line = failed(invoke(*args))
    assert f"no data directory at {data_dir.absolute()}" in line
    assert "castiel serve" in line
    assert not data_dir.exists()


def test_adding_a_task_without_a_data_directory_creates_none(data_dir: Path) -> None:
    line = failed(invoke("tasks", "add", "--tenant", "acme", "--connection", "gh"))
    assert "no data directory" in line
    assert not data_dir.exists()


def test_adding_the_first_connection_creates_the_data_directory(data_dir: Path) -> None:
    castiel(*CONNECTION)
    assert (data_dir / DATABASE_FILE).is_file()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def damage_garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database, just some text an editor saved here\n" * 100)


def damage_truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


@pytest.fixture
def damaged(request: pytest.FixtureRequest, seeded: Path) -> Path:
    """The seeded data directory with its ``castiel.db`` grown to many pages, then damaged."""
    database = seeded / DATABASE_FILE
    with closing(sqlite3.connect(database)) as conn:
        conn.execute("CREATE TABLE padding (filler BLOB)")
        conn.executemany("INSERT INTO padding VALUES (?)", [(bytes(1000),)] * 200)
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    request.param(database)
    return database


@pytest.mark.parametrize("damaged", [damage_garbage, damage_truncate], indirect=True, ids=["garbage", "truncated"])
@pytest.mark.parametrize("args", OPENING, ids=" ".join)
def test_a_damaged_database_is_named_with_how_to_recover(damaged: Path, args: list[str]) -> None:
    before = damaged.read_bytes()
    line = failed(invoke(*args))
    assert f"{damaged} is damaged or is not a Castiel database" in line
    assert f"mv {damaged} {damaged}.damaged" in line
    assert "restore it from a backup" in line
    assert damaged.read_bytes() == before


@pytest.mark.parametrize("args", OPENING, ids=" ".join)
def test_a_data_directory_path_that_is_a_file_is_named(data_dir: Path, args: list[str]) -> None:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.write_text("not a directory")
    line = failed(invoke(*args))
    assert f"data directory {data_dir.absolute()} is a file, not a directory" in line


def without_root_privileges() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes root obey file permissions in the child, as any other user does; None when this
    is not root (permissions already apply)."""
    if os.geteuid() != 0:
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2

    def drop() -> None:
        for capability in (cap_dac_override, cap_dac_read_search):
            prctl(pr_capbset_drop, capability, 0, 0, 0)

    return drop


def castiel_process(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "castiel.cli", *args],
        cwd=REPO,
        env=host_env(data_dir, None),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=without_root_privileges(),
    )


@pytest.fixture
def read_only(seeded: Path) -> Iterator[Path]:
    castiel("tasks", "list")  # closed cleanly: no WAL files left, so opening must create them
    assert sorted(path.name for path in seeded.iterdir() if path.name.startswith(DATABASE_FILE)) == [DATABASE_FILE]
    seeded.chmod(0o555)
    yield seeded
    seeded.chmod(0o700)


@pytest.mark.parametrize("args", [("status",), CONNECTION], ids=" ".join)
def test_a_read_only_data_directory_is_named(read_only: Path, args: list[str]) -> None:
    done = castiel_process(read_only, *args)
    assert done.returncode == 1, done.stderr
    line = one_error_line(done.stderr, done.stdout)
    assert f"data directory {read_only.absolute()} is not writable" in line


def test_serve_on_a_damaged_database_exits_with_one_line(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    damage_garbage(data_dir / DATABASE_FILE)
    done = castiel_process(data_dir, "serve", "--port", "0")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {data_dir / DATABASE_FILE} is damaged or is not a Castiel database")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--port", "99999"], "'--port'"),
        (["--port", "-1"], "'--port'"),
        (["--port", "http"], "'--port'"),
        (["--grace-period", "-1"], "'--grace-period'"),
        (["--grace-period", "soon"], "'--grace-period'"),
    ],
)
def test_a_bad_serve_flag_is_a_usage_error(data_dir: Path, args: list[str], named: str) -> None:
    line = failed(invoke("serve", *args), code=2)
    assert named in line
    assert not data_dir.exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--app", "no_such_module:app"], "no module 'no_such_module'"),
        (["--app", "function_app"], "must be module:attribute"),
        (["--only", "nosuch"], "--only names unknown functions ['nosuch']"),
    ],
)
def test_a_serve_flag_naming_what_does_not_exist_is_a_usage_error(data_dir: Path, args: list[str], named: str) -> None:
    line = failed(invoke("serve", "--port", "0", *args), code=2)
    assert named in line
    assert not data_dir.exists()


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["serve", "--port"], "choose another --port"),
        (["serve", "--port", "0", "--sandbox", "--sandbox-port"], "the sandbox cannot listen on 127.0.0.1:"),
        (["sandbox", "serve", "--port"], "the sandbox cannot listen on 127.0.0.1:"),
    ],
    ids=["serve", "serve-sandbox", "sandbox-serve"],
)
def test_a_busy_port_is_a_runtime_error(data_dir: Path, command: list[str], named: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = castiel_process(data_dir, *command, str(taken.getsockname()[1]))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert named in done.stderr.strip().splitlines()[-1]


def test_status_says_no_serve_runs_and_when_the_scheduler_would_fire(seeded: Path) -> None:
    before = datetime.now(UTC)
    report = castiel_json("status", "--json")
    after = datetime.now(UTC)
    assert report["serve"] == {"running": False}
    assert report["redis"] == {"embedded": True, "running": False}
    scheduler = report["scheduler"]
    assert (scheduler["function"], scheduler["schedule"]) == ("sync_scheduler", "0 0 * * * *")
    expected = {next_fire("0 0 * * * *", before), next_fire("0 0 * * * *", after)}
    assert datetime.fromisoformat(scheduler["nextRunAt"]) in expected
    lines = castiel("status").splitlines()
    assert "serve:   not running on this data directory" in lines
    assert any(line.startswith("scheduler: next run ") and "once `castiel serve` runs" in line for line in lines)
