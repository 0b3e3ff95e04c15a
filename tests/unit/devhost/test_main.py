"""``python -m castiel.devhost`` takes the same flags as ``castiel serve``."""

from __future__ import annotations

import pytest

from castiel.devhost.__main__ import parse_options
from castiel.devhost.host import HostOptions


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], HostOptions()),
        (["--port", "8080", "--run-timers-now"], HostOptions(port=8080, run_timers_now=True)),
        (
            ["--only", "sync_scheduler, token_refresher,"],
            HostOptions(only=frozenset({"sync_scheduler", "token_refresher"})),
        ),
        (["--app", "tests.e2e.apps.slow:app", "--host", "::1"], HostOptions(app="tests.e2e.apps.slow:app", host="::1")),
    ],
)
def test_flags(argv: list[str], expected: HostOptions) -> None:
    assert parse_options(argv) == expected


def test_defaults_match_the_cli_contract() -> None:
    assert HostOptions() == HostOptions(
        port=7071, host="127.0.0.1", run_timers_now=False, only=frozenset(), app="function_app:app"
    )
