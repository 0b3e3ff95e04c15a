"""The embedded ``DocumentStore``: JSON documents in one SQLite table, with Cosmos DB semantics.

Rows are keyed by ``(container, partition key, id)`` and hold the document as JSON text (with its ``_etag`` and
``_ts``), so filters and sort keys are ``json_extract`` expressions over validated paths with bound values.
Writes go through the group-committing writer of ``SqliteDatabase``; reads run on its reader pool.

Comparisons match Cosmos DB: a filter compares like JSON types only (``1`` never equals ``true``, a string never
matches a number), which ``json_type`` guards enforce because ``json_extract`` maps ``true`` to ``1``.
Expired documents are invisible at once and purged from the table on a later write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson

from castiel.backends.query_plan import (
    SortKey,
    check_filter,
    check_key,
    check_limit,
    decode_continuation,
    encode_continuation,
    field_segments,
    partition_key_field,
    prepare_document,
    sort_keys,
)
from castiel.backends.sqlite_engine import DATABASE_FILE, SqliteDatabase
from castiel.clock import Clock, system_clock
from castiel.errors import AlreadyExists, CastielError, NotFound, PreconditionFailed, RetryableError
from castiel.ports import BatchOperation, Filter, Query, QueryPage, Scalar
from castiel.settings import Settings
from castiel.telemetry import new_id

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    container  TEXT NOT NULL,
    pk         TEXT NOT NULL,
    id         TEXT NOT NULL,
    doc        TEXT NOT NULL,
    etag       TEXT NOT NULL,
    ts         INTEGER NOT NULL,
    expires_at REAL,
    PRIMARY KEY (container, pk, id)
);
CREATE INDEX IF NOT EXISTS documents_expiry ON documents (expires_at) WHERE expires_at IS NOT NULL;
"""

_PURGE_INTERVAL_SECONDS = 60.0
_LIVE = "(expires_at IS NULL OR expires_at > ?)"

