"""Fixtures for credentials over real things: the stand-in OAuth provider on a loopback port (uvicorn in a thread, so
sync CLI tests and async tests share it), the SQLite store and local secrets of ``data_dir``, and the real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from castiel.backends.embedded_redis import free_port
from castiel.backends.local_secrets import LocalSecretStore
from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import Clock, system_clock
from castiel.credentials.alerts import CredentialAlert
from castiel.credentials.types import parse_credential
from castiel.credentials.vault import CredentialVault
from castiel.models import Connection, CredentialMetadata, Provider, RotationPolicy, SyncTask, format_utc
from castiel.sandbox.oauth import PATHS, Grant, OAuthSandbox, oauth_app

CLIENT_ID = "client-1"
CLIENT_SECRET = "zqCLIENTSECRETzq"
TOKEN_PREFIX = "zqTOKENzq"


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="oauth-sandbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the OAuth sandbox did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class StandIn:
    """The stand-in provider as tests see it."""

    sandbox: OAuthSandbox
    url: str

    def token_url(self, provider: Provider) -> str:
        return self.url + PATHS[provider.value][1]

    def authorize_url(self, provider: Provider) -> str:
        return self.url + PATHS[provider.value][0]


class _Swappable:
    """An ASGI app that forwards to whichever app it holds, so one server outlives many tests' sandboxes."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None
        await self.app(scope, receive, send)


@pytest.fixture(scope="session")
def _server() -> Iterator[tuple[_Swappable, str]]:
    swappable = _Swappable()
    with serving(swappable) as url:
        yield swappable, url


@pytest.fixture
def oauth(_server: tuple[_Swappable, str]) -> StandIn:
    """A fresh stand-in provider (no grants, default behaviour) on the session's loopback server."""
    swappable, url = _server
    sandbox = OAuthSandbox(prefix=TOKEN_PREFIX, instance_url=f"{url}/salesforce")
    sandbox.register_client(CLIENT_ID, CLIENT_SECRET)
    swappable.app = oauth_app(sandbox)
    return StandIn(sandbox, url)


@dataclass
class Backends:
    """The real store, secrets and Redis of one test, and the alerts raised on them."""

    store: SqliteDocumentStore
    secrets: LocalSecretStore
    redis: aioredis.Redis
    http: httpx.AsyncClient
    data_dir: Path
    alerts: list[CredentialAlert] = field(default_factory=list)

    def vault(self, clock: Clock = system_clock) -> CredentialVault:
        """A credential service, as one process would build it."""
        return CredentialVault.wire(
            self.store, self.secrets, self.redis, self.http, clock=clock, alert=self.alerts.append
        )

    async def connection(self, provider: Provider, connection_id: str = "conn-1", tenant: str = "t1") -> Connection:
        connection = Connection(id=connection_id, tenant_id=tenant, integration_id=provider.value, provider=provider)
        return Connection.model_validate(await self.store.create(Connection.container, connection.to_doc()))

    async def task(self, connection_id: str, task_id: str, status: str, tenant: str = "t1") -> SyncTask:
        task = SyncTask(
            id=task_id,
            tenant_id=tenant,
            integration_id="x",
            connection_id=connection_id,
            status=status,  # type: ignore[arg-type]
            next_run_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        return SyncTask.model_validate(await self.store.create(SyncTask.container, task.to_doc()))

    async def read_task(self, task_id: str, tenant: str = "t1") -> SyncTask:
        return SyncTask.model_validate(await self.store.read(SyncTask.container, task_id, tenant))

    async def read_connection(self, connection_id: str = "conn-1", tenant: str = "t1") -> Connection:
        return Connection.model_validate(await self.store.read(Connection.container, connection_id, tenant))


@pytest.fixture
async def backends(data_dir: Path, redis_client: aioredis.Redis) -> AsyncIterator[Backends]:
    store = SqliteDocumentStore(data_dir / DATABASE_FILE)
    secrets = LocalSecretStore(data_dir)
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield Backends(store, secrets, redis_client, http, data_dir)
    await store.close()
    await secrets.close()


async def add_user_grant(
    vault: CredentialVault,
    oauth: StandIn,
    provider: Provider,
    *,
    expires_at: datetime | None,
    connection_id: str = "conn-1",
    credential_id: str = "cred-1",
    rotation: RotationPolicy | None = None,
    **extra: Any,
) -> tuple[CredentialMetadata, Grant]:
    """A grant issued by the stand-in, stored as an oauth2_authorization_code credential of the connection."""
    grant = oauth.sandbox.issue(provider.value, CLIENT_ID, scope="read")
    fields = {
        "access_token": grant.access_token,
        "refresh_token": grant.refresh_token,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "token_url": oauth.token_url(provider),
        **({"expires_at": format_utc(expires_at)} if expires_at else {}),
        **extra,
    }
    value = parse_credential("oauth2_authorization_code", fields)
    metadata = await vault.add("t1", connection_id, value, credential_id=credential_id, rotation=rotation)
    return metadata, grant
