"""``castiel shards update``: set shard fields by hand; the change goes out to every connection that syncs the shard
type, as a local edit (``castiel.sync.local``)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import typer

from castiel.cli.common import echo_json, public, run, with_queue, with_store
from castiel.sync.local import LocalEdit, LocalEdits

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def shards_update(
    shard_id: Annotated[str, typer.Argument(help="Shard id.")],
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    assignments: Annotated[
        list[str],
        typer.Option(
            "--set",
            help='field=value, repeatable. The value is JSON when it parses as JSON (8, true, null, "8"), else text.',
        ),
    ],
) -> None:
    """Set fields of one shard and push the change to every connection that syncs its type (origin local).

    Prints the shard as written; says on stderr whether the change was queued (setting a field to the value it has
    changes and sends nothing), where it goes, and which fields do not go out to which connection. A field that a
    connection owns read-only and no connection takes is refused (exit 2), nothing changed.
    """
    fields = parse_assignments(assignments)

    async def update() -> LocalEdit:
        return await with_store(lambda store: with_queue(
            lambda queue, config: LocalEdits(store, queue, config.service_bus_queue_outbound).update(
                tenant, shard_id, fields)))  # fmt: skip

    edit = run(update())
    echo_json(public(edit.shard))
    if not edit.changed:
        typer.echo(f"unchanged: shard {shard_id} already has these values; nothing was queued", err=True)
        return
    names = ", ".join(sorted(edit.changed))
    targets = ", ".join(edit.reach.targets) or "no connection (none pushes this shard type)"
    typer.echo(f"queued: {names} of shard {shard_id} go out to {targets}", err=True)
    for held in edit.reach.withheld:
        typer.echo(f"not to {held.connection_id}: {', '.join(held.fields)} ({held.reason})", err=True)


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``field=value`` pairs as fields; ``typer.BadParameter`` (exit 2) naming the first one that is not."""
    if not assignments:
        raise typer.BadParameter("give at least one --set field=value", param_hint="--set")
    fields: dict[str, Any] = {}
    for assignment in assignments:
        name, equals, text = assignment.partition("=")
        name = name.strip()
        if not equals or not _FIELD.fullmatch(name):
            raise typer.BadParameter(
                f"{assignment!r} is not field=value (field: letters, digits, _)", param_hint="--set"
            )
        try:
            fields[name] = json.loads(text)
        except ValueError:
            fields[name] = text
    return fields
