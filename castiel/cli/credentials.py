"""``castiel credentials``: give Castiel a credential, see it without its value, refresh, rotate, remove, connect.

A value goes straight to the secret store; nothing here prints it. ``show``, ``list`` and ``add`` print metadata
only (type, status, expiry, version …). ``refresh`` and ``rotate`` take the same Redis lock as every refresh in the
dev host and the Functions, so a command never races a running sync. ``connect`` runs the OAuth authorization-code
flow with PKCE through a loopback redirect, like ``gh auth login``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import redis.asyncio
import typer

from castiel.cli.common import JsonFlag, echo_items, echo_json, public, run, with_redis, with_secrets, with_store
from castiel.cli.flags import ID_RULE, check_http_url, check_id, check_optional_id
from castiel.cli.lookup import find_named, read_named
from castiel.clock import now_utc
from castiel.credentials.connect import (
    LoopbackCallback,
    authorize_url,
    check_callback,
    new_pkce,
    new_state,
    open_browser,
)
from castiel.credentials.dialects import DIALECTS
from castiel.credentials.oauth import TokenEndpoint, exchange_code
from castiel.credentials.records import list_credentials
from castiel.credentials.types import SINGLE_VALUE_FIELDS, CredentialType, parse_credential
from castiel.credentials.vault import CredentialVault
from castiel.models import Connection, CredentialMetadata, RotationPolicy
from castiel.ports import DocumentStore, SecretStore

T = TypeVar("T")

credentials_app = typer.Typer(no_args_is_help=True, help="Credentials: values in the secret store, metadata only here.")

CredentialId = Annotated[str, typer.Argument(help="Credential id.")]
Tenant = Annotated[str, typer.Option(help="Its tenant (needed only when the id is in several tenants).")]
Value = Annotated[
    str, typer.Option(help="The value of a single-value type (api_key, bearer_token, webhook_secret); '-' reads stdin.")
]
FromFile = Annotated[
    Path | None, typer.Option("--from-file", exists=True, dir_okay=False, help="JSON of the type's fields.")
]
_HTTP_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


async def _with_vault(work: Callable[[CredentialVault, DocumentStore], Awaitable[T]]) -> T:
    """Run ``work`` with the credential service on the configured store, secret store and Redis."""

    async def with_store_(store: DocumentStore) -> T:
        return await with_secrets(lambda secrets: with_vault_on(store, secrets, lambda vault: work(vault, store)))

    return await with_store(with_store_)


async def with_vault_on(
    store: DocumentStore, secrets: SecretStore, work: Callable[[CredentialVault], Awaitable[T]]
) -> T:
    """Run ``work`` with the credential service on ``store`` and ``secrets``, its locks on this data directory's
    Redis (what another command group needs to change credentials the way these commands do)."""

    async def with_redis_(client: redis.asyncio.Redis) -> T:
        async with httpx.AsyncClient(timeout=_HTTP_TIMEOUT) as http:
            return await work(CredentialVault.wire(store, secrets, client, http))

    return await with_redis(with_redis_)


def _value_fields(credential_type: str, value: str, from_file: Path | None) -> dict[str, Any]:
    """The fields given on the command line: ``--value`` for single-value types, else ``--from-file``."""
    if bool(value) == (from_file is not None):
        raise typer.BadParameter("give exactly one of --value and --from-file")
    if from_file is not None:
        try:
            fields = json.loads(from_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            raise typer.BadParameter(f"{from_file} is not a JSON file") from None
        if not isinstance(fields, dict):
            raise typer.BadParameter(f"{from_file} must hold a JSON object of the type's fields")
        return fields
    field = SINGLE_VALUE_FIELDS.get(credential_type)
    if field is None:
        raise typer.BadParameter(f"a {credential_type} has several fields: give them with --from-file")
    return {field: _from_stdin_if_dash(value)}


def _from_stdin_if_dash(given: str) -> str:
    """``given``, or for ``-`` one line of stdin: a secret piped in stays out of the shell history and process list."""
    return sys.stdin.readline().rstrip("\n") if given == "-" else given


def _shown(metadata: CredentialMetadata) -> dict[str, Any]:
    """``public`` plus the fields ``show --json`` always carries, null when unknown."""
    shown = public(metadata)
    for name in ("expiresAt", "lastRefreshedAt"):
        shown.setdefault(name, None)
    return shown


@credentials_app.command("add")
def credentials_add(
    tenant: Annotated[str, typer.Option(callback=check_id, help=f"Tenant id ({ID_RULE}).")],
    connection: Annotated[str, typer.Option(help="The connection it authenticates.")],
    credential_type: Annotated[CredentialType, typer.Option("--type", help="One of the nine credential types.")],
    value: Value = "",
    from_file: FromFile = None,
    credential_id: Annotated[
        str, typer.Option("--id", callback=check_optional_id, help="Credential id (generated when empty).")
    ] = "",
    rotation_days: Annotated[int | None, typer.Option(min=1, help="Replace the value every N days.")] = None,
    warn_before_days: Annotated[int, typer.Option(min=0, help="Warn N days before a deadline.")] = 14,
    refresh_idle_days: Annotated[
        int | None, typer.Option(min=1, help="The provider drops a refresh token unused this long.")
    ] = None,
) -> None:
    """Store a credential for a connection and print its metadata as JSON (never its value)."""
    parsed = parse_credential(credential_type.value, _value_fields(credential_type.value, value, from_file))
    rotation = RotationPolicy(
        interval_days=rotation_days, warn_before_days=warn_before_days, refresh_idle_days=refresh_idle_days
    )

    async def add(vault: CredentialVault, store: DocumentStore) -> CredentialMetadata:
        return await vault.add(
            tenant, connection, parsed, credential_id=credential_id or None, rotation=rotation, sole=True
        )

    echo_json(_shown(run(_with_vault(add))))


@credentials_app.command("list")
def credentials_list(
    tenant: Annotated[str, typer.Option(help="Only this tenant.")] = "", as_json: JsonFlag = False
) -> None:
    """List credentials, one line each (--json: an array of their metadata)."""

    listed = run(with_store(lambda store: list_credentials(store, tenant or None)))
    echo_items([_shown(metadata) for metadata in listed], as_json, _line)


def _line(item: dict[str, Any]) -> str:
    return (
        f"{item['id']}  {item['credentialType']:<26} {item['status']:<13} tenant={item['tenantId']}"
        f" connection={item['connectionId']} expires={item.get('expiresAt') or '-'} version={item['version']}"
    )


@credentials_app.command("show")
def credentials_show(credential_id: CredentialId, tenant: Tenant = "", as_json: JsonFlag = False) -> None:
    """A credential's metadata: type, status, expiry, version … never its value."""
    metadata = run(with_store(lambda store: find_named(store, CredentialMetadata, "credential", credential_id, tenant)))
    shown = _shown(metadata)
    if as_json:
        echo_json(shown)
        return
    for name, field in shown.items():
        text = json.dumps(field) if isinstance(field, dict | list) else field
        typer.echo(f"{name}: {'-' if field is None else text}")


