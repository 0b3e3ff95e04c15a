"""The composition root: settings, backends and services, built once per worker process and reused.

A backend is chosen by what is configured — ``COSMOS_ENDPOINT``, ``ServiceBusConnection``, ``KEY_VAULT_URL``,
``REDIS_URL`` — never by code. Without them everything is embedded: SQLite store and queue under
``CASTIEL_DATA_DIR``, a local secrets file, and the data directory's shared embedded Redis
(``castiel.backends.data_dir_redis``: started by whichever process needs it first, ended with the last one).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import redis.asyncio as aioredis
from azure.core.credentials_async import AsyncTokenCredential

from adapters.engine import HttpEngine
from adapters.providers import build_registry
from castiel.backends import data_dir_redis
from castiel.backends.data_dir import require_data_dir
from castiel.backends.redis_client import connect, credential_provider, redacted, unreachable
from castiel.backends.sqlite_engine import DATABASE_FILE, SqliteDatabase
from castiel.clock import Clock, system_clock
from castiel.credentials.refresher import TokenRefresher
from castiel.credentials.vault import CredentialVault
from castiel.credentials.webhook_secrets import WebhookSecrets
from castiel.errors import ConfigError
from castiel.ports import DocumentStore, MessageQueue, SecretStore
from castiel.ratelimit.limiter import RateLimiter
from castiel.settings import Settings, get_settings
from castiel.sync.delivery import DeliveryPolicy
from castiel.sync.fanout import PullFanout
from castiel.sync.inbound import InboundSync
from castiel.sync.outbound import OutboundSync
from castiel.sync.scheduler import SyncScheduler
from castiel.sync.targets import TargetFinder
from castiel.telemetry import log_event
from castiel.telemetry.export import configure as configure_telemetry
from castiel.telemetry.propagation import TracedQueue
from castiel.webhooks.google_oidc import GoogleSigningKeys
from castiel.webhooks.ledger import DeliveryLedger
from castiel.webhooks.receiver import WebhookReceiver
from castiel.webhooks.registrations import WebhookRegistrations
from castiel.webhooks.verifier_cache import VerifierCache


def azure_credential(settings: Settings) -> AsyncTokenCredential | None:
    """The one token credential every Azure client of the process shares (``DefaultAzureCredential``: the managed
    identity in Azure), or None when each configured Azure backend signs with a key or connection string instead.

    One credential means one token cache per resource and one managed-identity endpoint conversation, not one per
    client; the runtime closes it after the clients."""
    cosmos_by_identity = settings.uses_cosmos and not settings.cosmos_key
    queue_by_identity = settings.service_bus_connection is None and settings.service_bus_namespace is not None
    if not (cosmos_by_identity or queue_by_identity or settings.uses_key_vault):
        return None
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential()


def build_store(
    settings: Settings,
    clock: Clock = system_clock,
    shared: SqliteDatabase | None = None,
    *,
    create: bool = True,
    credential: AsyncTokenCredential | None = None,
) -> DocumentStore:
    """Cosmos DB when ``COSMOS_ENDPOINT`` is set (on ``credential`` without a key), else the SQLite store (on
    ``shared`` when given).

    ``create=False`` (a command that only reads) refuses a missing data directory instead of creating one.
    """
    if settings.uses_cosmos:
        from castiel.backends.cosmos import CosmosDocumentStore

        return CosmosDocumentStore.from_settings(settings, credential)
    from castiel.backends.sqlite_store import SqliteDocumentStore

    if not create:
        require_data_dir(settings.data_dir)

    if shared is not None:
        return SqliteDocumentStore(shared, clock=clock)
    return SqliteDocumentStore.from_settings(settings, clock=clock)


def build_queue(
    settings: Settings,
    clock: Clock = system_clock,
    shared: SqliteDatabase | None = None,
    *,
    create: bool = True,
    credential: AsyncTokenCredential | None = None,
) -> MessageQueue:
    """Service Bus when ``ServiceBusConnection`` is set (on ``credential`` for an identity-based connection), else
    the SQLite queue (on ``shared`` when given).

    ``create=False`` (a command that only reads) refuses a missing data directory instead of creating one.
    """
    if settings.uses_service_bus:
        from castiel.backends.servicebus import ServiceBusMessageQueue

        return ServiceBusMessageQueue.from_settings(settings, credential)
    from castiel.backends.sqlite_queue import SqliteMessageQueue

    if not create:
        require_data_dir(settings.data_dir)

    return SqliteMessageQueue(
        settings.data_dir / DATABASE_FILE if shared is None else shared,
        clock=clock,
        lock_duration_seconds=settings.lock_duration_seconds,
        max_delivery_count=settings.max_delivery_count,
    )


def open_shared_database(settings: Settings) -> SqliteDatabase | None:
    """One SQLite database for the embedded store and queue together, when both are embedded.

    Sharing one writer means one group commit (one fsync) makes concurrent requests' enqueues and audit lines
    durable together, instead of one per file.
    """
    if settings.uses_cosmos or settings.uses_service_bus:
        return None
    from castiel.backends import sqlite_queue, sqlite_store

    return SqliteDatabase(settings.data_dir / DATABASE_FILE, sqlite_store.SCHEMA + sqlite_queue.SCHEMA)


def build_secrets(
    settings: Settings, clock: Clock = system_clock, *, credential: AsyncTokenCredential | None = None
) -> SecretStore:
    """Key Vault when ``KEY_VAULT_URL`` is set (on ``credential``), else the local secrets file under the data
    directory."""
    if settings.uses_key_vault:
        from castiel.backends.keyvault import KeyVaultSecretStore

        return KeyVaultSecretStore.from_settings(settings, credential)
    from castiel.backends.local_secrets import LocalSecretStore

    return LocalSecretStore(settings.data_dir, clock=clock)


def redis_url_of(settings: Settings) -> tuple[str, data_dir_redis.RedisLease | None]:
    """The Redis to use: ``REDIS_URL`` (warned about once here when it does not answer), else the data directory's
    shared embedded server, with the lease that keeps it up (release it when done)."""
    if settings.redis_url is not None:
        problem = unreachable(settings.redis_url, token_auth=settings.redis_auth == "entra_id")
        if problem is not None:
            log_event(
                "runtime.redis_unreachable",
                level=logging.WARNING,
                redis=redacted(settings.redis_url),
                error=problem,
                meanwhile="rate limits use per-process windows, webhook dedup uses the store",
            )
        return settings.redis_url, None
    lease = data_dir_redis.join(settings.data_dir)
    log_event("runtime.embedded_redis", url=lease.url, pid=lease.record.pid, data_dir=settings.data_dir.absolute())
    return lease.url, lease


@asynccontextmanager
async def open_redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A client on ``REDIS_URL``, else on the data directory's shared embedded Redis; closed afterwards."""
    url, lease = await asyncio.to_thread(redis_url_of, settings)
    client = connect(url, timeout_seconds=1.0, retries=1, credentials=credential_provider(settings))
    try:
        yield client
    finally:
        await client.aclose()
        if lease is not None:
            lease.release()


