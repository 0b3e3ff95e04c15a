"""One SQLite file shared by the embedded backends: a group-committing writer thread and pooled readers.

Durability is never traded for speed: every write returns only after the transaction holding it has committed
with ``synchronous=FULL`` in WAL mode. Speed comes from *group commit*: writes that arrive while a commit is in
progress are run together in the next transaction, so N concurrent writers pay for one fsync, not N. Each write
runs in its own SAVEPOINT, so one failing write rolls back alone and its caller alone sees the error.

Writers in other processes are serialised by SQLite's own lock (``BEGIN IMMEDIATE`` with a busy timeout), which
is what makes the embedded queue safe across processes.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from castiel.errors import RetryableError

T = TypeVar("T")

DATABASE_FILE = "castiel.db"
"""The embedded backends' file under ``CASTIEL_DATA_DIR``: store and queue share it, and in one process one writer,
so a single group commit makes a webhook's enqueue and its audit line durable together."""

_BUSY_TIMEOUT_MS = 30_000
_MAX_GROUP = 512


@dataclass(slots=True)
class _Job:
    work: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class SqliteDatabase:
    """A SQLite database file with async ``write`` (group-committed) and ``read`` (thread pool) helpers.

    ``schema`` is the DDL of every backend that will use this instance (``CREATE … IF NOT EXISTS`` scripts).
    """

    def __init__(self, path: Path, schema: str, *, readers: int = 4) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer_conn = _connect(path)
        self._writer_conn.executescript(schema)
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix=f"sqlite-read-{path.stem}")
        self._writer = threading.Thread(target=self._write_loop, name=f"sqlite-write-{path.stem}", daemon=True)
        self._closed = False
        self._writer.start()

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` inside a committed write transaction (shared with concurrent writes) and return its result."""
        if self._closed:
            raise RetryableError(f"database {self.path.name} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(work, loop, future))
        return await future

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on a reader connection (a consistent WAL snapshot per statement)."""
        if self._closed:
            raise RetryableError(f"database {self.path.name} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, work)

    async def close(self) -> None:
        """Finish queued writes, then close every connection."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
        self._writer_conn.close()

    def _run_read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return work(conn)

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                break
            group = [first]
            while len(group) < _MAX_GROUP:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                group.append(job)
            self._commit_group(group)

    def _commit_group(self, group: list[_Job]) -> None:
        conn = self._writer_conn
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in group:
                conn.execute("SAVEPOINT job")
                try:
                    result = job.work(conn)
                except BaseException as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((True, result))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = RetryableError(f"sqlite commit failed on {self.path.name}: {exc}")
            failure.__cause__ = exc
            outcomes = [(False, failure)] * len(group)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, (ok, value) in zip(group, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, settled in by_loop.items():
            # One wake-up per event loop for the whole group, not one per write.
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
