"""The SQLite engine: checkpoints off the commit path, into the database file, stopped with the database; page size."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from castiel.backends.sqlite_engine import SqliteDatabase

SCHEMA = "CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, body BLOB NOT NULL);"
BLOB = b"x" * 8192
WAIT_SECONDS = 10.0


def insert(count: int) -> Callable[[sqlite3.Connection], None]:
    def work(conn: sqlite3.Connection) -> None:
        conn.executemany("INSERT INTO blobs (body) VALUES (?)", [(BLOB,)] * count)

    return work


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; the checkpointer is a thread, not a clock."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not condition():
        assert loop.time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.01)


async def test_committed_pages_reach_the_database_file_while_it_is_open(tmp_path: Path) -> None:
    path = tmp_path / "castiel.db"
    database = SqliteDatabase(path, SCHEMA)
    try:
        empty = path.stat().st_size
        await database.write(insert(256))  # 2 MiB: far below the writer's own backstop checkpoint
        # Only a checkpoint moves pages from the WAL into the file; the writer did not run one.
        await wait_for(lambda: path.stat().st_size >= empty + 256 * len(BLOB), "the checkpointer")
        assert await database.read(lambda conn: conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0]) == 256
    finally:
        await database.close()


async def test_a_reader_holding_an_old_snapshot_neither_blocks_commits_nor_loses_its_view(tmp_path: Path) -> None:
    path = tmp_path / "castiel.db"
    database = SqliteDatabase(path, SCHEMA)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        await database.write(insert(1))
        reader.execute("BEGIN")
        assert reader.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 1
        for _ in range(5):  # each commit wakes the checkpointer, which must leave the reader's pages alone
            await database.write(insert(64))
        assert reader.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 1
        reader.execute("COMMIT")
        assert reader.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 321
    finally:
        reader.close()
        await database.close()


async def test_close_stops_the_checkpointer_and_leaves_everything_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "castiel.db"
    # Only this database's threads: another test's database still open in this process has a thread of that name.
    earlier = set(threading.enumerate())
    database = SqliteDatabase(path, SCHEMA)
    await database.write(insert(16))
    await database.close()
    ours = set(threading.enumerate()) - earlier
    assert not [thread for thread in ours if thread.name == "sqlite-checkpoint-castiel"]
    assert not path.with_name("castiel.db-wal").exists()  # the last connection checkpointed and removed it
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 16
    finally:
        conn.close()


async def test_a_new_file_gets_16_kib_pages_and_an_existing_file_keeps_its_own(tmp_path: Path) -> None:
    existing = tmp_path / "existing.db"
    with closing(sqlite3.connect(existing)) as conn:
        conn.execute(SCHEMA)
        conn.execute("INSERT INTO blobs (body) VALUES (?)", (BLOB,))
        conn.commit()
    for path, page_size, rows in ((tmp_path / "new.db", 16384, 0), (existing, 4096, 1)):
        database = SqliteDatabase(path, SCHEMA)
        try:
            await database.write(insert(2))
            assert await database.read(lambda conn: conn.execute("PRAGMA page_size").fetchone()[0]) == page_size
            count = await database.read(lambda conn: conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0])
            assert count == rows + 2
        finally:
            await database.close()
