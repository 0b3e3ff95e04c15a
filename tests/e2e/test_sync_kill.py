"""A worker killed mid-pull (``kill -9`` of a real ``castiel serve``) loses nothing and repeats nothing: the queue
redelivers the message once its peek-lock expires, a new worker resumes from the last checkpointed page, and the
shards end exactly as a clean single run leaves them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from starlette.types import ASGIApp, Receive, Scope, Send

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.backends.local_secrets import LocalSecretStore
from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import now_utc
from castiel.credentials.types import parse_credential
from castiel.credentials.vault import CredentialVault
from castiel.models import Connection, SyncResult, SyncTask, SyncTaskMessage, TaskStatus
from castiel.ports import OutgoingMessage, Query
from castiel.runtime import Runtime
from castiel.sandbox.app import build_app
from castiel.sandbox.state import Sandbox
from castiel.settings import load_settings
from tests.e2e.conftest import WAIT_TIMEOUT, StartHost
from tests.integration.credentials.conftest import serving

RECORDS = 600  # GitHub lists 100 a page: six pages, a few of them pull requests
OPEN_PAGES = 3
ISSUES_PATH = "/github/repos/acme/widgets/issues"


class Gate:
    """Lets the first ``open_pages`` issue listings through and holds every later one until released."""

    def __init__(self, app: ASGIApp, open_pages: int) -> None:
        self.app = app
        self.open_pages = open_pages
        self.pages = 0
        self.held = 0
        self.released = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == ISSUES_PATH:
            self.pages += 1
            if self.pages > self.open_pages and not self.released.is_set():
                self.held += 1
                while not self.released.is_set():  # noqa: ASYNC110 - released from the test's thread
                    await asyncio.sleep(0.01)
        await self.app(scope, receive, send)


@pytest.fixture
def gated() -> Iterator[tuple[Gate, str]]:
    gate = Gate(build_app(Sandbox(records=RECORDS)), OPEN_PAGES)
    with serving(gate) as url:
        try:
            yield gate, url
        finally:
            gate.released.set()


async def add_github(store: SqliteDocumentStore, vault: CredentialVault, tenant: str, url: str) -> SyncTask:
    """Tenant's GitHub connection ``gh`` to the sandbox, its credential and its pull task (queued when asked)."""
    connection = Connection(id="gh", tenant_id=tenant, integration_id="github", provider="github",
                            base_url=f"{url}/github", entity_types=["issue"],
                            settings={"repository": "acme/widgets"})  # fmt: skip
    await store.create(Connection.container, connection.to_doc())
    await vault.add(tenant, "gh", parse_credential("bearer_token", {"token": "sandbox-token"}))
    task = SyncTask(id="pull-gh", tenant_id=tenant, integration_id="github", connection_id="gh", next_run_at=now_utc())
    return SyncTask.model_validate(await store.create(SyncTask.container, task.to_doc()))


async def queue_it(data_dir: Path, store: SqliteDocumentStore, task: SyncTask) -> None:
    """What the scheduler does: the task ``queued``, its message on ``sync-inbound``."""
    await store.replace(SyncTask.container, {**task.to_doc(), "status": "queued"}, if_match=task.etag)
    message = SyncTaskMessage(
        integration_id="github",
        tenant_id=task.tenant_id,
        connection_id="gh",
        sync_mode="pull",
        correlation_id="corr-kill",
        enqueued_at=now_utc(),
        task_id=task.id,
    )
    queue = SqliteMessageQueue(data_dir / DATABASE_FILE)
    try:
        await queue.send("sync-inbound", [OutgoingMessage(body=message.to_json_bytes(), message_id="kill-1")])
    finally:
        await queue.close()


async def results_of(store: SqliteDocumentStore, tenant: str) -> list[SyncResult]:
    page = await store.query(SyncResult.container, Query(partition_key=tenant, order_by=(("startedAt", "asc"),)))
    return [SyncResult.model_validate(doc) for doc in page.items]


async def shards_by_record(store: SqliteDocumentStore, tenant: str) -> dict[str, dict[str, Any]]:
    page = await store.query("shards", Query(partition_key=tenant))
    return {
        doc["externalIds"]["gh"]: {
            "data": doc["data"],
            "fieldVersions": doc["fieldVersions"],
            "fingerprint": doc["sync"]["gh"]["pulledFingerprint"],
            "deleted": doc["deleted"],
        }
        for doc in page.items
    }


async def test_a_worker_killed_mid_pull_is_resumed_by_the_next_one_exactly(
    start_host: StartHost,
    gated: tuple[Gate, str],
    data_dir: Path,
    redis_server: EmbeddedRedis,
    redis_client: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate, url = gated
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("SERVICE_BUS_LOCK_DURATION_SECONDS", "2")
    monkeypatch.setenv("SYNC_PROGRESS_INTERVAL_SECONDS", "0")
    store = SqliteDocumentStore(data_dir / DATABASE_FILE)
    secrets = LocalSecretStore(data_dir)
    async with httpx.AsyncClient() as http:
        vault = CredentialVault.wire(store, secrets, redis_client, http)
        task = await add_github(store, vault, "acme", url)
        await add_github(store, vault, "clean", url)
    await queue_it(data_dir, store, task)

    first = await start_host("--only", "sync_inbound_worker", data_dir=data_dir)

    async def held_after_a_checkpoint() -> bool:
        current = SyncTask.model_validate(await store.read(SyncTask.container, task.id, "acme"))
        return gate.held == 1 and "issue" in current.cursors

    await first.wait_until(held_after_a_checkpoint, "the worker waiting for page 4, earlier pages checkpointed")
    first.process.kill()  # kill -9: no shutdown, no settling, the message stays locked
    await asyncio.wait_for(first.process.wait(), WAIT_TIMEOUT)
    (killed,) = await results_of(store, "acme")
    assert (killed.status, killed.finished_at) == ("running", None)
    gate.released.set()

    second = await start_host("--only", "sync_inbound_worker", data_dir=data_dir)

    async def done() -> bool:
        current = SyncTask.model_validate(await store.read(SyncTask.container, task.id, "acme"))
        return current.status is TaskStatus.PENDING

    await second.wait_until(done, "the redelivered message to finish the pull")
    assert await second.stop() == 0
    _, resumed = await results_of(store, "acme")
    assert resumed.status == "succeeded"

    runtime = await asyncio.to_thread(Runtime.build, load_settings())
    try:
        clean = await runtime.inbound.run_now("clean", "gh")
    finally:
        await runtime.aclose()

    issues = clean.counts.created
    assert issues > RECORDS // 2
    assert killed.pages >= OPEN_PAGES - 1
    assert killed.counts.created + resumed.counts.created == issues  # nothing applied twice, nothing skipped
    assert resumed.counts.fetched < issues  # resumed, not started again
    assert await shards_by_record(store, "acme") == await shards_by_record(store, "clean")
    assert len((await store.query("external-ids", Query(partition_key="acme"))).items) == issues
    await secrets.close()
    await store.close()
