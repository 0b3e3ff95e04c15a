"""``castiel sandbox``: the five provider stand-ins on loopback, for the demo and for trying commands offline."""

from __future__ import annotations

from typing import Annotated

import typer

from castiel.cli.common import run
from castiel.sandbox.server import SandboxServer
from castiel.sandbox.state import DEFAULT_RECORDS, Sandbox

DEFAULT_PORT = 8099

sandbox_app = typer.Typer(
    no_args_is_help=True, help="Local stand-ins of the Salesforce, Notion, Slack, GitHub and Google APIs."
)


@sandbox_app.command("serve")
def sandbox_serve(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")] = DEFAULT_PORT,
    records: Annotated[
        int, typer.Option(min=0, max=10_000_000, help="Seeded records per entity type.")
    ] = DEFAULT_RECORDS,
) -> None:
    """Serve the provider APIs until interrupted; prints each provider's base URL (a connection's --base-url)."""
    run(_serve(port, records))


async def _serve(port: int, records: int) -> None:
    async with SandboxServer(Sandbox(records=records), port=port) as server:
        for provider, url in server.base_urls().items():
            typer.echo(f"{provider:<11} {url}")
        typer.echo(f"{'controls':<11} {server.url}/_sandbox")
        await server.serve_forever()
