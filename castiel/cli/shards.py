"""``castiel shards``: the records Castiel keeps in step, as stored — data, each connection's external id and sync
state, relationships. Deleted shards (tombstones, kept for ``SYNC_TOMBSTONE_RETENTION_DAYS``) are listed only with
``--deleted``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from castiel.cli.common import JsonFlag, echo_items, echo_json, public, run, with_store
from castiel.cli.flags import check_id
from castiel.cli.lookup import read_document
from castiel.models import Shard
from castiel.ports import Filter, Query, QueryPage

shards_app = typer.Typer(no_args_is_help=True, help="Shards: the records kept in step with the providers.")

_SHOWN_FIELDS = 3
_SHOWN_CHARS = 40


@shards_app.command("list")
def shards_list(
    tenant: Annotated[str, typer.Option(callback=check_id, help="Tenant id.")],
    shard_type: Annotated[str, typer.Option("--type", help="Only shards of this type (contact, issue …).")] = "",
    deleted: Annotated[bool, typer.Option("--deleted", help="Include deleted shards (tombstones).")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List a tenant's shards, one line each (``--json``: an array)."""
    filters = [Filter("shardType", "==", shard_type)] if shard_type else []
    if not deleted:
        filters.append(Filter("deleted", "==", False))
    query = Query(filters=tuple(filters), partition_key=tenant, order_by=(("id", "asc"),), limit=limit)
    page: QueryPage = run(with_store(lambda store: store.query(Shard.container, query)))
    echo_items(page.items, as_json, _line)
    if page.continuation is not None:
        typer.echo(f"(more than {limit}: narrow with --type or raise --limit)", err=True)


def _line(shard: dict[str, Any]) -> str:
    data = shard.get("data") or {}
    shown = " ".join(f"{name}={_short(value)}" for name, value in list(data.items())[:_SHOWN_FIELDS])
    more = f" (+{len(data) - _SHOWN_FIELDS} fields)" if len(data) > _SHOWN_FIELDS else ""
    ids = ",".join(f"{connection}:{external}" for connection, external in (shard.get("externalIds") or {}).items())
    gone = " DELETED" if shard.get("deleted") else ""
    return f"{shard['id']}  {shard['shardType']:<10} {shown}{more}  ids={ids or '-'} updated={shard['updatedAt']}{gone}"


def _short(value: object) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


@shards_app.command("show")
def shards_show(
    shard_id: Annotated[str, typer.Argument(help="Shard id.")],
    tenant: Annotated[str, typer.Option(callback=check_id, help="Tenant id.")],
) -> None:
    """Print one shard as JSON."""
    echo_json(public(run(with_store(lambda store: read_document(store, Shard.container, "shard", shard_id, tenant)))))
