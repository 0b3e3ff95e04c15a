"""``castiel connections``: a tenant's links to provider accounts.

``remove`` refuses a connection that tasks, webhook registrations or credentials still use, unless ``--cascade``:
then they go first (registrations through ``WebhookAdmin``, which deletes their secrets as ``webhooks remove`` does;
credentials value and metadata), and the connection last, so an interrupted cascade is finished by running it again.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from castiel.cli.common import JsonFlag, echo_items, echo_json, public, run, with_secrets, with_store
from castiel.cli.flags import ID_RULE, check_http_url, check_id, check_optional_id
from castiel.cli.lookup import create_named, find_named
from castiel.cli.webhooks import admin_on
from castiel.credentials.records import CredentialRecords, list_credentials
from castiel.errors import NotFound, PreconditionFailed
from castiel.models import (
    ConflictStrategy,
    Connection,
    CredentialMetadata,
    DedupStrategy,
    Provider,
    SyncMode,
    SyncTask,
    TaskStatus,
    WebhookRegistration,
)
from castiel.ports import DocumentStore, Filter, Query, SecretStore
from castiel.sync.pull import mapping_of
from castiel.telemetry import log_event
from castiel.webhooks.admin import WebhookAdmin
from castiel.webhooks.registrations import WebhookRegistrations

connections_app = typer.Typer(no_args_is_help=True, help="Tenant connections to providers.")


def _json_object(value: str) -> str:
    """``value`` if empty or a JSON object, else ``typer.BadParameter``."""
    if not value:
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise typer.BadParameter(f"{value[:60]!r} is not a JSON object")
    return value


@connections_app.command("add")
def connections_add(
    tenant: Annotated[str, typer.Option(callback=check_id, help=f"Tenant id ({ID_RULE}).")],
    provider: Annotated[Provider, typer.Option(help="Provider.")],
    entity_types: Annotated[str, typer.Option("--entity-types", help="Comma-separated entity types.")] = "",
    connection_id: Annotated[
        str, typer.Option("--id", callback=check_optional_id, help="Connection id (same rule; generated when empty).")
    ] = "",
    integration: Annotated[str, typer.Option(help="Integration id (defaults to the provider).")] = "",
    direction: Annotated[SyncMode, typer.Option(help="Sync direction.")] = SyncMode.BIDIRECTIONAL,
    base_url: Annotated[
        str, typer.Option("--base-url", callback=check_http_url, help="Provider API base URL (http or https).")
    ] = "",
    settings: Annotated[
        str,
        typer.Option(
            "--settings",
            callback=_json_object,
            help='Provider settings as a JSON object, e.g. {"repository": "acme/widgets"}.',
        ),
    ] = "",
    credential: Annotated[
        str,
        typer.Option("--credential", callback=check_optional_id, help="Id of the credential it authenticates with."),
    ] = "",
    conflict_strategy: Annotated[
        ConflictStrategy, typer.Option(help="Conflict strategy.")
    ] = ConflictStrategy.LOCAL_WINS,
    dedup_strategy: Annotated[DedupStrategy, typer.Option(help="Dedup strategy.")] = DedupStrategy.EXTERNAL_ID,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            exists=True,
            dir_okay=False,
            help="Entity mappings, a JSON file: {entityType: {shardType, fields, derived, relationships, keys}}.",
        ),
    ] = None,
) -> None:
    """Add a connection and print it as JSON; a mapping is checked against the provider's entity types first."""
    connection = Connection(
        id=connection_id or uuid.uuid4().hex,
        tenant_id=tenant,
        integration_id=integration or provider.value,
        provider=provider,
        base_url=base_url or None,
        entity_types=[name.strip() for name in entity_types.split(",") if name.strip()],
        sync_direction=direction,
        settings=json.loads(settings) if settings else {},
        credential_id=credential or None,
        conflict_strategy=conflict_strategy,
        dedup_strategy=dedup_strategy,
        entity_mappings=_mapping_file(mapping) if mapping is not None else {},
    )
    if mapping is not None:
        mapping_of(connection)  # a ConfigError naming every problem: nothing is stored

    async def add(store: DocumentStore) -> dict[str, Any]:
        if connection.credential_id is not None:
            await _existing_credential(store, connection.tenant_id, connection.credential_id)
        return await create_named(store, connection, "connection")

    echo_json(public(run(with_store(add, create=True))))


async def _existing_credential(store: DocumentStore, tenant_id: str, credential_id: str) -> None:
    """``NotFound`` unless the tenant has that credential: a connection naming none would fail every sync."""
    try:
        await store.read(CredentialMetadata.container, credential_id, tenant_id)
    except NotFound:
        raise NotFound(
            f"credential {credential_id} of tenant {tenant_id} does not exist: add the connection without"
            " --credential, then `castiel credentials add --connection` gives it one"
        ) from None


@connections_app.command("list")
def connections_list(
    tenant: Annotated[str, typer.Option(help="Only this tenant.")] = "", as_json: JsonFlag = False
) -> None:
    """List connections, one line each (``--json``: an array)."""
    query = Query(partition_key=tenant or None, order_by=(("tenantId", "asc"), ("id", "asc")))
    page = run(with_store(lambda store: store.query(Connection.container, query)))
    echo_items(page.items, as_json, _line)


