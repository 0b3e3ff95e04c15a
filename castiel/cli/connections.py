"""``castiel connections``: a tenant's links to provider accounts."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer

from castiel.cli.common import JsonFlag, echo_items, echo_json, public, run, with_store
from castiel.cli.flags import ID_RULE, check_http_url, check_id, check_optional_id
from castiel.cli.lookup import create_named
from castiel.models import (
    Connection,
    Provider,
    SyncMode,
)
from castiel.ports import Query

connections_app = typer.Typer(no_args_is_help=True, help="Tenant connections to providers.")


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
) -> None:
    """Add a connection and print it as JSON."""
    connection = Connection(
        id=connection_id or uuid.uuid4().hex,
        tenant_id=tenant,
        integration_id=integration or provider.value,
        provider=provider,
        base_url=base_url or None,
        entity_types=[name.strip() for name in entity_types.split(",") if name.strip()],
        sync_direction=direction,
    )
    stored = run(with_store(lambda store: create_named(store, connection, "connection")))
    echo_json(public(stored))


@connections_app.command("list")
def connections_list(
    tenant: Annotated[str, typer.Option(help="Only this tenant.")] = "", as_json: JsonFlag = False
) -> None:
    """List connections, one line each (``--json``: an array)."""
    query = Query(partition_key=tenant or None, order_by=(("tenantId", "asc"), ("id", "asc")))
    page = run(with_store(lambda store: store.query(Connection.container, query)))
    echo_items(page.items, as_json, _line)


def _line(connection: dict[str, Any]) -> str:
    entity_types = ",".join(connection.get("entityTypes", [])) or "-"
    return (
        f"{connection['id']}  {connection['provider']:<10} tenant={connection['tenantId']}"
        f" direction={connection['syncDirection']} entities={entity_types} status={connection['status']}"
    )
