"""``castiel conflicts``: field conflicts (both values, the rule that decided, the side kept) and fuzzy duplicate
candidates. ``list`` shows the open ones — waiting for a person (``manual`` conflicts, duplicate candidates) —
unless ``--all``; ``resolve`` takes a side (``castiel.sync.resolution``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from castiel.cli.common import JsonFlag, echo_items, echo_json, public, run, with_store
from castiel.cli.lookup import find_document
from castiel.models import Conflict, ConflictStatus
from castiel.ports import DocumentStore, Filter, Query, QueryPage
from castiel.sync.resolution import resolve

conflicts_app = typer.Typer(no_args_is_help=True, help="Conflicts and duplicate candidates.")


class Side(StrEnum):
    LOCAL = "local"
    REMOTE = "remote"


@conflicts_app.command("list")
def conflicts_list(
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    everything: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List a tenant's open conflicts, newest first, one line each (``--json``: an array)."""
    filters = () if everything else (Filter("status", "==", ConflictStatus.OPEN.value),)
    query = Query(filters=filters, partition_key=tenant, order_by=(("detectedAt", "desc"),), limit=limit)
    page: QueryPage = run(with_store(lambda store: store.query(Conflict.container, query)))
    echo_items(page.items, as_json, _line)
    if page.continuation is not None:
        typer.echo(f"(more than {limit}: raise --limit)", err=True)


def _line(item: dict[str, Any]) -> str:
    head = f"{item['id']}  {item['status']:<8} shard={item['shardId']} connection={item['connectionId']}"
    if item.get("kind") == "duplicate":
        return (
            f"{head} duplicate of {item['candidateShardId']} by {item['key']}"
            f" ({item['value']!r} ~ {item['candidateValue']!r}, score {item['score']})"
        )
    return (
        f"{head} field={item['field']} local={item.get('localValue')!r} remote={item.get('remoteValue')!r}"
        f" rule={item['rule']} kept={item['kept']}"
    )


@conflicts_app.command("resolve")
def conflicts_resolve(
    conflict_id: Annotated[str, typer.Argument(help="Conflict id.")],
    take: Annotated[Side, typer.Option(help="The side to keep: local (the shard's value) or remote.")],
    tenant: Annotated[str, typer.Option(help="Its tenant (needed only when the id is in several tenants).")] = "",
) -> None:
    """Decide a conflict by taking one side, written into the shard, and print the conflict as JSON."""

    async def decide(store: DocumentStore) -> dict[str, Any]:
        conflict = await find_document(store, Conflict.container, "conflict", conflict_id, tenant)
        resolved = await resolve(store, conflict, take.value)
        if resolved.changed:
            typer.echo(f"shard {conflict['shardId']}: set {', '.join(resolved.changed)}", err=True)
        return resolved.conflict

    echo_json(public(run(with_store(decide))))
