"""The embedded ``MessageQueue``: Azure Service Bus queue semantics on one SQLite file.

Every queue lives in the same three tables, created on first use of a name:

* ``queue_messages``: one row per message, in its queue (``dead_lettered = 0``) or its dead-letter sub-queue
  (``dead_lettered = 1``). A message is *scheduled* while ``enqueued_at`` is in the future and *locked* while
  ``locked_until`` is; settling needs the row's current ``lock_token`` and an unexpired lock.
* ``queue_sequences``: the last sequence number handed out per queue (numbers start at 1 and only grow).
* ``queue_duplicates``: the message ids seen inside the duplicate-detection window, purged lazily on send.

Receiving selects and locks in one statement inside one write transaction, and SQLite serialises write
transactions across processes, so two receivers sharing the file never hold the same message. A message whose
lock expired at the max delivery count is dead-lettered (``MaxDeliveryCountExceeded``) by the next receive, peek
or stats instead of being delivered again. Every time comes from the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson

from castiel.backends.sqlite_engine import DATABASE_FILE, SqliteDatabase
from castiel.clock import Clock, system_clock, to_datetime
from castiel.errors import LockLost, RetryableError
from castiel.ports import OutgoingMessage, PropertyValue, QueueStats, ReceivedMessage, SubQueue
from castiel.settings import Settings

T = TypeVar("T")

MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"

# Receivers without a same-process wake-up (a sender in another process) poll, backing off between these.
_FIRST_POLL_SECONDS = 0.02
_LAST_POLL_SECONDS = 0.2

# The statements below are assembled from these module constants only; every value is a bound parameter.
# ruff: noqa: S608

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_sequences (
    queue TEXT PRIMARY KEY,
    last_sequence INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue_messages (
    queue TEXT NOT NULL,
    sequence_number INTEGER NOT NULL,
    dead_lettered INTEGER NOT NULL DEFAULT 0,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL,
    correlation_id TEXT,
    properties BLOB NOT NULL,
    content_type TEXT,
    enqueued_at REAL NOT NULL,
    scheduled_at REAL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    lock_token TEXT,
    locked_until REAL,
    dead_letter_reason TEXT,
    dead_letter_description TEXT,
    dead_lettered_at REAL,
    PRIMARY KEY (queue, sequence_number)
);
CREATE INDEX IF NOT EXISTS queue_messages_order ON queue_messages (queue, dead_lettered, sequence_number);
CREATE TABLE IF NOT EXISTS queue_duplicates (
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (queue, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS queue_duplicates_expiry ON queue_duplicates (expires_at);
"""

_COLUMNS = (
    "sequence_number, message_id, body, correlation_id, properties, content_type, enqueued_at, scheduled_at, "
    "delivery_count, lock_token, locked_until, dead_letter_reason, dead_letter_description"
)
_INSERT = (
    "INSERT INTO queue_messages (queue, sequence_number, message_id, body, correlation_id, properties, "
    "content_type, enqueued_at, scheduled_at) VALUES "
)
_INSERT_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_CHUNK_ROWS = 100  # rows per multi-row statement, far below SQLite's limit on bound parameters

