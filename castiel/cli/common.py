"""What every ``castiel`` command shares: running a coroutine, opening only the backends it needs, JSON output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Annotated, Any, TypeVar

import redis.asyncio
import typer

from castiel.cli.exits import one_line_errors
from castiel.models import Document
from castiel.ports import DocumentStore, MessageQueue, SecretStore
from castiel.runtime import build_queue, build_secrets, build_store, open_redis
from castiel.settings import Settings, load_settings

T = TypeVar("T")
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; whatever goes wrong ends as one ``error: …`` line and exit code 2 (usage) or 1 (runtime),
    never a traceback (``castiel.cli.exits``)."""
    with one_line_errors():
        return asyncio.run(work)


def settings() -> Settings:
    """The configuration, read from the environment."""
    return load_settings()


async def with_store(work: Callable[[DocumentStore], Awaitable[T]], *, create: bool = False) -> T:
    """Run ``work`` with the configured document store, closed afterwards. Only a command that adds the first thing
    passes ``create=True``; any other says there is no data directory rather than creating an empty one."""
    store = build_store(settings(), create=create)
    try:
        return await work(store)
    finally:
        await store.close()


async def with_queue(work: Callable[[MessageQueue, Settings], Awaitable[T]]) -> T:
    """Run ``work`` with the configured message queue (and the settings naming the queues), closed afterwards; a
    missing data directory is an error, never created."""
    config = settings()
    queue = build_queue(config, create=False)
    try:
        return await work(queue, config)
    finally:
        await queue.close()


async def with_secrets(work: Callable[[SecretStore], Awaitable[T]]) -> T:
    """Run ``work`` with the configured secret store, closed afterwards."""
    secrets = build_secrets(settings())
    try:
        return await work(secrets)
    finally:
        await secrets.close()


async def with_redis(work: Callable[[redis.asyncio.Redis], Awaitable[T]]) -> T:
    """Run ``work`` with a client on the Redis this data directory uses (``REDIS_URL``, else the data directory's
    shared embedded Redis), closed afterwards."""
    async with open_redis(settings()) as client:
        return await work(client)


def echo_json(payload: object) -> None:
    """Print ``payload`` as indented JSON."""
    typer.echo(json.dumps(payload, indent=2, default=str))


def public(item: Document | Mapping[str, Any]) -> dict[str, Any]:
    """The one JSON shape of a stored thing in CLI output: its camelCase fields, without the store's own
    bookkeeping (``_etag``, ``_ts``). ``show``, ``add`` and every ``list --json`` print exactly this."""
    doc = item.to_doc() if isinstance(item, Document) else item
    return {key: value for key, value in doc.items() if not key.startswith("_")}


def echo_items(
    items: Sequence[Document | Mapping[str, Any]], as_json: bool, line: Callable[[dict[str, Any]], str]
) -> None:
    """A list command's output: a JSON array of ``public`` objects with ``--json``, else one ``line`` per item."""
    shown = [public(item) for item in items]
    if as_json:
        echo_json(shown)
        return
    for item in shown:
        typer.echo(line(item))
