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
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            help="Also serve the five provider stand-ins and seed a demo tenant against them, webhooks on.",
        ),
    ] = False,
    sandbox_port: Annotated[
        int, typer.Option("--sandbox-port", min=0, max=65535, help="With --sandbox: the stand-ins' port (0: any).")
    ] = 8099,
    sandbox_records: Annotated[
        int, typer.Option("--sandbox-records", min=0, max=100_000, help="With --sandbox: records per entity type.")
    ] = 20,
    grace_period: Annotated[
        float | None,
        typer.Option(
            "--grace-period",
            min=0,
            help="Seconds a stop signal waits for invocations in flight [default: CASTIEL_SHUTDOWN_GRACE_SECONDS, 30].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run function_app.py in one process: HTTP routes, timers and queue triggers, like the Functions host.

    One serve per data directory (CASTIEL_DATA_DIR); it starts the directory's embedded Redis unless REDIS_URL is
    set. SIGTERM or Ctrl-C stops it within the grace period; a second Ctrl-C stops it at once.

    With --sandbox it also serves the Salesforce, Notion, Slack, GitHub and Google stand-ins in the same process and
    seeds tenant "demo" against them (GitHub issues and Notion tasks synced both ways), their webhooks sent here.
    """
    from castiel.devhost.host import HostOptions
    from castiel.devhost.host import serve as serve_host
    from castiel.devhost.sandboxed import SandboxOptions

    names = frozenset(name.strip() for name in only.split(",") if name.strip())
    settings()  # a bad setting fails here, before anything starts
    serve_host(
        HostOptions(
            port=port,
            host=host,
            run_timers_now=run_timers_now,
            only=names,
            app=app_ref,
            grace_period=grace_period,
            sandbox=SandboxOptions(sandbox_port, sandbox_records) if sandbox else None,
        )
    )
