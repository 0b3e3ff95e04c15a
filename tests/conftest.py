"""Fixtures shared by every test: a real Redis server and an isolated data directory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.settings import BACKEND_SELECTORS


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """One real Redis-protocol server for the session (a fresh one, even when REDIS_URL is set elsewhere)."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
async def redis_client(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    """A client on a flushed database."""
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private CASTIEL_DATA_DIR, with every Azure setting removed so embedded backends are chosen."""
    for name in list(os.environ):
        if name.upper() in BACKEND_SELECTORS:
            monkeypatch.delenv(name)
    path = tmp_path / "data"
    monkeypatch.setenv("CASTIEL_DATA_DIR", str(path))
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per skip reason, so it is plain which backends' contracts did not run here and why."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        if isinstance(report.longrepr, tuple):
            reason = report.longrepr[2].removeprefix("Skipped: ")
            reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("skipped, by reason")
        for reason, count in sorted(reasons.items()):
            terminalreporter.write_line(f"{count:5d}  {reason}")
