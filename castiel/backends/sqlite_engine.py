"""One SQLite file shared by the embedded backends: a group-committing writer thread and pooled readers.

Durability is never traded for speed: every write returns only after the transaction holding it has committed
with ``synchronous=FULL`` in WAL mode. Speed comes from *group commit*: writes that arrive while a commit is in
progress are run together in the next transaction, so N concurrent writers pay for one fsync, not N. Each write
runs in its own SAVEPOINT, so one failing write rolls back alone and its caller alone sees the error.

Writers in other processes are serialised by SQLite's own lock (``BEGIN IMMEDIATE`` with a busy timeout), which
is what makes the embedded queue safe across processes.

A new file gets 16 KiB pages (an existing one keeps its own): a page of 2,000 shard writes dirties about as many
bytes either way, but in a quarter of the pages, so fewer B-tree steps, page reads and WAL frames; the writer keeps
16 MiB of them cached (SQLite's default is 2 MiB), enough for the inner pages of the key index at a few hundred
thousand documents. Measured at the inbound pull's shape: ``benchmarks/store_writes.py``.

Checkpoints (copying committed WAL pages into the database file, and its fsync) are kept off the commit path: a
checkpointer thread with its own connection runs a ``PASSIVE`` checkpoint after commits, at most every 200 ms, while
the caller goes on with its work; SQLite lets a checkpoint and a writer run at once. Only a WAL that outgrows
``_WAL_BACKSTOP_BYTES`` (commits arriving faster than checkpoints finish) is checkpointed by the writer itself as it
commits. A checkpoint touches only pages already durable in the WAL, so neither path changes what a commit promises.

A file that is not a SQLite database, or a damaged one, is a ``PermanentError`` naming the file and how to recover,
whether it shows at open or on a later page read; so is a directory this process may not write to.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from castiel.backends.data_dir import ensure_data_dir, is_writable, not_writable
from castiel.errors import CastielError, PermanentError, RetryableError

T = TypeVar("T")

DATABASE_FILE = "castiel.db"
"""The embedded backends' file under ``CASTIEL_DATA_DIR``: store and queue share it, and in one process one writer,
so a single group commit makes a webhook's enqueue and its audit line durable together."""

_BUSY_TIMEOUT_MS = 30_000
_MAX_GROUP = 512
_PAGE_SIZE = 16384
_WRITER_CACHE_KIB = 16384
_WAL_BACKSTOP_BYTES = 64 * 1024 * 1024
_CHECKPOINT_SPACING_SECONDS = 0.2
# Primary result codes (the low byte of an extended code).
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_UNWRITABLE = frozenset({sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM})
_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


@dataclass(slots=True)
class _Job:
    work: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA page_size={_PAGE_SIZE}")  # only a file not yet written takes it
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _connect_writer(path: Path) -> sqlite3.Connection:
    conn = _connect(path)
    conn.execute(f"PRAGMA cache_size=-{_WRITER_CACHE_KIB}")
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_BACKSTOP_BYTES // page_size}")
    conn.execute(f"PRAGMA journal_size_limit={_WAL_BACKSTOP_BYTES}")  # a WAL restarted after a burst shrinks back
    return conn


class SqliteDatabase:
    """A SQLite database file with async ``write`` (group-committed) and ``read`` (thread pool) helpers.

    ``schema`` is the DDL of every backend that will use this instance (``CREATE … IF NOT EXISTS`` scripts).
    """

    def __init__(self, path: Path, schema: str, *, readers: int = 4) -> None:
        self.path = path
        ensure_data_dir(path.parent)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        try:
            self._writer_conn = _connect_writer(path)
            self._writer_conn.executescript(schema)
            self._checkpoint_conn = _connect(path)
        except sqlite3.Error as exc:
            raise open_failure(path, exc) from exc
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix=f"sqlite-read-{path.stem}")
        self._writer = threading.Thread(target=self._write_loop, name=f"sqlite-write-{path.stem}", daemon=True)
        self._committed = threading.Event()
        self._stopping = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name=f"sqlite-checkpoint-{path.stem}", daemon=True
        )
        self._closed = False
        self._writer.start()
        self._checkpointer.start()

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
        self._stopping.set()
        self._committed.set()  # with the writer stopped, the checkpointer's next wake-up is its last
        await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.join)
        self._checkpoint_conn.close()
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
        self._writer_conn.close()

    def _run_read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = _connect(self.path)
                conn.execute("PRAGMA query_only=ON")
                self._local.conn = conn
                with self._reader_lock:
                    self._reader_conns.append(conn)
            return work(conn)
        except sqlite3.DatabaseError as exc:
            damaged = _damaged(self.path, exc)
            if damaged is None:
                raise
            raise damaged from exc

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
            self._committed.set()

    def _checkpoint_loop(self) -> None:
        """After commits, copy the WAL into the database file, at most once per ``_CHECKPOINT_SPACING_SECONDS``:
        the commits in between share one checkpoint (and its fsync of the file, which would otherwise contend
        with every small commit's own). The last connection to close checkpoints what is left."""
        while True:
            self._committed.wait()
            if not self._writer.is_alive():
                return
            self._committed.clear()
            # Another connection checkpointing, or a failing file, is no concern here: the next commit tries again,
            # and a damaged file is reported to the writes and reads that meet it.
            with contextlib.suppress(sqlite3.Error):
                self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._stopping.wait(_CHECKPOINT_SPACING_SECONDS)

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
                    damaged = _damaged(self.path, exc) if isinstance(exc, sqlite3.DatabaseError) else None
                    if damaged is not None:
                        damaged.__cause__ = exc
                    outcomes.append((False, damaged or exc))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((True, result))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure: CastielError = _damaged(self.path, exc) or RetryableError(
                f"sqlite commit failed on {self.path.name}: {exc}"
            )
            failure.__cause__ = exc
            outcomes = [(False, failure)] * len(group)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, (ok, value) in zip(group, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, settled in by_loop.items():
            # One wake-up per event loop for the whole group, not one per write.
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, settled)


def open_failure(path: Path, exc: sqlite3.Error) -> CastielError:
    """What opening ``path`` failing with ``exc`` means to an operator: a damaged file, a directory this process may
    not write to, a lock held too long (retryable), or another failure naming the file."""
    damaged = _damaged(path, exc)
    if damaged is not None:
        return damaged
    code = _primary_code(exc)
    if code in _UNWRITABLE and not is_writable(path.parent):
        return not_writable(path.parent)
    if code in _BUSY:
        return RetryableError(f"database {path} is locked by another process: {exc}")
    return PermanentError(f"cannot open database {path}: {exc}")


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _damaged(path: Path, exc: sqlite3.Error) -> PermanentError | None:
    if _primary_code(exc) not in _DAMAGED:
        return None
    return PermanentError(
        f"{path} is damaged or is not a Castiel database ({exc}). To recover: stop every castiel process using it,"
        f" move it aside with its -wal and -shm files (mv {path} {path}.damaged) and run the command again to start"
        " an empty one, or restore it from a backup"
    )


def _settle(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
