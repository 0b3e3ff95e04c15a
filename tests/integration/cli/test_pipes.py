"""A reader that stops early (``castiel tasks list | head -3``): the command ends quietly, exit 141 as SIGPIPE's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from castiel.cli.exits import READER_GONE
from castiel.settings import BACKEND_SELECTORS
from tests.integration.cli.helpers import castiel


@pytest.mark.parametrize(
    "args",
    [["tasks", "list"], ["status"], ["shards", "list", "--tenant", "acme", "--json"]],
    ids=["tasks-list", "status", "shards-list"],
)
def test_output_into_a_closed_pipe_ends_quietly_without_a_traceback_file(
    seeded: Path, tmp_path: Path, args: list[str]
) -> None:
    castiel("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t1")
    reports = tmp_path / "reports"
    reports.mkdir()
    env = {name: value for name, value in os.environ.items() if name.upper() not in BACKEND_SELECTORS}
    env["TMPDIR"] = str(reports)  # where a bug's traceback file would go
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes its first line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "castiel.cli", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == READER_GONE == 141
    assert done.stderr == ""
    assert list(reports.iterdir()) == []
