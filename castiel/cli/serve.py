"""``castiel serve``: the dev host, running function_app.py in one process."""

from __future__ import annotations

from typing import Annotated

import typer

from castiel.cli.common import settings


def serve(
    port: Annotated[int, typer.Option(help="HTTP port (0: any free one).", min=0, max=65535)] = 7071,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    run_timers_now: Annotated[bool, typer.Option("--run-timers-now", help="Fire every timer once at start.")] = False,
    only: Annotated[str, typer.Option(help="Comma-separated function names to run (default: all).")] = "",
    app_ref: Annotated[str, typer.Option("--app", help="module:attribute of the FunctionApp.")] = "function_app:app",
) -> None:
    """Run function_app.py in one process: HTTP routes, timers and queue triggers, like the Functions host.

    One serve per data directory (CASTIEL_DATA_DIR); it starts the directory's embedded Redis unless REDIS_URL is
    set.
    """
    from castiel.devhost.host import HostOptions
    from castiel.devhost.host import serve as serve_host

    names = frozenset(name.strip() for name in only.split(",") if name.strip())
    settings()  # a bad setting fails here, before anything starts
    serve_host(HostOptions(port=port, host=host, run_timers_now=run_timers_now, only=names, app=app_ref))
