"""The runtime's Redis: an unreachable ``REDIS_URL`` is reported once at start-up, at WARNING, without its password."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from castiel.backends.embedded_redis import EmbeddedRedis, free_port
from castiel.runtime import Runtime
from castiel.settings import load_settings


async def test_an_unreachable_redis_url_is_one_warning_at_start_up(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{port}/0")
    with caplog.at_level(logging.INFO, logger="castiel"):
        runtime = Runtime.build(load_settings())
    await runtime.aclose()

    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    [warning] = warnings
    assert warning.startswith("runtime.redis_unreachable")
    assert f"redis=redis://***@127.0.0.1:{port}/0" in warning
    assert "hunter2" not in caplog.text


async def test_a_reachable_redis_url_is_not_warned_about(
    data_dir: Path, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    with caplog.at_level(logging.INFO, logger="castiel"):
        runtime = Runtime.build(load_settings())
    await runtime.aclose()
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []
