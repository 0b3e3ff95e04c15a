"""The five adapters against the sandbox over real HTTP: a uvicorn server on a free loopback port, the real limiter on
the test Redis, one hand-moved clock for both sides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from adapters.base import AdapterRegistry, BaseAdapter
from adapters.engine import ConnectionAuth, HttpEngine
from adapters.providers import build_registry
from castiel.clock import ManualClock
from castiel.models import Connection, Provider
from castiel.sandbox.notion import DATABASE_ID
from castiel.sandbox.provider import ProviderApi
from castiel.sandbox.server import SandboxServer
from castiel.sandbox.slack import CHANNEL_ID
from castiel.sandbox.state import Sandbox
from tests.integration.conftest import START
from tests.unit.adapters.support import Sleeps, StaticAuth, limiter

RECORDS = 260
SALESFORCE_BATCH = 60


@dataclass(frozen=True)
class Case:
    """One provider as the tests drive it."""

    provider: Provider
    entity_type: str
    settings: dict[str, Any] = field(default_factory=dict)
    sees_edits: bool = True
    sees_deletions: bool = False
    retry_after: float = 1.0
    """What a sandbox 429 becomes: the provider's Retry-After, else the adapter's default pause."""

    @property
    def id(self) -> str:
        return self.provider.value

    def api(self, sandbox: Sandbox) -> ProviderApi:
        return sandbox.api(self.provider.value)


CASES = [
    Case(Provider.SALESFORCE, "Account", sees_deletions=True, retry_after=3600.0),
    Case(Provider.NOTION, "page", {"databaseId": DATABASE_ID}),
    Case(Provider.SLACK, "message", {"channel": CHANNEL_ID}, sees_edits=False),
    Case(Provider.GITHUB, "issue", {"repository": "acme/widgets"}),
    Case(Provider.GOOGLE, "event", {}, sees_deletions=True, retry_after=60.0),
]


def live_ids(sandbox: Sandbox, case: Case) -> list[str]:
    """The ids a full listing must return, in key order (GitHub's pull requests are not issues)."""
    items = case.api(sandbox).datasets[case.entity_type].after(None)
    return [item.id for item in items if "pull_request" not in item.body]


@dataclass
class World:
    """A served sandbox and adapters pointed at it."""

    server: SandboxServer
    registry: AdapterRegistry
    clock: ManualClock
    sleeps: Sleeps

    @property
    def sandbox(self) -> Sandbox:
        return self.server.sandbox

    def adapter(self, case: Case) -> BaseAdapter:
        return self.registry.get(case.provider)

    def connection(self, case: Case, **extra: Any) -> Connection:
        return Connection(
            id=f"sbx-{case.id}",
            tenant_id="tenant-e2e",
            integration_id=case.id,
            provider=case.provider,
            base_url=self.server.base_urls()[case.id],
            settings={**case.settings, **extra},
        )


@pytest.fixture(scope="module")
def sandbox_records() -> int:
    return RECORDS


@pytest.fixture
def clock(module_clock: ManualClock) -> ManualClock:
    module_clock.value = START
    return module_clock


@asynccontextmanager
async def adapters_for(
    server: SandboxServer, redis: aioredis.Redis, clock: ManualClock, auth: ConnectionAuth
) -> AsyncIterator[World]:
    """The sandbox back to its seeded state, and the five adapters pointed at it."""
    server.sandbox.reset()
    server.sandbox.salesforce.batch_size = SALESFORCE_BATCH
    sleeps = Sleeps(clock)
    async with httpx.AsyncClient(timeout=10.0) as http:
        engine = HttpEngine(http, limiter(redis, clock), auth, clock=clock, sleep=sleeps)
        yield World(server, build_registry(engine), clock, sleeps)


@pytest.fixture
async def world(server: SandboxServer, redis_client: aioredis.Redis, clock: ManualClock) -> AsyncIterator[World]:
    async with adapters_for(server, redis_client, clock, StaticAuth("sandbox-token")) as served:
        yield served
