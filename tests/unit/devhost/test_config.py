"""host.json: the Service Bus concurrency and function timeout the dev host obeys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from castiel.devhost.config import (
    DEFAULT_FUNCTION_TIMEOUT_SECONDS,
    DEFAULT_MAX_CONCURRENT_CALLS,
    HostConfig,
    host_config_from,
    parse_timespan,
    read_host_config,
)
from castiel.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:10:00", 600.0),
        ("00:00:30", 30.0),
        ("01:30:15", 5415.0),
        ("00:00:01.5", 1.5),
        ("1.02:00:00", 93600.0),
        ("-1", None),
    ],
)
def test_function_timeout_timespans(text: str, seconds: float | None) -> None:
    assert parse_timespan(text) == seconds


@pytest.mark.parametrize("text", ["10 minutes", "00:10", "00:00:00", "", "1:2:3"])
def test_bad_function_timeouts_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="functionTimeout"):
        parse_timespan(text)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({}, HostConfig(DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_FUNCTION_TIMEOUT_SECONDS)),
        (
            {"extensions": {"serviceBus": {"maxConcurrentCalls": 4}}, "functionTimeout": "00:05:00"},
            HostConfig(4, 300.0),
        ),
        ({"extensions": {"serviceBus": {"messageHandlerOptions": {"maxConcurrentCalls": 8}}}}, HostConfig(8)),
        (
            {
                "extensions": {
                    "serviceBus": {"maxConcurrentCalls": 2, "messageHandlerOptions": {"maxConcurrentCalls": 9}}
                }
            },
            HostConfig(2),
        ),
        ({"functionTimeout": "-1"}, HostConfig(DEFAULT_MAX_CONCURRENT_CALLS, None)),
    ],
    ids=["defaults", "extension-5", "extension-4", "5-wins", "unbounded"],
)
def test_host_config_from_document(document: dict[str, Any], expected: HostConfig) -> None:
    assert host_config_from(document) == expected


@pytest.mark.parametrize("calls", [0, -1, "16", True])
def test_bad_concurrency_is_refused(calls: object) -> None:
    with pytest.raises(ConfigError, match="maxConcurrentCalls"):
        host_config_from({"extensions": {"serviceBus": {"maxConcurrentCalls": calls}}})


def test_the_project_host_json_is_read() -> None:
    config = read_host_config(Path(__file__).parents[3])
    assert config.max_concurrent_calls >= 1
    assert config.function_timeout is not None
    assert config.function_timeout > 0


def test_missing_host_json_gives_defaults(tmp_path: Path) -> None:
    assert read_host_config(tmp_path) == HostConfig()


def test_invalid_host_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text("{nope")
    with pytest.raises(ConfigError, match=r"host\.json is not valid JSON"):
        read_host_config(tmp_path)