_AVAILABLE = (
    "queue = :queue AND dead_lettered = :dead_lettered AND enqueued_at <= :now "
    "AND (locked_until IS NULL OR locked_until <= :now)"
)
_ANY_AVAILABLE = f"SELECT EXISTS (SELECT 1 FROM queue_messages WHERE {_AVAILABLE})"
_CLAIM = f"""
UPDATE queue_messages
SET delivery_count = delivery_count + 1, lock_token = lower(hex(randomblob(16))), locked_until = :locked_until
WHERE queue = :queue AND sequence_number IN (
    SELECT sequence_number FROM queue_messages WHERE {_AVAILABLE} ORDER BY sequence_number LIMIT :limit
)
RETURNING {_COLUMNS}
"""
_DEAD_LETTER_SET = (
    "dead_lettered = 1, lock_token = NULL, locked_until = NULL, dead_letter_reason = :reason, "
    "dead_letter_description = :description, dead_lettered_at = :now"
)
_EXHAUSTED = "dead_lettered = 0 AND delivery_count >= :max_delivery_count"
_EXPIRE_EXHAUSTED = f"""
UPDATE queue_messages SET {_DEAD_LETTER_SET}
WHERE queue = :queue AND {_EXHAUSTED} AND (locked_until IS NULL OR locked_until <= :now)
"""
# A settle touches the row only while the caller still holds its lock.
_HELD = "queue = :queue AND sequence_number = :sequence_number AND lock_token = :lock_token AND locked_until > :now"
_COMPLETE = f"DELETE FROM queue_messages WHERE {_HELD}"
_DEAD_LETTER = f"UPDATE queue_messages SET {_DEAD_LETTER_SET} WHERE {_HELD}"
_DEAD_LETTER_IF_EXHAUSTED = f"UPDATE queue_messages SET {_DEAD_LETTER_SET} WHERE {_HELD} AND {_EXHAUSTED}"
_RELEASE = f"UPDATE queue_messages SET lock_token = NULL, locked_until = NULL WHERE {_HELD}"
_RENEW = f"UPDATE queue_messages SET locked_until = :locked_until WHERE {_HELD}"
_PEEK = (
    f"SELECT {_COLUMNS} FROM queue_messages WHERE queue = :queue AND dead_lettered = :dead_lettered "
    "ORDER BY sequence_number LIMIT :limit"
)
_STATS = """
SELECT COALESCE(SUM(dead_lettered = 0 AND enqueued_at <= :now), 0),
       COALESCE(SUM(dead_lettered = 0 AND enqueued_at > :now), 0),
       COALESCE(SUM(dead_lettered = 1), 0)
FROM queue_messages WHERE queue = :queue
"""


