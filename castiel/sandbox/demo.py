"""The demo tenant of ``castiel serve --sandbox``: one connection per provider against the sandbox, GitHub issues and
the Notion tasks database sharing the ``task`` shard type both ways; each with a credential the sandbox's OAuth
stand-in issued, a sync task, and a webhook registration whose events the sandbox sends (``subscriptions.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from castiel.clock import now_utc
from castiel.credentials.records import list_credentials
from castiel.credentials.types import Credential, WebhookSecret, parse_credential
from castiel.credentials.webhook_secrets import WebhookSecrets
from castiel.errors import AlreadyExists, NotFound
from castiel.models import (
    Connection,
    Provider,
    SyncMode,
    SyncTask,
    VerificationState,
    WebhookAudit,
    WebhookRegistration,
)
from castiel.ports import DocumentStore, Query
from castiel.sandbox.github import REPOSITORY
from castiel.sandbox.notion import DATABASE_ID
from castiel.sandbox.oauth import PATHS as OAUTH_PATHS
from castiel.sandbox.slack import CHANNEL_ID
from castiel.sandbox.state import Sandbox, base_urls
from castiel.sandbox.subscriptions import Subscription
from castiel.sandbox.webhooks import PUSH_SERVICE_ACCOUNT
from castiel.telemetry import log_event

if TYPE_CHECKING:
    from castiel.runtime import Runtime

GITHUB_TASKS: dict[str, Any] = {
    "issue": {
        "shardType": "task",
        "fields": {
            "title": "title",
            "number": {"field": "number", "type": "integer", "readOnly": True},
            "state": {"field": "state", "readOnly": True},
        },
    }
}
"""GitHub issues as tasks: the title both ways; the number (what GitHub addresses an issue by) and state read only."""

NOTION_TASKS: dict[str, Any] = {
    "page": {
        "shardType": "task",
        "fields": {
            "properties.Name.title[0].text.content": "title",
            "properties.Status.select.name": "status",
            "properties.Estimate.number": {"field": "estimate", "type": "number"},
        },
    }
}
"""Pages of the Notion tasks data source as tasks: the title (shared with GitHub), status and estimate."""


DEMO_TENANT = "demo"
DEMO_CLIENT_ID = "castiel-demo"
GOOGLE_AUDIENCE = "castiel-demo"
"""The audience the demo's Google registration checks push tokens for (the sandbox signs for it)."""


@dataclass(frozen=True, slots=True)
class DemoConnection:
    """One connection of the demo tenant."""

    provider: Provider
    entity_types: tuple[str, ...]
    settings: dict[str, Any]
    mappings: dict[str, Any] | None = None
    direction: SyncMode = SyncMode.PULL

    @property
    def id(self) -> str:
        """``demo-<provider>``."""
        return f"demo-{self.provider.value}"


DEMO_CONNECTIONS = (
    DemoConnection(Provider.GITHUB, ("issue",), {"repository": REPOSITORY}, GITHUB_TASKS, SyncMode.BIDIRECTIONAL),
    DemoConnection(Provider.NOTION, ("page",), {"databaseId": DATABASE_ID}, NOTION_TASKS, SyncMode.BIDIRECTIONAL),
    DemoConnection(Provider.SALESFORCE, ("Account",), {}),
    DemoConnection(Provider.SLACK, ("message",), {"channel": CHANNEL_ID}),
    DemoConnection(Provider.GOOGLE, ("event",), {}),
)


SANDBOX_INSTANCE = "sandboxInstance"
"""The settings key of a demo connection naming the sandbox (``Sandbox.instance``) it was seeded against."""

TENANT_CONTAINERS = (
    SyncTask.container,
    "sync-results",
    "shards",
    "external-ids",
    "conflicts",
    "token-refresh-audit",
    Connection.container,
)
"""What the demo tenant holds besides its registrations and credentials (removed through their own services)."""


async def start_over_if_stale(runtime: Runtime, instance: str) -> bool:
    """Remove the whole demo tenant when a demo connection was seeded against another sandbox than ``instance``
    (or before sandboxes were told apart). That sandbox's records are gone, since a sandbox starts afresh: kept, the
    links to them would read as deletes on the new one, and what Castiel created there would never be written
    again. True when it was removed."""
    page = await runtime.store.query(Connection.container, Query(partition_key=DEMO_TENANT))
    demo_ids = {spec.id for spec in DEMO_CONNECTIONS}
    stale = [doc["id"] for doc in page.items
             if doc["id"] in demo_ids and doc.get("settings", {}).get(SANDBOX_INSTANCE) != instance]  # fmt: skip
    if not stale:
        return False
    for registration in await runtime.registrations.list(DEMO_TENANT):
        await runtime.registrations.remove(registration.id)  # and forgotten by the host's cache
        await _remove_all(runtime.store, WebhookAudit.container, registration.id)
    for credential in await list_credentials(runtime.store, DEMO_TENANT):
        await runtime.credentials.remove(credential)  # the secret's value with it
    for container in TENANT_CONTAINERS:
        await _remove_all(runtime.store, container, DEMO_TENANT)
    log_event("sandbox.demo_started_over", tenant=DEMO_TENANT, stale_connections=",".join(sorted(stale)))
    return True


async def _remove_all(store: DocumentStore, container: str, partition_key: str) -> None:
    query = Query(partition_key=partition_key, limit=500)
    while items := (await store.query(container, query)).items:
        for doc in items:
            with suppress(NotFound):
                await store.delete(container, doc["id"], partition_key)


CredentialFor = Callable[[Connection], Credential]
"""The credential a new demo connection gets."""


