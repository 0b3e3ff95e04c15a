"""``castiel sync run``: one pull of a connection now, in the foreground, through the inbound worker's own service —
its rate limiter, credentials and checkpoints — on the connection's sync task.

It prints the execution's ``sync-results`` document as JSON; a pull that did not succeed (failed, paused by the
provider, waiting for re-authorisation, rate limited) exits 1 with the reason on stderr. On a terminal, stderr also
shows a line per saved page.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from castiel.backends.data_dir import require_data_dir
from castiel.cli.common import echo_json, public, run, settings
from castiel.cli.exits import RUNTIME
from castiel.cli.flags import check_id
from castiel.models import SyncResult
from castiel.runtime import Runtime, settle_heap
from castiel.sync.pull import PageHook, PageSaved

sync_app = typer.Typer(no_args_is_help=True, help="Run syncs by hand.")


@sync_app.command("run")
def sync_run(
    tenant: Annotated[str, typer.Option(callback=check_id, help="Tenant id.")],
    connection: Annotated[str, typer.Option(callback=check_id, help="Connection id.")],
    entity_type: Annotated[str, typer.Option("--entity-type", help="Only this entity type (default: all).")] = "",
    full: Annotated[bool, typer.Option("--full", help="From the start, not from the last checkpoint.")] = False,
) -> None:
    """Pull a connection now and print the sync-results document as JSON (exit 1 when it did not succeed)."""
    progress = _progress if on_terminal() else None
    result = run(_pull(tenant, connection, entity_type or None, full, progress))
    echo_json(public(result))
    if result.status != "succeeded":
        typer.echo(f"error: sync {result.status}: {result.error or 'no reason given'}", err=True)
        raise typer.Exit(RUNTIME)


async def _pull(
    tenant: str, connection: str, entity_type: str | None, full: bool, progress: PageHook | None
) -> SyncResult:
    config = settings()
    if not config.uses_cosmos:
        require_data_dir(config.data_dir)
    runtime = await asyncio.to_thread(Runtime.build, config)
    settle_heap()
    try:
        return await runtime.inbound.run_now(tenant, connection, entity_type=entity_type, full=full, on_page=progress)
    finally:
        await runtime.aclose()


def on_terminal() -> bool:
    """Whether stderr is a terminal (a person watching), which gets a line per page."""
    return sys.stderr.isatty()


async def _progress(saved: PageSaved) -> None:
    page, total = saved.report.counts, saved.totals
    typer.echo(
        f"{saved.entity_type} page {saved.number}: {page.fetched} fetched, {page.created} created, "
        f"{page.updated} updated, {page.unchanged} unchanged, {page.deleted} deleted, {page.failed} failed"
        f" ({total.fetched} fetched so far)",
        err=True,
    )
