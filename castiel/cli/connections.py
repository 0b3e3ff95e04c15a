"""``castiel connections``: a tenant's links to provider accounts.

``add`` and ``update`` check a connection whole before storing it: its policy flags fit its strategies
(``connection_fields``) and its mapping fits its provider. ``remove`` is ``connection_removal``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from castiel.cli.common import JsonFlag, echo_items, echo_json, public, run, with_store
from castiel.cli.connection_fields import (
    FALLBACK,
    SOURCE_PRIORITY,
    THRESHOLD,
    DeletePolicyFlag,
    FallbackFlag,
    SourcePriorityFlag,
    ThresholdFlag,
    check_policy,
    id_list,
)
from castiel.cli.connection_removal import remove_connection
from castiel.cli.flags import ID_RULE, check_http_url, check_id, check_optional_id
from castiel.cli.lookup import create_named, find_named
from castiel.errors import NotFound, PreconditionFailed
from castiel.models import (
    ConflictStrategy,
    Connection,
    CredentialMetadata,
    DedupStrategy,
    DeletePolicy,
    Provider,
    SyncMode,
)
from castiel.ports import DocumentStore, Query
from castiel.sync.pull import mapping_of

connections_app = typer.Typer(no_args_is_help=True, help="Tenant connections to providers.")


def _json_object(value: str | None) -> str | None:
    """``value`` if absent, empty or a JSON object, else ``typer.BadParameter``."""
    if not value:
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise typer.BadParameter(f"{value[:60]!r} is not a JSON object")
    return value


SettingsFlag = Annotated[
    str | None,
    typer.Option(
        "--settings",
        callback=_json_object,
        help='Provider settings as a JSON object, e.g. {"repository": "acme/widgets"}.',
    ),
]
MappingFlag = Annotated[
    Path | None,
    typer.Option(
        "--mapping",
        exists=True,
        dir_okay=False,
        help="Entity mappings, a JSON file: {entityType: {shardType, fields, derived, relationships, keys}}.",
    ),
]
ConflictFlag = Annotated[ConflictStrategy | None, typer.Option(help="Conflict strategy.", show_default=False)]
DedupFlag = Annotated[DedupStrategy | None, typer.Option(help="Dedup strategy.", show_default=False)]
DirectionFlag = Annotated[SyncMode | None, typer.Option(help="Sync direction.", show_default=False)]


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
    settings: SettingsFlag = None,
    credential: Annotated[
        str,
        typer.Option("--credential", callback=check_optional_id, help="Id of the credential it authenticates with."),
    ] = "",
    conflict_strategy: Annotated[
        ConflictStrategy, typer.Option(help="Conflict strategy.")
    ] = ConflictStrategy.LOCAL_WINS,
    dedup_strategy: Annotated[DedupStrategy, typer.Option(help="Dedup strategy.")] = DedupStrategy.EXTERNAL_ID,
    mapping: MappingFlag = None,
    delete_policy: DeletePolicyFlag = None,
    source_priority: SourcePriorityFlag = None,
    field_merge_fallback: FallbackFlag = None,
    fuzzy_threshold: ThresholdFlag = None,
) -> None:
    """Add a connection and print it as JSON; its flags and mapping are checked first, and nothing is stored when
    they do not fit."""
    policy = _policy(delete_policy, source_priority, field_merge_fallback, fuzzy_threshold)
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
        **policy,
    )
    _check(connection, policy, mapping)

    async def add(store: DocumentStore) -> dict[str, Any]:
        if connection.credential_id is not None:
            await _existing_credential(store, connection.tenant_id, connection.credential_id)
        return await create_named(store, connection, "connection")

    echo_json(public(run(with_store(add, create=True))))


@connections_app.command("update")
def connections_update(
    connection_id: Annotated[str, typer.Argument(callback=check_id, help="Connection id.")],
    tenant: Annotated[
        str,
        typer.Option(callback=check_optional_id, help="Its tenant (needed only when the id is in several tenants)."),
    ] = "",
    conflict_strategy: ConflictFlag = None,
    dedup_strategy: DedupFlag = None,
    direction: DirectionFlag = None,
    settings: SettingsFlag = None,
    mapping: MappingFlag = None,
    delete_policy: DeletePolicyFlag = None,
    source_priority: SourcePriorityFlag = None,
    field_merge_fallback: FallbackFlag = None,
    fuzzy_threshold: ThresholdFlag = None,
) -> None:
    """Change what is given of a connection, nothing else, and print it as JSON (as add does); the result is checked
    as add checks a new one, and written only if the connection did not change meanwhile."""
    changes: dict[str, Any] = _policy(delete_policy, source_priority, field_merge_fallback, fuzzy_threshold)
    given = {
        "conflict_strategy": conflict_strategy,
        "dedup_strategy": dedup_strategy,
        "sync_direction": direction,
        "settings": json.loads(settings) if settings is not None else None,
        "entity_mappings": _mapping_file(mapping) if mapping is not None else None,
    }
    changes |= {name: value for name, value in given.items() if value is not None}
    if not changes:
        raise typer.BadParameter("nothing to change: give at least one option (see --help)")

    async def update(store: DocumentStore) -> dict[str, Any]:
        current = await find_named(store, Connection, "connection", connection_id, tenant)
        updated = Connection.model_validate(current.model_dump() | changes)
        _check(updated, changes, mapping)
        try:
            return await store.replace(Connection.container, updated.to_doc(), if_match=current.etag)
        except PreconditionFailed:
            raise PreconditionFailed(
                f"connection {current.id!r} of tenant {current.tenant_id!r} changed meanwhile: run the command again"
            ) from None

    echo_json(public(run(with_store(update))))


def _policy(
    delete_policy: DeletePolicy | None,
    source_priority: str | None,
    field_merge_fallback: ConflictStrategy | None,
    fuzzy_threshold: float | None,
) -> dict[str, Any]:
    """The policy flags given, as ``Connection`` fields."""
    given = {
        "delete_policy": delete_policy,
        "source_priority": id_list(source_priority) if source_priority is not None else None,
        "field_merge_fallback": field_merge_fallback,
        "fuzzy_threshold": fuzzy_threshold,
    }
    return {name: value for name, value in given.items() if value is not None}


_FLAGS = {"source_priority": SOURCE_PRIORITY, "field_merge_fallback": FALLBACK, "fuzzy_threshold": THRESHOLD}


def _check(connection: Connection, given: Mapping[str, Any], mapping: Path | None) -> None:
    """``typer.BadParameter`` (policy) or ``ConfigError`` (mapping) when ``connection`` must not be stored."""
    check_policy(connection, {flag for name, flag in _FLAGS.items() if name in given})
    if mapping is not None:
        mapping_of(connection)  # a ConfigError naming every problem: nothing is stored


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
    typer.echo(run(with_store(lambda store: remove_connection(store, connection_id, tenant, cascade=cascade))))