@credentials_app.command("refresh")
def credentials_refresh(credential_id: CredentialId, tenant: Tenant = "") -> None:
    """Refresh now, under the same lock as every other refresh; print the new metadata as JSON."""

    async def refresh(vault: CredentialVault, store: DocumentStore) -> CredentialMetadata:
        metadata = await find_named(store, CredentialMetadata, "credential", credential_id, tenant)
        result = await vault.refresh(metadata.tenant_id, metadata.id, seen_version=None, trigger="cli")
        return result.current.metadata

    echo_json(_shown(run(_with_vault(refresh))))


@credentials_app.command("rotate")
def credentials_rotate(
    credential_id: CredentialId,
    value: Value = "",
    from_file: FromFile = None,
    tenant: Tenant = "",
) -> None:
    """Replace the value (a new key, a re-issued token); a credential that needed re-authorisation is active again."""

    async def rotate(vault: CredentialVault, store: DocumentStore) -> CredentialMetadata:
        metadata = await find_named(store, CredentialMetadata, "credential", credential_id, tenant)
        parsed = parse_credential(metadata.credential_type, _value_fields(metadata.credential_type, value, from_file))
        return await vault.rotate(metadata, parsed)

    echo_json(_shown(run(_with_vault(rotate))))


@credentials_app.command("remove")
def credentials_remove(credential_id: CredentialId, tenant: Tenant = "") -> None:
    """Delete the value and metadata; the connection that named it is left without a credential."""

    async def remove(vault: CredentialVault, store: DocumentStore) -> None:
        await vault.remove(await find_named(store, CredentialMetadata, "credential", credential_id, tenant))

    run(_with_vault(remove))
    typer.echo(f"removed {credential_id}")


