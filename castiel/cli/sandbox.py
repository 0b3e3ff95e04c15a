"""``castiel sandbox``: the five provider stand-ins on loopback, for the demo and for trying commands offline."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from castiel.cli.common import echo_json, run, settings
from castiel.devhost.sandboxed import sandbox_url_of
from castiel.errors import ConfigError, NotFound
from castiel.http_errors import HTTPX_ERRORS
from castiel.sandbox.server import SandboxServer, stop_signals
from castiel.sandbox.state import API_PATHS, DEFAULT_RECORDS, Sandbox

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
    with stop_signals() as stop:
        async with SandboxServer(Sandbox(records=records), port=port) as server:
            for provider, url in server.base_urls().items():
                typer.echo(f"{provider:<11} {url}")
            typer.echo(f"{'controls':<11} {server.url}/_sandbox")
            await stop.wait()


def _check_provider(value: str) -> str:
    if value not in API_PATHS:
        raise typer.BadParameter(f"{value!r} is not a sandbox provider: {', '.join(API_PATHS)}")
    return value


@sandbox_app.command("edit")
def sandbox_edit(
    provider: Annotated[
        str, typer.Argument(callback=_check_provider, help="salesforce, notion, slack, github or google.")
    ],
    record_ids: Annotated[
        list[str] | None, typer.Option("--id", help="A record to edit (repeatable); default: the first --count.")
    ] = None,
    count: Annotated[int, typer.Option(min=1, max=1000, help="Without --id: how many records to edit.")] = 1,
    url: Annotated[
        str | None,
        typer.Option(help="The sandbox's URL [default: the one `castiel serve --sandbox` serves on this data dir]."),
    ] = None,
) -> None:
    """Edit records in the sandbox as a person would (a GitHub issue's title gains " (edited)"); with webhooks on,
    the change reaches Castiel and the other tools. Prints the edited records as JSON."""
    where = url or sandbox_url_of(settings().data_dir)
    if where is None:
        raise typer.BadParameter(
            "no sandbox runs on this data directory: start `castiel serve --sandbox`, or give --url", param_hint="--url"
        )
    body: dict[str, object] = {"ids": record_ids} if record_ids else {"count": count}
    edited = run(_control(where, f"/_sandbox/{provider}/edit", body))
    echo_json(edited.get("edited", []))


async def _control(url: str, path: str, body: dict[str, object]) -> dict[str, Any]:
    """POST to one of the sandbox's controls; its answer, or an error naming what went wrong."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        with HTTPX_ERRORS.translating(f"the sandbox at {url} does not answer"):
            response = await http.post(url.rstrip("/") + path, json=body)
    answer = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code == 404:
        raise NotFound(str(answer.get("error") or f"{path}: not found"))
    if response.status_code >= 400:
        raise ConfigError(str(answer.get("error") or f"the sandbox answered HTTP {response.status_code}"))
    return answer if isinstance(answer, dict) else {}
