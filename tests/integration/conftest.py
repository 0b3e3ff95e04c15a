"""Fixtures of the integration tests: the embedded store and queue in the test's directory on a hand-moved clock; the
runtime a worker process builds from the data directory's settings; and, for the directories that serve the provider
sandbox (``adapters``, ``sandbox``, ``sync``), one server per module on a free loopback port, seeded with the module's
``sandbox_records`` (each directory or module says how many) and run on one hand-moved clock that the tests set back
to ``START``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock
from castiel.runtime import Runtime, close_runtime, get_runtime
from castiel.sandbox.server import SandboxServer
from castiel.sandbox.state import Sandbox

START = 1_735_862_400.0
"""2025-01-03T00:00:00Z: after every seeded record, and within Salesforce's 15-day Recycle Bin of them."""


@pytest.fixture
def clock() -> ManualClock:
    """The test's clock, moved by hand."""
    return ManualClock()


@pytest.fixture
async def store(tmp_path: Path, clock: ManualClock) -> AsyncIterator[SqliteDocumentStore]:
    """The embedded document store in the test's directory."""
    store = SqliteDocumentStore(tmp_path / "store.db", clock=clock)
    yield store
    await store.close()


@pytest.fixture
async def queue(tmp_path: Path, clock: ManualClock) -> AsyncIterator[SqliteMessageQueue]:
    """The embedded queue in the test's directory."""
    queue = SqliteMessageQueue(tmp_path / "queue.db", clock=clock)
    yield queue
    await queue.close()


@pytest.fixture
async def runtime(
    data_dir: Path, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Runtime]:
    """The process's runtime on the embedded backends of ``data_dir`` and the session's Redis, flushed."""
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    await close_runtime()
    runtime = await get_runtime()
    await runtime.redis.flushdb()
    yield runtime
    await close_runtime()


@pytest.fixture(scope="module")
def module_clock() -> ManualClock:
    """The clock of the module's sandbox and of everything its tests run against it."""
    return ManualClock(START)


@pytest.fixture(scope="module")
async def server(module_clock: ManualClock, sandbox_records: int) -> AsyncIterator[SandboxServer]:
    """One sandbox server per module (starting and stopping uvicorn costs a few hundred ms); tests reset its state."""
    async with SandboxServer(Sandbox(records=sandbox_records, clock=module_clock)) as served:
        yield served