@credentials_app.command("connect")
def credentials_connect(
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    connection: Annotated[str, typer.Option(help="The connection to authorise.")],
    client_id: Annotated[str, typer.Option(help="The OAuth client (app) id.")] = "",
    client_secret: Annotated[str, typer.Option(help="The OAuth client secret ('-' reads stdin).")] = "",
    client_file: Annotated[
        Path | None,
        typer.Option(
            "--client-file", exists=True, dir_okay=False, help="JSON with client_id, client_secret (Google's too)."
        ),
    ] = None,
    scope: Annotated[str, typer.Option(help="Scopes to ask for, as the provider spells them.")] = "",
    authorize_url_override: Annotated[
        str, typer.Option("--authorize-url", callback=check_http_url, help="Override the authorize URL.")
    ] = "",
    token_url: Annotated[
        str, typer.Option("--token-url", callback=check_http_url, help="Override the token endpoint.")
    ] = "",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Loopback port for the redirect (0: any).")] = 0,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the authorisation.")] = 300,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Only print the URL.")] = False,
) -> None:
    """Authorise a connection in the browser (OAuth code flow with PKCE, loopback redirect) and store the grant."""
    client = _client(client_id, client_secret, client_file)
    # A client file's endpoints are checked like the flags: a URL that cannot work fails now, not after the wait.
    token_url = token_url or check_http_url(client.get("token_url", ""))
    authorize_override = authorize_url_override or check_http_url(client.get("authorize_url", ""))

    async def connect(vault: CredentialVault, store: DocumentStore) -> CredentialMetadata:
        conn = await read_named(store, Connection, "connection", connection, tenant)
        dialect = DIALECTS[conn.provider]
        pkce, state = new_pkce(), new_state()
        async with LoopbackCallback(port) as callback:
            url = authorize_url(
                dialect,
                client_id=client["client_id"],
                redirect_uri=callback.redirect_uri,
                state=state,
                pkce=pkce,
                scope=scope or client.get("scope") or None,
                override=authorize_override or None,
            )
            typer.echo(f"Open this URL to authorise {conn.provider.value} for {conn.id}:\n{url}", err=True)
            if not no_browser and open_browser(url):
                typer.echo("(opened in your browser)", err=True)
            params = await callback.wait(timeout)
        async with httpx.AsyncClient(timeout=_HTTP_TIMEOUT) as http:
            value = await exchange_code(
                conn.provider,
                TokenEndpoint(http),
                code=check_callback(params, state),
                redirect_uri=callback.redirect_uri,
                code_verifier=pkce.verifier,
                client_id=client["client_id"],
                client_secret=client.get("client_secret"),
                token_url_override=token_url or None,
                now=now_utc(),
            )
        return await vault.reauthorize(tenant, conn.id, value)

    echo_json(_shown(run(_with_vault(connect))))


def _client(client_id: str, client_secret: str, client_file: Path | None) -> dict[str, str]:
    """The OAuth client from the flags or a client file (also Google's ``{"installed": {...}}`` download)."""
    if client_file is not None:
        if client_id or client_secret:
            raise typer.BadParameter("give --client-id/--client-secret or --client-file, not both")
        try:
            data = json.loads(client_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            raise typer.BadParameter(f"{client_file} is not a JSON file") from None
        data = data.get("installed") or data.get("web") or data if isinstance(data, dict) else {}
        names = {"auth_uri": "authorize_url", "token_uri": "token_url"}
        client = {names.get(key, key): str(value) for key, value in data.items() if isinstance(value, str)}
    else:
        given = _from_stdin_if_dash(client_secret)
        client = {"client_id": client_id, **({"client_secret": given} if given else {})}
    if not client.get("client_id"):
        raise typer.BadParameter("an OAuth client id is needed: --client-id or --client-file")
    return client