class SqliteMessageQueue:
    """A ``MessageQueue`` on a SQLite file, safe to share between processes (the embedded default)."""

    def __init__(
        self,
        database: Path | SqliteDatabase,
        *,
        clock: Clock = system_clock,
        lock_duration_seconds: float = 60,
        max_delivery_count: int = 10,
        duplicate_window_seconds: float = 600,
    ) -> None:
        if lock_duration_seconds <= 0 or max_delivery_count < 1 or duplicate_window_seconds < 0:
            raise ValueError("lock duration and max delivery count must be positive, the window not negative")
        # On a file of its own (a path), or on a database shared with the store (closed by its owner).
        self._owns_db = isinstance(database, Path)
        self._db = SqliteDatabase(database, SCHEMA) if isinstance(database, Path) else database
        self._clock = clock
        self._lock_duration = lock_duration_seconds
        self._max_delivery_count = max_delivery_count
        self._duplicate_window = duplicate_window_seconds
        self._wakers: dict[str, asyncio.Event] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = system_clock) -> SqliteMessageQueue:
        """The queue in ``<data_dir>/castiel.db`` with the configured max delivery count."""
        return cls(settings.data_dir / DATABASE_FILE, clock=clock, max_delivery_count=settings.max_delivery_count)

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """Enqueue all of ``messages`` in one transaction, dropping ids already sent inside the window."""
        if not messages:
            return
        now = self._clock()
        rows = [_outgoing_row(message, now) for message in messages]
        await self._write(lambda conn: self._insert(conn, queue, rows, now))
        self._notify(queue)

    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        max_wait_seconds: float = 0.0,
        sub_queue: SubQueue | None = None,
    ) -> list[ReceivedMessage]:
        """Lock up to ``max_messages`` available messages in sequence order, waiting up to ``max_wait_seconds``."""
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        dead_lettered = int(sub_queue == "dead_letter")
        loop = asyncio.get_running_loop()
        # The wait is real elapsed time on the event loop, not message time: a ManualClock never moves by itself.
        deadline = loop.time() + max_wait_seconds
        pause = _FIRST_POLL_SECONDS
        while True:
            # Taken before looking, so a send that commits after the look still wakes this receiver.
            waker = self._wakers.setdefault(queue, asyncio.Event())
            # An idle poll is a read; only a poll that sees something takes the write lock to claim it.
            if await self._read(partial(self._any_available, queue, dead_lettered)):
                received = await self._write(partial(self._claim, queue, dead_lettered, max_messages))
                if received:
                    return received
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waker.wait(), min(pause, remaining))
            pause = min(pause * 2, _LAST_POLL_SECONDS)

    async def complete(self, queue: str, message: ReceivedMessage) -> None:
        """Delete a message the caller holds the lock of."""
        await self._settle(queue, message, _COMPLETE)

    async def abandon(self, queue: str, message: ReceivedMessage) -> None:
        """Unlock for redelivery, or dead-letter it when it has been delivered the max number of times."""
        await self._settle(
            queue,
            message,
            _DEAD_LETTER_IF_EXHAUSTED,
            _RELEASE,
            reason=MAX_DELIVERY_COUNT_EXCEEDED,
            description=self._exhausted_description(),
            max_delivery_count=self._max_delivery_count,
        )
        self._notify(queue)

    async def dead_letter(
        self, queue: str, message: ReceivedMessage, *, reason: str, description: str | None = None
    ) -> None:
        """Move a held message to the dead-letter sub-queue, keeping its body, ids, properties and count."""
        await self._settle(queue, message, _DEAD_LETTER, reason=reason, description=description)
        self._notify(queue)

    async def renew_lock(self, queue: str, message: ReceivedMessage) -> datetime:
        """Extend a held lock by the lock duration from now."""
        locked_until = self._clock() + self._lock_duration
        await self._settle(queue, message, _RENEW, locked_until=locked_until)
        return to_datetime(locked_until)

    async def peek(
        self, queue: str, *, max_messages: int = 10, sub_queue: SubQueue | None = None
    ) -> list[ReceivedMessage]:
        """Messages in sequence order without locking them: active and scheduled, or the dead letters."""
        params = {"queue": queue, "dead_lettered": int(sub_queue == "dead_letter"), "limit": max_messages}

        def look(conn: sqlite3.Connection) -> list[ReceivedMessage]:
            self._expire_exhausted(conn, queue)
            return [_received(row, peeked=True) for row in conn.execute(_PEEK, params)]

        return await self._write(look)

    async def stats(self, queue: str) -> QueueStats:
        """Active (locked or not), scheduled and dead-lettered counts."""

        def count(conn: sqlite3.Connection) -> QueueStats:
            now = self._expire_exhausted(conn, queue)
            active, scheduled, dead = conn.execute(_STATS, {"queue": queue, "now": now}).fetchone()
            return QueueStats(active=active, scheduled=scheduled, dead_lettered=dead)

        return await self._write(count)

    async def close(self) -> None:
        """Finish pending writes and close the database, if this queue opened it."""
        if self._owns_db:
            await self._db.close()

    # ------------------------------------------------------------ inside a write transaction

    def _insert(self, conn: sqlite3.Connection, queue: str, rows: list[_Row], now: float) -> None:
        conn.execute("DELETE FROM queue_duplicates WHERE expires_at <= ?", (now,))
        expires_at = now + self._duplicate_window
        # One statement per chunk rather than one per message: each statement costs the writer a GIL round trip.
        recorded: set[str] = set()
        for chunk in _chunks(rows):
            cursor = conn.execute(
                "INSERT INTO queue_duplicates (queue, message_id, expires_at) VALUES "
                + ", ".join(["(?, ?, ?)"] * len(chunk))
                + " ON CONFLICT DO NOTHING RETURNING message_id",
                [value for row in chunk for value in (queue, row[0], expires_at)],
            )
            recorded.update(message_id for (message_id,) in cursor.fetchall())
        fresh = []
        for row in rows:
            if row[0] in recorded:
                recorded.discard(row[0])  # a message id sent twice in one batch is kept once
                fresh.append(row)
        if not fresh:
            return
        (last,) = conn.execute(
            "INSERT INTO queue_sequences (queue, last_sequence) VALUES (?, ?) ON CONFLICT (queue) "
            "DO UPDATE SET last_sequence = last_sequence + excluded.last_sequence RETURNING last_sequence",
            (queue, len(fresh)),
        ).fetchone()
        first = last - len(fresh) + 1
        numbered = [(queue, first + offset, *row) for offset, row in enumerate(fresh)]
        for rows_of_chunk in _chunks(numbered):
            conn.execute(
                _INSERT + ", ".join([_INSERT_VALUES] * len(rows_of_chunk)),
                [value for row in rows_of_chunk for value in row],
            )

    def _claim(self, queue: str, dead_lettered: int, limit: int, conn: sqlite3.Connection) -> list[ReceivedMessage]:
        now = self._expire_exhausted(conn, queue) if not dead_lettered else self._clock()
        params = {
            "queue": queue,
            "dead_lettered": dead_lettered,
            "now": now,
            "locked_until": now + self._lock_duration,
            "limit": limit,
        }
        rows = conn.execute(_CLAIM, params).fetchall()
        return sorted((_received(row, peeked=False) for row in rows), key=lambda message: message.sequence_number)

    def _expire_exhausted(self, conn: sqlite3.Connection, queue: str) -> float:
        now = self._clock()
        conn.execute(
            _EXPIRE_EXHAUSTED,
            {
                "queue": queue,
                "now": now,
                "max_delivery_count": self._max_delivery_count,
                "reason": MAX_DELIVERY_COUNT_EXCEEDED,
                "description": self._exhausted_description(),
            },
        )
        return now

    # ------------------------------------------------------------ helpers

    def _any_available(self, queue: str, dead_lettered: int, conn: sqlite3.Connection) -> bool:
        params = {"queue": queue, "dead_lettered": dead_lettered, "now": self._clock()}
        return bool(conn.execute(_ANY_AVAILABLE, params).fetchone()[0])

    async def _settle(self, queue: str, message: ReceivedMessage, *statements: str, **params: object) -> None:
        """Run ``statements`` in order until one touches the held row; none touching it means the lock is gone."""
        if message.lock_token is None:
            raise LockLost(f"message {message.message_id} of queue {queue!r} was peeked, not received under a lock")
        values = {
            "queue": queue,
            "sequence_number": message.sequence_number,
            "lock_token": message.lock_token,
            "now": self._clock(),
            **params,
        }

        def settle(conn: sqlite3.Connection) -> None:
            for statement in statements:
                if conn.execute(statement, values).rowcount:
                    return
            raise LockLost(
                f"lock on message {message.message_id} (sequence {message.sequence_number}) of queue {queue!r} "
                "expired or the message was already settled"
            )

        await self._write(settle)

    def _exhausted_description(self) -> str:
        return f"Message could not be consumed after {self._max_delivery_count} delivery attempts."

    def _notify(self, queue: str) -> None:
        waker = self._wakers.pop(queue, None)
        if waker is not None:
            waker.set()

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._db.write(work)
        except sqlite3.Error as exc:
            raise RetryableError(f"queue database {self._db.path.name} write failed: {exc}") from exc

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._db.read(work)
        except sqlite3.Error as exc:
            raise RetryableError(f"queue database {self._db.path.name} read failed: {exc}") from exc