@dataclass
class Runtime:
    """Everything one process needs, wired once."""

    settings: Settings
    store: DocumentStore
    queue: MessageQueue
    secrets: SecretStore
    redis: aioredis.Redis
    http: httpx.AsyncClient
    limiter: RateLimiter
    scheduler: SyncScheduler
    inbound: InboundSync
    outbound: OutboundSync
    refresher: TokenRefresher
    credentials: CredentialVault
    registrations: WebhookRegistrations
    verifiers: VerifierCache
    ledger: DeliveryLedger
    webhooks: WebhookReceiver
    redis_lease: data_dir_redis.RedisLease | None = field(default=None, repr=False)
    shared_database: SqliteDatabase | None = field(default=None, repr=False)
    credential: AsyncTokenCredential | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock = system_clock) -> Runtime:
        """Wire backends and services from ``settings`` (joins the data directory's Redis when ``REDIS_URL`` is
        unset)."""
        configure_telemetry(settings.applicationinsights_connection_string)
        shared = open_shared_database(settings)
        redis_url, lease = redis_url_of(settings)
        credential = azure_credential(settings)
        store = build_store(settings, clock, shared, credential=credential)
        queue = TracedQueue(build_queue(settings, clock, shared, credential=credential))
        secrets = build_secrets(settings, clock, credential=credential)
        redis_credentials = credential_provider(settings)  # one Entra token for both clients (REDIS_AUTH)
        redis = connect(redis_url, timeout_seconds=1.0, retries=1, credentials=redis_credentials)
        http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        # Its own client, failing faster still: with Redis unreachable the limiter answers from its local window.
        limiter = RateLimiter.from_settings(settings, connect(redis_url, credentials=redis_credentials), clock=clock)
        credentials = CredentialVault.wire(store, secrets, redis, http, clock=clock)
        adapters = build_registry(HttpEngine(http, limiter, credentials, clock=clock))
        policy = DeliveryPolicy(queue, max_retries=settings.sync_max_retries, clock=clock)
        registrations = WebhookRegistrations(store, clock=clock)
        google_keys = GoogleSigningKeys(http, clock=clock, url=settings.google_certs_url)
        verifiers = VerifierCache(WebhookSecrets(store, secrets), google_keys, clock=clock)
        retention = timedelta(days=settings.sync_tombstone_retention_days)
        fanout = PullFanout(queue, settings.service_bus_queue_outbound, TargetFinder(store, adapters), clock=clock)
        ledger = DeliveryLedger(redis, store, clock=clock)
        return cls(
            settings=settings,
            store=store,
            queue=queue,
            secrets=secrets,
            redis=redis,
            http=http,
            limiter=limiter,
            scheduler=SyncScheduler(
                store,
                queue,
                queue_name=settings.service_bus_queue,
                batch_size=settings.sync_batch_size,
                stuck_timeout=timedelta(minutes=settings.sync_stuck_timeout_minutes),
                clock=clock,
            ),
            inbound=InboundSync(
                store,
                adapters,
                limiter,
                policy,
                retention=retention,
                progress_interval=settings.sync_progress_interval_seconds,
                hooks=[fanout],
                clock=clock,
            ),
            outbound=OutboundSync(
                store,
                adapters,
                policy,
                queue,
                settings.service_bus_queue_outbound,
                confirm_after=timedelta(seconds=settings.sync_create_confirm_seconds),
                retention=retention,
                clock=clock,
            ),
            refresher=TokenRefresher(
                store,
                credentials,
                threshold=timedelta(minutes=settings.token_expiry_threshold_minutes),
                concurrency=settings.token_refresh_concurrency,
                clock=clock,
            ),
            credentials=credentials,
            registrations=registrations,
            verifiers=verifiers,
            ledger=ledger,
            webhooks=WebhookReceiver(
                registrations,
                verifiers,
                ledger,
                store,
                queue,
                secrets,
                queue_name=settings.service_bus_queue_outbound,
                clock=clock,
            ),
            redis_lease=lease,
            shared_database=shared,
            credential=credential,
        )

    async def aclose(self) -> None:
        """Close every client and release the embedded Redis (the last process using it stops it)."""
        await self.webhooks.drain()
        await self.http.aclose()
        await self.redis.aclose()
        await self.limiter.aclose()
        for closable in (self.queue, self.store, self.secrets):
            await closable.close()
        if self.credential is not None:
            await self.credential.close()
        if self.shared_database is not None:
            await self.shared_database.close()
        if self.redis_lease is not None:
            self.redis_lease.release()


