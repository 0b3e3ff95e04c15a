"""``castiel sandbox edit`` as typed: a person's edit of sandbox records through its controls, the sandbox found from
the data directory of ``castiel serve --sandbox`` or given by ``--url``; every mistake is one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from castiel.backends.embedded_redis import free_port
from castiel.devhost.sandboxed import SANDBOX_FILE
from castiel.sandbox.app import build_app
from castiel.sandbox.state import Sandbox
from tests.integration.cli.helpers import invoke
from tests.integration.credentials.conftest import serving


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[Sandbox, str]]:
    served = Sandbox(records=5)
    with serving(build_app(served)) as url:
        yield served, url


def test_an_edit_through_the_running_demo_sandbox(sandbox: tuple[Sandbox, str], data_dir: Path) -> None:
    served, url = sandbox
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / SANDBOX_FILE).write_text(json.dumps({"url": url}))

    result = invoke("sandbox", "edit", "github", "--id", "1000000002")

    assert result.exit_code == 0, result.output
    [edited] = json.loads(result.stdout)
    assert edited["title"].endswith("(edited)")
    assert served.github.issues.get("1000000002").body["title"] == edited["title"]


def test_an_edit_of_the_first_records_at_a_given_url(sandbox: tuple[Sandbox, str]) -> None:
    _, url = sandbox
    result = invoke("sandbox", "edit", "notion", "--count", "2", "--url", url)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 2


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["sandbox", "edit", "github"], 2, "no sandbox runs on this data directory"),
        (["sandbox", "edit", "myspace", "--url", "{url}"], 2, "'myspace' is not a sandbox provider"),
        (["sandbox", "edit", "github", "--id", "42", "--url", "{url}"], 1, "sandbox github has no record '42'"),
        (["sandbox", "edit", "github", "--url", "http://127.0.0.1:{port}"], 1, "does not answer"),
    ],
)
def test_mistakes_are_one_line(sandbox: tuple[Sandbox, str], data_dir: Path, args: list[str], code: int,
                               says: str) -> None:  # fmt: skip
    _, url = sandbox
    typed = [arg.format(url=url, port=free_port()) for arg in args]
    result = invoke(*typed)
    assert result.exit_code == code
    assert says in result.output
    assert "Traceback" not in result.output
