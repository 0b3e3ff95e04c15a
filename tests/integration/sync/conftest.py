"""The inbound sync against the sandbox over real HTTP (``world.py``), and two-way sync over it (``two_way.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock
from castiel.ratelimit.limiter import RateLimiter
from castiel.ratelimit.policy import RateLimitPolicy
from castiel.sandbox.server import SandboxServer
from tests.integration.conftest import START
from tests.integration.sync.two_way import TwoWay
from tests.integration.sync.world import LIMITS, RECORDS, SALESFORCE_BATCH, World


@pytest.fixture(scope="module")
def sandbox_records() -> int:
    return RECORDS


@pytest.fixture
async def world(
    server: SandboxServer, redis_client: aioredis.Redis, module_clock: ManualClock, tmp_path: Path
) -> AsyncIterator[World]:
    module_clock.value = START
    server.sandbox.reset()
    server.sandbox.salesforce.batch_size = SALESFORCE_BATCH
    store = SqliteDocumentStore(tmp_path / "store.db", clock=module_clock)
    queue = SqliteMessageQueue(tmp_path / "queue.db", clock=module_clock)
    limiter = RateLimiter(redis_client, RateLimitPolicy(LIMITS), module_clock)
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield World(server, store, queue, module_clock, http, limiter)
    await queue.close()
    await store.close()


@pytest.fixture
async def two(world: World) -> TwoWay:
    """Two-way sync over ``world``, no connection yet."""
    return TwoWay(world)