_Row = tuple[str, bytes, str | None, bytes, str, float, float | None]
"""An outgoing message as stored: message id, body, correlation id, properties, content type, enqueued, scheduled."""


def _outgoing_row(message: OutgoingMessage, now: float) -> _Row:
    scheduled_at: float | None = None
    if message.scheduled_enqueue_time is not None:
        if message.scheduled_enqueue_time.tzinfo is None:
            raise ValueError(f"message {message.message_id}: scheduled_enqueue_time must be timezone-aware")
        scheduled_at = message.scheduled_enqueue_time.timestamp()
    return (
        message.message_id,
        message.body,
        message.correlation_id,
        orjson.dumps(dict(message.application_properties)),
        message.content_type,
        max(now, scheduled_at) if scheduled_at is not None else now,
        scheduled_at,
    )


def _received(row: Sequence[Any], *, peeked: bool) -> ReceivedMessage:
    (
        sequence_number,
        message_id,
        body,
        correlation_id,
        properties,
        content_type,
        enqueued_at,
        scheduled_at,
        delivery_count,
        lock_token,
        locked_until,
        dead_letter_reason,
        dead_letter_description,
    ) = row
    application_properties: dict[str, PropertyValue] = orjson.loads(properties)
    return ReceivedMessage(
        body=bytes(body),
        message_id=message_id,
        sequence_number=sequence_number,
        delivery_count=delivery_count,
        enqueued_time=to_datetime(enqueued_at),
        correlation_id=correlation_id,
        application_properties=application_properties,
        content_type=content_type,
        lock_token=None if peeked else lock_token,
        locked_until=None if peeked or locked_until is None else to_datetime(locked_until),
        scheduled_enqueue_time=None if scheduled_at is None else to_datetime(scheduled_at),
        dead_letter_reason=dead_letter_reason,
        dead_letter_description=dead_letter_description,
    )


def _chunks(rows: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(rows), _CHUNK_ROWS):
        yield rows[start : start + _CHUNK_ROWS]
