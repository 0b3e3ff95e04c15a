"""The ``castiel`` command: one sub-command group per module of this package.

Every command works on whichever backends are configured (embedded under ``CASTIEL_DATA_DIR`` by default, Azure when
its settings are present), and builds only the backends it needs.

The root group ends every failure as one line (``castiel.cli.exits``), before typer's own error renderer sees it.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from castiel.cli.connections import connections_app
from castiel.cli.exits import one_line_errors
from castiel.cli.queue import queue_app
from castiel.cli.serve import serve
from castiel.cli.status import status
from castiel.cli.tasks import tasks_app
from castiel.cli.webhooks import webhooks_app


class _OneLineErrors(TyperGroup):
    """The root group: parsing and running any sub-command end in one ``error: …`` line, never a traceback."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with one_line_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with one_line_errors():
            return super().invoke(ctx)


app = typer.Typer(
    cls=_OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    help="Castiel sync: integration engine on Azure Functions.",
)


app.command()(serve)
app.command()(status)
app.add_typer(connections_app, name="connections")
app.add_typer(tasks_app, name="tasks")
app.add_typer(queue_app, name="queue")
app.add_typer(webhooks_app, name="webhooks")