def settle_heap() -> None:
    """Once a long-running process has built what it keeps (its runtime, its modules): those objects live as long as
    the process, so move them out of the cyclic collector's way — a full collection then walks only what the work
    itself allocates, and a sync's thousands of documents per page stop paying for the whole heap (the dev host does
    the same at start)."""
    gc.collect()
    gc.freeze()


_runtime: Runtime | None = None
_lock = asyncio.Lock()


async def get_runtime() -> Runtime:
    """The process-wide runtime, built on first use.

    The settings are read and validated here, not at import: an invalid one (say a Key Vault reference the platform
    has not resolved yet) raises ``ConfigError`` from every invocation, logged each time, and the first invocation
    after it is fixed builds the runtime.
    """
    global _runtime
    if _runtime is None:
        async with _lock:
            if _runtime is None:
                try:
                    _runtime = await asyncio.to_thread(Runtime.build, get_settings())
                except ConfigError as exc:
                    log_event("runtime.config_error", level=logging.ERROR, error=str(exc))
                    raise
    return _runtime


async def close_runtime() -> None:
    """Close and forget the process-wide runtime (the dev host calls this at shutdown; tests between apps)."""
    global _runtime
    if _runtime is not None:
        runtime, _runtime = _runtime, None
        await runtime.aclose()
    get_settings.cache_clear()