def _mapping_file(path: Path) -> dict[str, Any]:
    """The entity mappings in ``path``: a JSON object of objects, else ``typer.BadParameter``."""
    try:
        parsed = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        raise typer.BadParameter(f"{path} is not a JSON file", param_hint="--mapping") from None
    if not isinstance(parsed, dict) or not all(isinstance(entry, dict) for entry in parsed.values()):
        raise typer.BadParameter(f"{path} must hold a JSON object of entity type → mapping", param_hint="--mapping")
    return parsed


def _line(connection: dict[str, Any]) -> str:
    entity_types = ",".join(connection.get("entityTypes", [])) or "-"
    mappings = connection.get("entityMappings") or {}
    mapped = ",".join(f"{name}→{entry.get('shardType')}" for name, entry in mappings.items())
    return (
        f"{connection['id']}  {connection['provider']:<10} tenant={connection['tenantId']}"
        f" direction={connection['syncDirection']} entities={entity_types} status={connection['status']}"
        + (f" mapping={mapped}" if mapped else "")
    )


@connections_app.command("remove")
def connections_remove(
    connection_id: Annotated[str, typer.Argument(help="Connection id.")],
    tenant: Annotated[str, typer.Option(help="Its tenant (needed only when the id is in several tenants).")] = "",
    cascade: Annotated[
        bool,
        typer.Option(
            "--cascade", help="Also remove its tasks, webhook registrations (with their secrets) and credentials."
        ),
    ] = False,
) -> None:
    """Delete a connection; refused while tasks, webhook registrations or credentials use it, unless --cascade."""

    async def remove(store: DocumentStore) -> str:
        connection = await find_named(store, Connection, "connection", connection_id, tenant)
        name = f"connection {connection.id!r} of tenant {connection.tenant_id!r}"
        tasks, registrations = await _users(store, connection)
        credentials = await _credentials(store, connection, registrations)
        if (tasks or registrations or credentials) and not cascade:
            users = _describe(tasks, registrations, credentials)
            raise PreconditionFailed(f"{name} is used by {users}: remove them first, or pass --cascade")
        running = [task.id for task in tasks if task.status is TaskStatus.RUNNING]
        if running:
            raise PreconditionFailed(f"{name} has running tasks ({', '.join(running)}): pause them first")
        if registrations:
            await with_secrets(lambda secrets: _remove_registrations(store, secrets, registrations))
        if credentials:
            await with_secrets(lambda secrets: _remove_credentials(CredentialRecords(store, secrets), credentials))
        try:
            for task in tasks:
                await store.delete(SyncTask.container, task.id, task.tenant_id, if_match=task.etag)
            await store.delete(Connection.container, connection.id, connection.tenant_id, if_match=connection.etag)
        except PreconditionFailed:
            raise PreconditionFailed(f"{name} or one of its tasks changed meanwhile: run the command again") from None
        used = tasks or registrations or credentials
        return f"removed {name}" + (f" and its {_describe(tasks, registrations, credentials)}" if used else "")

    typer.echo(run(with_store(remove)))


async def _users(store: DocumentStore, connection: Connection) -> tuple[list[SyncTask], list[WebhookRegistration]]:
    """The tasks and webhook registrations of ``connection``."""
    query = Query(partition_key=connection.tenant_id, filters=(Filter("connectionId", "==", connection.id),))
    tasks = [SyncTask.model_validate(doc) for doc in (await store.query(SyncTask.container, query)).items]
    registrations = [
        registration
        for registration in await WebhookRegistrations(store).list(connection.tenant_id)
        if registration.connection_id == connection.id
    ]
    return tasks, registrations


async def _remove_registrations(
    store: DocumentStore, secrets: SecretStore, registrations: list[WebhookRegistration]
) -> None:
    async def remove_each(admin: WebhookAdmin) -> None:
        for registration in registrations:
            await admin.remove(registration.id)

    await admin_on(store, secrets, remove_each)


async def _credentials(
    store: DocumentStore, connection: Connection, registrations: list[WebhookRegistration]
) -> list[CredentialMetadata]:
    """The credentials that authenticate ``connection`` (its own, and any other still naming it), but not the
    signing secrets of its registrations: removing a registration removes its secret."""
    signing = {registration.credential_id for registration in registrations}
    return [
        credential
        for credential in await list_credentials(store, connection.tenant_id)
        if credential.id not in signing
        and (credential.connection_id == connection.id or credential.id == connection.credential_id)
    ]


async def _remove_credentials(records: CredentialRecords, credentials: list[CredentialMetadata]) -> None:
    for credential in credentials:
        await records.delete(credential)
        log_event("credentials.removed", credential_id=credential.id, reason="connection removed")


def _describe(
    tasks: list[SyncTask], registrations: list[WebhookRegistration], credentials: list[CredentialMetadata]
) -> str:
    """``task(s) t1, t2 and webhook registration(s) r1 and credential(s) c1``: what uses a connection, by id."""
    parts = [f"task(s) {', '.join(task.id for task in tasks)}"] if tasks else []
    if registrations:
        parts.append(f"webhook registration(s) {', '.join(registration.id for registration in registrations)}")
    if credentials:
        parts.append(f"credential(s) {', '.join(credential.id for credential in credentials)}")
    return " and ".join(parts)
