"""The ``castiel`` command: one sub-command group per module of this package.

Every command works on whichever backends are configured (embedded under ``CASTIEL_DATA_DIR`` by default, Azure when
its settings are present), and builds only the backends it needs.

Help is click's plain formatter, not Rich (``rich_markup_mode=None``, which typer hands down to every group and
command): typer's Rich renderer prints a parameter's type for flags too, so every boolean flag read ``--json <bool>``
as if it took a value; the plain formatter leaves flags bare. Errors never reach typer's renderers either: the root
group ends every failure as one line (``castiel.cli.exits``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from castiel.cli.conflicts import conflicts_app
from castiel.cli.connections import connections_app
from castiel.cli.credentials import credentials_app
from castiel.cli.exits import one_line_errors
from castiel.cli.probe import connections_fetch, connections_test
from castiel.cli.queue import queue_app
from castiel.cli.sandbox import sandbox_app
from castiel.cli.serve import serve
from castiel.cli.shard_edits import shards_update
from castiel.cli.shards import shards_app
from castiel.cli.status import status
from castiel.cli.sync import sync_app
from castiel.cli.tasks import tasks_app
from castiel.cli.webhooks import webhooks_app

DISTRIBUTION = "castiel-sync"


class _OneLineErrors(TyperGroup):
    """The root group: parsing and running any sub-command end in one ``error: …`` line, never a traceback."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with one_line_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with one_line_errors():
            return super().invoke(ctx)


def installed_version() -> str:
    """The version of the installed ``castiel-sync`` distribution."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (castiel-sync is not installed as a package)"


def _print_version(requested: bool) -> None:
    if requested:
        typer.echo(f"castiel {installed_version()}")
        raise typer.Exit()


app = typer.Typer(
    cls=_OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    help="Castiel sync: integration engine on Azure Functions.",
)


@app.callback()
def _root(
    show_version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit.")
    ] = False,
) -> None:
    """Options of ``castiel`` itself (the group's help text is the ``Typer``'s)."""


app.command()(serve)
app.command()(status)
connections_app.command("test")(connections_test)
connections_app.command("fetch")(connections_fetch)
shards_app.command("update")(shards_update)
app.add_typer(connections_app, name="connections")
app.add_typer(credentials_app, name="credentials")
app.add_typer(tasks_app, name="tasks")
app.add_typer(queue_app, name="queue")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(sync_app, name="sync")
app.add_typer(shards_app, name="shards")
app.add_typer(conflicts_app, name="conflicts")
