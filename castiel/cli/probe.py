"""``castiel connections test`` and ``castiel connections fetch``: one connection through its adapter, writing nothing.

What an operator runs when a provider "returns nothing": ``test`` checks authentication and the configured objects
and prints the discovery; ``fetch`` pulls records exactly as a sync would — same adapter, credential, rate limiter —
and prints them instead of saving them, one JSON object per line, then ``{"cursor": …}``. A failure is one line naming
the connection and the provider's own message.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import httpx
import orjson
import redis.asyncio
import typer

from adapters.base import BaseAdapter
from adapters.engine import HttpEngine
from adapters.providers import build_registry
from castiel.cli.common import echo_json, run, settings, with_redis, with_secrets, with_store
from castiel.cli.lookup import find_named
from castiel.credentials.vault import CredentialVault
from castiel.models import Connection
from castiel.ports import DocumentStore, SecretStore
from castiel.ratelimit.limiter import RateLimiter

T = TypeVar("T")

ConnectionId = Annotated[str, typer.Argument(help="Connection id.")]
Tenant = Annotated[str, typer.Option(help="Its tenant (needed only when the id is in several tenants).")]
_HTTP_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


async def with_adapter(connection_id: str, tenant: str, work: Callable[[BaseAdapter, Connection], Awaitable[T]]) -> T:
    """Run ``work`` with the connection and its provider's adapter, wired as the workers wire it."""

    async def with_store_(store: DocumentStore) -> T:
        connection = await find_named(store, Connection, "connection", connection_id, tenant)

        async def with_secrets_(secrets: SecretStore) -> T:
            async def with_redis_(client: redis.asyncio.Redis) -> T:
                async with httpx.AsyncClient(timeout=_HTTP_TIMEOUT) as http:
                    limiter = RateLimiter.from_settings(settings(), client)
                    engine = HttpEngine(http, limiter, CredentialVault.wire(store, secrets, client, http))
                    return await work(build_registry(engine).get(connection.provider), connection)

            return await with_redis(with_redis_)

        return await with_secrets(with_secrets_)

    return await with_store(with_store_)


def connections_test(connection_id: ConnectionId, tenant: Tenant = "") -> None:
    """Check a connection (authentication, then its objects) and print the report and discovery as JSON."""
    report = run(with_adapter(connection_id, tenant, lambda adapter, connection: adapter.health_check(connection)))
    echo_json(report.to_json())
    if not report.ok:
        typer.echo(f"error: {report.error}", err=True)
        raise typer.Exit(1)


def connections_fetch(
    connection_id: ConnectionId,
    entity_type: Annotated[str, typer.Option("--entity-type", help="Entity type to pull (issue, page, Account …).")],
    tenant: Tenant = "",
    since: Annotated[str, typer.Option(help="Cursor to start from (as printed by a previous fetch).")] = "",
    limit: Annotated[int, typer.Option(min=0, help="Stop after this many records (0: all).")] = 0,
) -> None:
    """Pull records through the adapter without writing anything: one JSON line per record, then {"cursor": …}.

    The cursor is the one a sync would checkpoint after the last page printed whole, so ``--since`` with it goes on
    from there.
    """

    async def pull(adapter: BaseAdapter, connection: Connection) -> str | None:
        cursor, printed = since or None, 0
        async for page in adapter.fetch(connection, entity_type, since or None):
            for record in page.records:
                if limit and printed == limit:
                    return cursor
                typer.echo(orjson.dumps(record.to_json()).decode())
                printed += 1
            cursor = page.cursor
        return cursor

    cursor = run(with_adapter(connection_id, tenant, pull))
    typer.echo(json.dumps({"cursor": cursor}))
