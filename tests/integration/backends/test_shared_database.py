"""The embedded store and queue on one SQLite database: one writer, one group commit, neither closes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from castiel.backends import sqlite_queue, sqlite_store
from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.backends.sqlite_engine import DATABASE_FILE, SqliteDatabase
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.ports import OutgoingMessage
from castiel.runtime import Runtime
from castiel.settings import load_settings


async def test_store_and_queue_share_one_database_and_neither_closes_it_for_the_other(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / DATABASE_FILE, sqlite_store.SCHEMA + sqlite_queue.SCHEMA)
    store = SqliteDocumentStore(database)
    queue = SqliteMessageQueue(database)

    await store.create("webhook-audit", {"id": "a1", "registrationId": "r1"})
    await queue.send("sync-outbound", [OutgoingMessage(body=b"{}", message_id="m1")])
    await store.close()
    await queue.send("sync-outbound", [OutgoingMessage(body=b"{}", message_id="m2")])
    await queue.close()
    assert (await store.read("webhook-audit", "a1", "r1"))["id"] == "a1"
    await database.close()

    reopened = SqliteMessageQueue(tmp_path / DATABASE_FILE)
    assert (await reopened.stats("sync-outbound")).active == 2
    await reopened.close()


async def test_the_embedded_runtime_puts_store_and_queue_on_one_database(
    data_dir: Path, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    runtime = Runtime.build(load_settings())
    try:
        assert runtime.shared_database is not None
        assert runtime.shared_database.path == data_dir / DATABASE_FILE
        await runtime.store.create("webhook-audit", {"id": "a1", "registrationId": "r1"})
        await runtime.queue.send("sync-outbound", [OutgoingMessage(body=b"{}", message_id="m1")])
    finally:
        await runtime.aclose()
    assert sorted(path.name for path in data_dir.glob("*.db")) == [DATABASE_FILE]  # noqa: ASYNC240