# Parameters: the table's columns, then (create only) the time before which an existing row counts as expired.
_UPSERT = (
    "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (container, pk, id) DO UPDATE SET"
    " doc = excluded.doc, etag = excluded.etag, ts = excluded.ts, expires_at = excluded.expires_at"
)
_CREATE = (
    "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (container, pk, id) DO UPDATE SET"
    " doc = excluded.doc, etag = excluded.etag, ts = excluded.ts, expires_at = excluded.expires_at"
    " WHERE documents.expires_at IS NOT NULL AND documents.expires_at <= ?"
)
# Parameters of the keyed statements: (container, pk, id, now), then if_match twice (NULL means unconditional).
_SELECT_LIVE = (
    "SELECT doc FROM documents WHERE container = ? AND pk = ? AND id = ? AND (expires_at IS NULL OR expires_at > ?)"
)
_REPLACE = (
    "UPDATE documents SET doc = ?, etag = ?, ts = ?, expires_at = ? WHERE container = ? AND pk = ? AND id = ?"
    " AND (expires_at IS NULL OR expires_at > ?) AND (? IS NULL OR etag = ?)"
)
_DELETE = (
    "DELETE FROM documents WHERE container = ? AND pk = ? AND id = ?"
    " AND (expires_at IS NULL OR expires_at > ?) AND (? IS NULL OR etag = ?)"
)
_PURGE = "DELETE FROM documents WHERE expires_at IS NOT NULL AND expires_at <= ?"
# The ids arrive as one JSON array, so any number of them is one statement whose text never changes; CROSS JOIN
# keeps the array the outer loop: one primary-key seek per id.
_READ_MANY = (
    "SELECT d.id, d.doc FROM json_each(?) AS wanted CROSS JOIN documents AS d"
    " ON d.container = ? AND d.pk = ? AND d.id = wanted.value WHERE (d.expires_at IS NULL OR d.expires_at > ?)"
)
_SQL_OPS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class SqliteDocumentStore:
    """``DocumentStore`` on a SQLite file: partitioned containers, etags, TTL, filtered and paged queries."""

    def __init__(self, database: Path | SqliteDatabase, *, clock: Clock = system_clock) -> None:
        """On a file of its own (a path), or on a database shared with other embedded backends (closed by its owner)."""
        self._owns_db = isinstance(database, Path)
        self._db = SqliteDatabase(database, SCHEMA) if isinstance(database, Path) else database
        self._clock = clock
        self._next_purge_at = clock()

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = system_clock) -> SqliteDocumentStore:
        """The store in ``<data_dir>/castiel.db``."""
        return cls(settings.data_dir / DATABASE_FILE, clock=clock)

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._db.path

    async def create(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert; ``AlreadyExists`` if a live document has the same key (an expired one is replaced)."""
        return await self._write_document(container, BatchOperation.create(doc))

    async def create_many(self, container: str, docs: Sequence[Mapping[str, Any]]) -> list[CastielError | None]:
        """``create`` for each document, in one write: a live document's key is ``AlreadyExists`` for that one only."""
        now = self._clock()
        steps = [_Step.prepare(container, BatchOperation.create(doc), now) for doc in docs]

        def insert_all(conn: sqlite3.Connection) -> list[CastielError | None]:
            outcomes: list[CastielError | None] = []
            if _apply_together(conn, steps):
                return [None] * len(steps)
            for step in steps:
                try:
                    step.apply(conn)
                except AlreadyExists as exc:  # a create that matched nothing wrote nothing: the others go on
                    outcomes.append(exc)
                else:
                    outcomes.append(None)
            return outcomes

        return await self._run_write(now, insert_all)

    async def upsert(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert or overwrite unconditionally."""
        return await self._write_document(container, BatchOperation.upsert(doc))

    async def replace(self, container: str, doc: Mapping[str, Any], *, if_match: str | None = None) -> dict[str, Any]:
        """Overwrite a live document; ``NotFound`` if absent, ``PreconditionFailed`` if ``if_match`` is stale."""
        return await self._write_document(container, BatchOperation.replace(doc, if_match=if_match))

    async def write_batch(
        self, container: str, partition_key: str, operations: Sequence[BatchOperation]
    ) -> list[str | None]:
        """``operations`` in order in one transaction (one savepoint of the group commit): all land or none does."""
        now = self._clock()
        steps = [_Step.prepare(container, operation, now, partition_key) for operation in operations]
        if not steps:
            return []

        def apply_all(conn: sqlite3.Connection) -> list[str | None]:
            if not _apply_together(conn, steps):
                for position, step in enumerate(steps):
                    try:
                        step.apply(conn)
                    except (AlreadyExists, NotFound, PreconditionFailed) as exc:
                        # Raising out of the job rolls its savepoint back: the steps before this one are undone too.
                        raise type(exc)(f"batch operation {position} ({step.kind}): {exc}") from None
            return [step.etag for step in steps]

        return await self._run_write(now, apply_all)

    async def read(self, container: str, doc_id: str, partition_key: str) -> dict[str, Any]:
        """One live document; ``NotFound`` if absent or expired."""
        key = _key(container, doc_id, partition_key)
        now = self._clock()

        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(_SELECT_LIVE, (*key, now)).fetchone()
            return None if row is None else str(row[0])

        text = await self._read(read)
        if text is None:
            raise NotFound(f"{container}/{partition_key}/{doc_id} not found")
        return _load(text)

    async def delete(self, container: str, doc_id: str, partition_key: str, *, if_match: str | None = None) -> None:
        """Remove a live document; ``NotFound`` if absent, ``PreconditionFailed`` if ``if_match`` is stale."""
        now = self._clock()
        step = _Step.prepare(container, BatchOperation.delete(doc_id, if_match=if_match), now, partition_key)
        await self._run_write(now, step.apply)

    async def read_many(self, container: str, partition_key: str, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The live documents of one partition with these ids (missing ones absent), in one read job."""
        wanted = [_key(container, doc_id, partition_key)[2] for doc_id in dict.fromkeys(doc_ids)]
        if not wanted:
            return {}
        now = self._clock()
        ids = orjson.dumps(wanted).decode()

        def read(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return conn.execute(_READ_MANY, (ids, container, partition_key, now)).fetchall()

        return {doc_id: _load(text) for doc_id, text in await self._read(read)}

    async def query(self, container: str, query: Query) -> QueryPage:
        """One page of the live documents matching ``query``, in its order then by id and partition key."""
        check_limit(query.limit)
        keys = sort_keys(container, query)
        after = decode_continuation(container, query)
        where, parameters = self._where(container, query)
        columns = [_sort_expression(container, path) for path, _ in keys]
        if after is not None:
            after_sql, after_parameters = _after(columns, keys, after)
            where += f" AND {after_sql}"
            parameters += after_parameters
        order = ", ".join(f"{column} {direction.upper()}" for column, (_, direction) in zip(columns, keys, strict=True))
        # Paths in the text are validated identifiers; every value is a bound parameter.
        sql = f"SELECT doc, {', '.join(columns)} FROM documents WHERE {where} ORDER BY {order}"  # noqa: S608
        if query.limit is not None:
            sql += " LIMIT ?"
            parameters.append(query.limit + 1)  # one extra row tells whether another page follows

        def select(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(sql, parameters).fetchall()

        rows = await self._read(select)
        if query.limit is None or len(rows) <= query.limit:
            return QueryPage([_load(row[0]) for row in rows])
        rows = rows[: query.limit]
        return QueryPage([_load(row[0]) for row in rows], encode_continuation(container, query, rows[-1][1:]))

    async def count(self, container: str, query: Query) -> int:
        """How many live documents match ``query``'s filters and partition."""
        where, parameters = self._where(container, query)

        def count(conn: sqlite3.Connection) -> int:
            sql = f"SELECT COUNT(*) FROM documents WHERE {where}"  # noqa: S608 (validated paths, bound values)
            return int(conn.execute(sql, parameters).fetchone()[0])

        return await self._read(count)

    async def close(self) -> None:
        """Finish queued writes and close the database, if this store opened it."""
        if self._owns_db:
            await self._db.close()

    def _where(self, container: str, query: Query) -> tuple[str, list[Any]]:
        """The WHERE clause (and its parameters) of the live documents in ``query``'s partition matching its filters."""
        partition_key_field(container)
        conditions = ["container = ?", _LIVE]
        parameters: list[Any] = [container, self._clock()]
        if query.partition_key is not None:
            conditions.append("pk = ?")
            parameters.append(query.partition_key)
        for flt in query.filters:
            sql, values = _condition(flt)
            conditions.append(sql)
            parameters += values
        return " AND ".join(conditions), parameters

    async def _write_document(self, container: str, operation: BatchOperation) -> dict[str, Any]:
        now = self._clock()
        step = _Step.prepare(container, operation, now)
        await self._run_write(now, step.apply)
        return _load(step.stored())  # a fresh copy of what was stored, sharing nothing with the caller's document

    async def _run_write(self, now: float, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in a committed write; at most once a purge interval the same write drops expired rows."""
        purge = now >= self._next_purge_at
        if purge:
            self._next_purge_at = now + _PURGE_INTERVAL_SECONDS

        def write(conn: sqlite3.Connection) -> T:
            if purge:
                conn.execute(_PURGE, (now,))
            return work(conn)

        with _translated(self._db.path):
            return await self._db.write(write)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with _translated(self._db.path):
            return await self._db.read(work)


class _Step:
    """One checked write: the statement its kind runs with its parameters, and the document text it stores (none
    for a delete). All of it is worked out before the write job runs, so the writer thread only executes."""

    __slots__ = ("doc", "etag", "key", "kind", "now", "parameters", "sql")

    def __init__(
        self,
        kind: str,
        key: tuple[str, str, str],
        now: float,
        statement: tuple[str, tuple[Any, ...]],
        doc: str | None = None,
        etag: str | None = None,
    ) -> None:
        self.kind = kind
        self.key = key
        self.now = now
        self.sql, self.parameters = statement
        self.doc = doc
        self.etag = etag

    @classmethod
    def prepare(cls, container: str, operation: BatchOperation, now: float, partition_key: str | None = None) -> _Step:
        """Validate ``operation`` before anything is written; ``partition_key``, when given, must be its partition."""
        kind, if_match = operation.kind, operation.if_match
        if kind == "delete":
            if partition_key is None:
                raise ValueError("a delete needs the document's partition key")
            key = _key(container, operation.doc_id, partition_key)
            return cls(kind, key, now, (_DELETE, (*key, now, if_match, if_match)))
        if operation.doc is None:
            raise ValueError(f"a {kind} needs a document")
        prepared = prepare_document(container, operation.doc)
        key = (container, prepared.partition_key, prepared.doc_id)
        if partition_key is not None and prepared.partition_key != partition_key:
            raise ValueError(f"{'/'.join(key)} is not in the batch's partition {partition_key!r}")
        etag, ts = new_id(), int(now)
        expires_at = None if prepared.ttl is None else now + prepared.ttl
        stored = prepared.body  # prepare_document's own copy of the caller's document: it takes the store's fields
        stored["_etag"] = etag
        stored["_ts"] = ts
        try:
            # Passing datetimes through makes them an error: stored times are format_utc strings, never orjson's.
            doc = orjson.dumps(stored, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
        except TypeError as exc:
            raise ValueError(f"document {prepared.doc_id!r} is not JSON: {exc}") from None
        statement: tuple[str, tuple[Any, ...]]
        if kind == "upsert":
            statement = _UPSERT, (*key, doc, etag, ts, expires_at)
        elif kind == "create":
            statement = _CREATE, (*key, doc, etag, ts, expires_at, now)
        else:
            statement = _REPLACE, (doc, etag, ts, expires_at, *key, now, if_match, if_match)
        return cls(kind, key, now, statement, doc, etag)

    def stored(self) -> str:
        """The JSON text written (a delete writes none)."""
        if self.doc is None:
            raise ValueError("a delete stores no document")
        return self.doc

    def apply(self, conn: sqlite3.Connection) -> str | None:
        """Write; returns the new etag (None for a delete), or raises the error of the single-document method."""
        if conn.execute(self.sql, self.parameters).rowcount == 0:  # an upsert always changes its row
            if self.kind == "create":
                raise AlreadyExists(f"{'/'.join(self.key)} already exists")
            _raise_missing_or_stale(conn, self.key, self.now)
        return self.etag


def _apply_together(conn: sqlite3.Connection, steps: Sequence[_Step]) -> bool:
    """Run ``steps`` as one ``executemany`` per statement: True if each changed its row, else none stays applied.

    Steps on distinct keys commute, so grouping them by statement changes nothing but the number of calls into
    SQLite (each of which hands the GIL over and back). A step that would fail leaves the count of changed rows
    short; the caller then applies the steps one by one, in order, to raise the first failing step's own error.
    """
    if len({step.key for step in steps}) < len(steps):
        return False
    by_statement: dict[str, list[tuple[Any, ...]]] = {}
    for step in steps:
        by_statement.setdefault(step.sql, []).append(step.parameters)
    conn.execute("SAVEPOINT steps")
    changed = sum(conn.executemany(sql, parameters).rowcount for sql, parameters in by_statement.items())
    if changed != len(steps):
        conn.execute("ROLLBACK TO steps")
    conn.execute("RELEASE steps")
    return changed == len(steps)


def _load(text: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(text)
    return doc


def _key(container: str, doc_id: object, partition_key: object) -> tuple[str, str, str]:
    partition_key_field(container)
    doc_id, partition_key = check_key(doc_id, partition_key)
    return container, partition_key, doc_id


def _raise_missing_or_stale(conn: sqlite3.Connection, key: tuple[str, str, str], now: float) -> None:
    """After a conditional write matched nothing: ``PreconditionFailed`` if the document lives, else ``NotFound``."""
    container, partition_key, doc_id = key
    if conn.execute(_SELECT_LIVE, (*key, now)).fetchone() is not None:
        raise PreconditionFailed(f"{container}/{partition_key}/{doc_id} changed since the etag was read")
    raise NotFound(f"{container}/{partition_key}/{doc_id} not found")


def _json_path(path: str) -> str:
    return "'$." + ".".join(field_segments(path)) + "'"


def _sort_expression(container: str, path: str) -> str:
    """The key columns serve the tie-breaks straight from the primary-key index; other paths read the JSON."""
    if path == "id":
        return "id"
    if path == partition_key_field(container):
        return "pk"
    return f"json_extract(doc, {_json_path(path)})"


def _condition(flt: Filter) -> tuple[str, list[Any]]:
    """One filter as SQL over the document JSON, with its bound values."""
    check_filter(flt)
    path = _json_path(flt.field)
    kind = f"json_type(doc, {path})"
    value = f"json_extract(doc, {path})"
    if isinstance(flt.value, tuple):
        return _in(kind, value, flt.value)
    if flt.value is None:
        return f"{kind} {'=' if flt.op == '==' else '<>'} 'null'", []
    types, bound = _typed(flt.value)
    return f"({kind} IN {types} AND {value} {_SQL_OPS[flt.op]} ?)", [bound]


def _in(kind: str, value: str, choices: tuple[Scalar, ...]) -> tuple[str, list[Any]]:
    """``in`` as one ``IN`` list per JSON type, so a long tuple stays one flat expression."""
    by_type: dict[str, list[Any]] = {}
    alternatives: list[str] = []
    for choice in choices:
        if choice is None:
            alternatives.append(f"{kind} = 'null'")
        else:
            types, bound = _typed(choice)
            by_type.setdefault(types, []).append(bound)
    parameters: list[Any] = []
    for types, values in by_type.items():
        alternatives.append(f"({kind} IN {types} AND {value} IN ({', '.join('?' * len(values))}))")
        parameters += values
    return (f"({' OR '.join(alternatives)})" if alternatives else "0"), parameters


def _typed(value: str | int | float) -> tuple[str, str | int | float]:
    """The ``json_type`` names of ``value``'s JSON type, and ``value`` as SQLite binds it.

    Comparing across types never matches, as in Cosmos DB. json_extract yields 1/0 for true/false, so booleans
    bind as ints and the type guard alone tells them from numbers. Enum members bind as their plain values.
    """
    if isinstance(value, bool):
        return "('true', 'false')", int(value)
    if isinstance(value, int):
        return "('integer', 'real')", int(value)
    if isinstance(value, float):
        return "('integer', 'real')", float(value)
    return "('text')", str(value)


def _after(columns: Sequence[str], keys: Sequence[SortKey], after: Sequence[Any]) -> tuple[str, list[Any]]:
    """Rows strictly after ``after`` in the order ``keys``, where SQLite sorts NULL (a missing field) first."""
    alternatives: list[str] = []
    parameters: list[Any] = []
    for position, (column, (_, direction)) in enumerate(zip(columns, keys, strict=True)):
        terms = [f"{columns[i]} IS ?" for i in range(position)]
        term_parameters = list(after[:position])
        last = after[position]
        if direction == "asc":
            terms.append(f"{column} IS NOT NULL" if last is None else f"{column} > ?")
        elif last is None:
            continue  # nothing sorts after NULL in a descending key
        else:
            terms.append(f"({column} < ? OR {column} IS NULL)")
        if last is not None:
            term_parameters.append(last)
        alternatives.append(f"({' AND '.join(terms)})")
        parameters += term_parameters
    return (f"({' OR '.join(alternatives)})" if alternatives else "0"), parameters


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """sqlite3 errors (a locked or failing file) become ``RetryableError``; the store's own errors pass."""
    try:
        yield
    except sqlite3.Error as exc:
        raise RetryableError(f"sqlite document store {path.name}: {exc}") from exc
