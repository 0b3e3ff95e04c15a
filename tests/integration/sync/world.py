"""The world of the sync tests: a served sandbox, the five adapters, the real limiter on the test Redis, a real SQLite
store and queue, one hand-moved clock for everything (sandbox included), and an inbound service over them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest

from adapters.engine import ConnectionAuth, HttpEngine
from adapters.providers import build_registry
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock, now_utc
from castiel.models import Connection, ExternalIdLink, SyncMode, SyncResult, SyncTask
from castiel.ports import Filter, Query
from castiel.ratelimit.limiter import RateLimiter
from castiel.sandbox.server import SandboxServer
from castiel.sandbox.state import Sandbox
from castiel.sync.delivery import DeliveryPolicy
from castiel.sync.inbound import InboundSync
from castiel.sync.pull import PageHook
from tests.integration.adapters.conftest import CASES, Case
from tests.unit.adapters.support import Sleeps, StaticAuth

RECORDS = 40
SALESFORCE_BATCH = 15
RETENTION = timedelta(days=30)
UNLIMITED = 1_000_000
LIMITS = {"defaults": {"tenant": UNLIMITED, "operations": {"fetch": UNLIMITED}}}
SALESFORCE, NOTION, SLACK, GITHUB, GOOGLE = CASES
BY_PROVIDER = pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)


@dataclass
class World:
    """A served sandbox and an inbound service over it; helpers to add connections and pull them."""

    server: SandboxServer
    store: SqliteDocumentStore
    queue: SqliteMessageQueue
    clock: ManualClock
    http: httpx.AsyncClient
    limiter: RateLimiter
    inbound: InboundSync = field(init=False)

    def __post_init__(self) -> None:
        self.inbound = self.service()

    @property
    def sandbox(self) -> Sandbox:
        return self.server.sandbox

    async def connect(
        self, case: Case, *, connection_id: str | None = None, tenant: str = "t1", **fields: Any
    ) -> Connection:
        """A connection to the sandbox's ``case`` provider, and its pull task."""
        connection = Connection(
            id=connection_id or f"sbx-{case.id}",
            tenant_id=tenant,
            integration_id=case.id,
            provider=case.provider,
            base_url=self.server.base_urls()[case.id],
            entity_types=[case.entity_type],
            settings=case.settings,
            **fields,
        )
        await self.store.create(Connection.container, connection.to_doc())
        task = SyncTask(
            id=f"task-{connection.id}",
            tenant_id=tenant,
            integration_id=case.id,
            connection_id=connection.id,
            sync_mode=SyncMode.PULL,
            next_run_at=now_utc(self.clock),
        )
        await self.store.create(SyncTask.container, task.to_doc())
        return connection

    async def pull(self, connection: Connection, **options: Any) -> SyncResult:
        """``castiel sync run`` of ``connection``."""
        return await self.inbound.run_now(connection.tenant_id, connection.id, **options)

    async def task(self, connection: Connection) -> SyncTask:
        doc = await self.store.read(SyncTask.container, f"task-{connection.id}", connection.tenant_id)
        return SyncTask.model_validate(doc)

    async def docs(self, container: str, tenant: str = "t1", *filters: Filter) -> list[dict[str, Any]]:
        page = await self.store.query(container, Query(filters=filters, partition_key=tenant))
        return page.items

    async def shard_of(
        self, connection: Connection, external_id: str, entity_type: str | None = None
    ) -> dict[str, Any]:
        """The shard a record of ``connection`` landed in, through its external-id link."""
        entity = entity_type or connection.entity_types[0]
        link_id = ExternalIdLink.make_id(connection.id, entity, external_id)
        link = await self.store.read("external-ids", link_id, connection.tenant_id)
        return await self.store.read("shards", link["shardId"], connection.tenant_id)

    def service(self, auth: ConnectionAuth | None = None, **options: Any) -> InboundSync:
        """Another inbound service on the same store and sandbox (another auth, hooks, progress interval)."""
        engine = HttpEngine(self.http, self.limiter, auth or StaticAuth("sandbox-token"), clock=self.clock,
                            sleep=Sleeps(self.clock))  # fmt: skip
        settings: dict[str, Any] = {"retention": RETENTION, "progress_interval": 60.0, **options}
        policy = DeliveryPolicy(self.queue, max_retries=3, clock=self.clock)
        return InboundSync(self.store, build_registry(engine), self.limiter, policy, clock=self.clock, **settings)

    def with_hook(self, hook: PageHook) -> None:
        """From now on, ``pull`` calls ``hook`` for every saved page."""
        self.inbound = self.service(hooks=[hook])


def external_ids(shards: list[dict[str, Any]], connection: Connection) -> list[str]:
    return sorted(shard["externalIds"][connection.id] for shard in shards)