async def seed_demo(runtime: Runtime, sandbox: Sandbox, sandbox_url: str, host_url: str) -> list[Subscription]:
    """The demo tenant against the sandbox at ``sandbox_url`` (``seed_tenant``), with credentials the sandbox's OAuth
    stand-in issues; started over first when it was seeded against an earlier sandbox (``start_over_if_stale``)."""
    sandbox.oauth.register_client(DEMO_CLIENT_ID)
    await start_over_if_stale(runtime, sandbox.instance)
    urls = base_urls(sandbox_url)
    return await seed_tenant(runtime, urls, host_url, oauth_grants(sandbox, sandbox_url), instance=sandbox.instance)


async def seed_tenant(
    runtime: Runtime,
    urls: Mapping[str, str],
    host_url: str,
    credential_for: CredentialFor,
    connections: Sequence[DemoConnection] = DEMO_CONNECTIONS,
    *,
    instance: str = "",
) -> list[Subscription]:
    """The demo tenant, idempotently: each connection (its base URL brought up to date; new ones record the sandbox
    ``instance`` in their settings), its credential (when it has none), its sync task (due now when new) and its
    webhook registration. Returns where each provider's webhooks must be sent: the registrations' URLs on the host
    at ``host_url``, with their signing secrets."""
    subscriptions = []
    for spec in connections:
        connection = await _connection(runtime, spec, urls[spec.provider.value], instance)
        if connection.credential_id is None:
            credential = credential_for(connection)
            await runtime.credentials.add(DEMO_TENANT, connection.id, credential, credential_id=f"{connection.id}-key")
        with suppress(AlreadyExists):
            task = SyncTask(id=f"{spec.id}-sync", tenant_id=DEMO_TENANT, integration_id=spec.provider.value,
                            connection_id=spec.id, sync_mode=spec.direction, next_run_at=now_utc())  # fmt: skip
            await runtime.store.create(SyncTask.container, task.to_doc())
        subscriptions.append(await _registration(runtime, connection, host_url))
    log_event("sandbox.demo_seeded", tenant=DEMO_TENANT, connections=len(connections), host=host_url)
    return subscriptions


def oauth_grants(sandbox: Sandbox, sandbox_url: str) -> CredentialFor:
    """Credentials from grants the sandbox's OAuth stand-in issues, refreshable at its token endpoints."""

    def credential(connection: Connection) -> Credential:
        provider = connection.provider.value
        grant = sandbox.oauth.issue(provider, DEMO_CLIENT_ID, scope="demo")
        fields: dict[str, Any] = {
            "access_token": grant.access_token,
            "refresh_token": grant.refresh_token,
            "client_id": DEMO_CLIENT_ID,
            "token_url": sandbox_url.rstrip("/") + OAUTH_PATHS[provider][1],
        }
        if connection.provider is Provider.SALESFORCE:
            fields["instance_url"] = sandbox.oauth.instance_url
        return parse_credential("oauth2_authorization_code", fields)

    return credential


async def _connection(runtime: Runtime, spec: DemoConnection, base_url: str, instance: str) -> Connection:
    try:
        found = await runtime.store.read(Connection.container, spec.id, DEMO_TENANT)
    except NotFound:
        connection = Connection(
            id=spec.id,
            tenant_id=DEMO_TENANT,
            integration_id=spec.provider.value,
            provider=spec.provider,
            base_url=base_url,
            entity_types=list(spec.entity_types),
            settings=spec.settings | ({SANDBOX_INSTANCE: instance} if instance else {}),
            entity_mappings=spec.mappings or {},
            sync_direction=spec.direction,
        )
        return Connection.model_validate(await runtime.store.create(Connection.container, connection.to_doc()))
    if found.get("baseUrl") == base_url:
        return Connection.model_validate(found)
    doc = {key: value for key, value in found.items() if key not in ("_etag", "_ts")} | {"baseUrl": base_url}
    return Connection.model_validate(await runtime.store.replace(Connection.container, doc, if_match=found["_etag"]))


async def _registration(runtime: Runtime, connection: Connection, host_url: str) -> Subscription:
    """The connection's webhook registration (``<connection>-webhook``), made when missing with a new signing secret
    (Google's checks an audience instead; Notion's token counts as confirmed), and where its events must go."""
    registration_id = f"{connection.id}-webhook"
    provider = connection.provider
    registration = await runtime.registrations.find(registration_id)
    secret: str | None = None
    if registration is None:
        google = provider is Provider.GOOGLE
        settings = {"audience": GOOGLE_AUDIENCE, "serviceAccount": PUSH_SERVICE_ACCOUNT} if google else {}
        secret = None if google else secrets.token_hex(24)
        registration = WebhookRegistration(
            id=registration_id,
            tenant_id=DEMO_TENANT,
            provider=provider,
            connection_id=connection.id,
            integration_id=connection.integration_id,
            credential_id=None if secret is None else registration_id,
            settings=settings,
            verification=VerificationState.CONFIRMED if provider is Provider.NOTION else None,
        )
        if secret is not None:
            await runtime.credentials.add_webhook_secret(registration, WebhookSecret(secret=secret))
        await runtime.registrations.add(registration)
    elif registration.credential_id is not None:
        accepted = await WebhookSecrets(runtime.store, runtime.secrets).of_credential(
            DEMO_TENANT, registration.credential_id, now_utc()
        )
        secret = accepted.values[0] if accepted.values else None
    url = f"{host_url.rstrip('/')}/webhooks/{registration_id}/events"
    audience = GOOGLE_AUDIENCE if provider is Provider.GOOGLE else None
    return Subscription(provider.value, url, secret, audience)
