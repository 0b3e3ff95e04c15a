"""The parts of ``host.json`` the dev host obeys: Service Bus concurrency and the function timeout.

Read the way the Functions host reads them: ``extensions.serviceBus.maxConcurrentCalls`` (Service Bus extension 5.x,
which the ``[4.*, 5.0.0)`` bundle carries), else the 2.x to 4.x ``messageHandlerOptions.maxConcurrentCalls``; and
``functionTimeout`` as a .NET TimeSpan (``[d.]hh:mm:ss[.fff]``, ``-1`` for unbounded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from castiel.errors import ConfigError

DEFAULT_MAX_CONCURRENT_CALLS = 16
# The Flex Consumption default, the plan DESIGN §9 deploys to.
DEFAULT_FUNCTION_TIMEOUT_SECONDS = 30 * 60.0

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{2}):(?P<seconds>\d{2}(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class HostConfig:
    """Host-wide settings; ``function_timeout`` is None when invocations are unbounded."""

    max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS
    function_timeout: float | None = DEFAULT_FUNCTION_TIMEOUT_SECONDS


def parse_timespan(text: str) -> float | None:
    """A ``functionTimeout`` value in seconds; None for ``-1`` (no limit)."""
    if text.strip() == "-1":
        return None
    match = _TIMESPAN.match(text.strip())
    if match is None:
        raise ConfigError(f"host.json functionTimeout {text!r} is not a TimeSpan like 00:10:00")
    days = int(match["days"] or 0)
    seconds = days * 86400 + int(match["hours"]) * 3600 + int(match["minutes"]) * 60 + float(match["seconds"])
    if seconds <= 0:
        raise ConfigError(f"host.json functionTimeout {text!r} must be positive")
    return seconds


def host_config_from(document: dict[str, Any]) -> HostConfig:
    """The dev host's settings from a parsed ``host.json``; absent keys take the Functions defaults."""
    service_bus = document.get("extensions", {}).get("serviceBus", {})
    calls = service_bus.get(
        "maxConcurrentCalls",
        service_bus.get("messageHandlerOptions", {}).get("maxConcurrentCalls", DEFAULT_MAX_CONCURRENT_CALLS),
    )
    if not isinstance(calls, int) or isinstance(calls, bool) or calls < 1:
        raise ConfigError(f"host.json serviceBus maxConcurrentCalls must be a positive integer, not {calls!r}")
    timeout = document.get("functionTimeout")
    return HostConfig(
        max_concurrent_calls=calls,
        function_timeout=DEFAULT_FUNCTION_TIMEOUT_SECONDS if timeout is None else parse_timespan(str(timeout)),
    )


def read_host_config(app_dir: Path) -> HostConfig:
    """``host.json`` beside the function app, or the defaults when there is none."""
    path = app_dir / "host.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return HostConfig()
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return host_config_from(document)
