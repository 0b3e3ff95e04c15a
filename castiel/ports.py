"""The outside systems Castiel talks to, as ``typing.Protocol``s.

Services depend on these; ``castiel/backends/`` implements them (Cosmos DB / SQLite, Service Bus / SQLite queue,
Key Vault / local file). Every backend raises only ``castiel.errors`` types. Times are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from castiel.errors import CastielError

# ---------------------------------------------------------------- documents

FilterOp = Literal["==", "!=", "<", "<=", ">", ">=", "in"]
SortOrder = Literal["asc", "desc"]
Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Filter:
    """``field op value``; ``field`` is a dotted path into the document (``health.status``).

    Comparisons follow JSON ordering of like types; ISO-8601 UTC strings order as times. ``in`` takes a tuple.
    """

    field: str
    op: FilterOp
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Query:
    """A portable query: AND of filters, optional partition, order, page size and continuation.

    Small enough that every backend can translate it exactly (SQLite ``json_extract``, Cosmos parameterised SQL).
    """

    filters: tuple[Filter, ...] = ()
    partition_key: str | None = None
    order_by: tuple[tuple[str, SortOrder], ...] = ()
    limit: int | None = None
    continuation: str | None = None


@dataclass(frozen=True, slots=True)
class QueryPage:
    """One page of results; ``continuation`` is None on the last page."""

    items: list[dict[str, Any]]
    continuation: str | None = None


BatchKind = Literal["create", "upsert", "replace", "delete"]


@dataclass(frozen=True, slots=True)
class BatchOperation:
    """One write of a ``write_batch``: build it with ``create``, ``upsert``, ``replace`` or ``delete``.

    Each behaves as the single-document method of the same name would, inside the batch's transaction.
    """

    kind: BatchKind
    doc: Mapping[str, Any] | None = None
    doc_id: str | None = None
    if_match: str | None = None

    @classmethod
    def create(cls, doc: Mapping[str, Any]) -> BatchOperation:
        """Insert; the batch fails with ``AlreadyExists`` if the document is there."""
        return cls("create", doc)

    @classmethod
    def upsert(cls, doc: Mapping[str, Any]) -> BatchOperation:
        """Insert or overwrite unconditionally."""
        return cls("upsert", doc)

    @classmethod
    def replace(cls, doc: Mapping[str, Any], *, if_match: str | None = None) -> BatchOperation:
        """Overwrite; the batch fails with ``NotFound`` if absent, ``PreconditionFailed`` on a stale etag."""
        return cls("replace", doc, if_match=if_match)

    @classmethod
    def delete(cls, doc_id: str, *, if_match: str | None = None) -> BatchOperation:
        """Remove; the batch fails with ``NotFound`` if absent, ``PreconditionFailed`` on a stale etag."""
        return cls("delete", doc_id=doc_id, if_match=if_match)


class DocumentStore(Protocol):
    """JSON documents in named containers, partitioned, with etags and TTL (Cosmos DB semantics).

    Every stored document has ``id`` and its container's partition-key field (``models.CONTAINER_PARTITION_KEYS``);
    reads return it with ``_etag`` (changes on every write) and ``_ts`` (epoch seconds of the last write).
    A document with a numeric ``ttl`` expires that many seconds after its last write and is never returned after.
    """

    async def create(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert; raises ``AlreadyExists`` if ``(partition key, id)`` is present."""
        ...

    async def create_many(self, container: str, docs: Sequence[Mapping[str, Any]]) -> list[CastielError | None]:
        """Insert each of ``docs`` as ``create`` would, independently, in one call (records written in bulk, such as
        audit lines): one outcome per document, in order, None when it was created, else the error ``create`` would
        have raised. May instead raise ``RetryableError`` when the store itself failed; ``ValueError`` (nothing
        written) when a document is invalid."""
        ...

    async def upsert(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert or overwrite unconditionally."""
        ...

    async def replace(self, container: str, doc: Mapping[str, Any], *, if_match: str | None = None) -> dict[str, Any]:
        """Overwrite an existing document; ``NotFound`` if absent, ``PreconditionFailed`` on a stale etag."""
        ...

    async def read(self, container: str, doc_id: str, partition_key: str) -> dict[str, Any]:
        """One document; raises ``NotFound``."""
        ...

    async def delete(self, container: str, doc_id: str, partition_key: str, *, if_match: str | None = None) -> None:
        """Remove; ``NotFound`` if absent, ``PreconditionFailed`` on a stale etag."""
        ...

    async def read_many(self, container: str, partition_key: str, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The documents of one partition with these ids, in one round trip (or a few for thousands of ids):
        id → document, missing ids absent. ``ValueError`` (nothing read) for an invalid id."""
        ...

    async def write_batch(
        self, container: str, partition_key: str, operations: Sequence[BatchOperation]
    ) -> list[str | None]:
        """Apply ``operations`` in order to one partition, all or nothing: the new ``_etag`` of each written
        document (None for a delete). If one fails, none is applied and its error is raised (``AlreadyExists``,
        ``NotFound``, ``PreconditionFailed``, or ``RetryableError`` when the store failed); ``ValueError`` (nothing
        written) for a document that is invalid or outside ``partition_key``.

        A backend that caps a transaction (Cosmos DB: 100 operations) commits a longer batch in consecutive
        transactions: each is all or nothing, and a failure stops the ones after it but leaves those before it
        committed. So after a failure, redo the work from fresh reads (deterministic ids then find what an earlier
        attempt committed) rather than resending the same batch.
        """
        ...

    async def query(self, container: str, query: Query) -> QueryPage:
        """One page of the documents matching ``query``."""
        ...

    async def count(self, container: str, query: Query) -> int:
        """How many documents match ``query`` (its order, limit and continuation are ignored)."""
        ...

    async def close(self) -> None:
        """Release connections and flush pending writes."""
        ...


# ---------------------------------------------------------------- queues

PropertyValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to send. ``message_id`` drives duplicate detection (10-minute window)."""

    body: bytes
    message_id: str
    correlation_id: str | None = None
    application_properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    scheduled_enqueue_time: datetime | None = None
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A message received under peek-lock (or peeked, then ``lock_token`` is None)."""

    body: bytes
    message_id: str
    sequence_number: int
    delivery_count: int
    enqueued_time: datetime
    correlation_id: str | None = None
    application_properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    content_type: str | None = None
    lock_token: str | None = None
    locked_until: datetime | None = None
    scheduled_enqueue_time: datetime | None = None
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    active: int
    scheduled: int
    dead_lettered: int


SubQueue = Literal["dead_letter"]


class MessageQueue(Protocol):
    """Service Bus queue semantics: duplicate detection, scheduled messages, peek-lock, dead-letter sub-queue.

    ``delivery_count`` rises on every receive; a message abandoned (or whose lock expired) at the queue's max
    delivery count is dead-lettered with reason ``MaxDeliveryCountExceeded``. Settling with a lost or expired lock
    raises ``LockLost``.
    """

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """Enqueue durably; a ``message_id`` already sent in the last 10 minutes is dropped silently."""
        ...

    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        max_wait_seconds: float = 0.0,
        sub_queue: SubQueue | None = None,
    ) -> list[ReceivedMessage]:
        """Lock and return up to ``max_messages`` available messages, waiting up to ``max_wait_seconds``."""
        ...

    async def complete(self, queue: str, message: ReceivedMessage) -> None:
        """Remove a locked message for good."""
        ...

    async def abandon(self, queue: str, message: ReceivedMessage) -> None:
        """Release the lock so the message is delivered again (or dead-lettered at max delivery count)."""
        ...

    async def dead_letter(
        self, queue: str, message: ReceivedMessage, *, reason: str, description: str | None = None
    ) -> None:
        """Move a locked message to the dead-letter sub-queue with an operator-actionable reason."""
        ...

    async def renew_lock(self, queue: str, message: ReceivedMessage) -> datetime:
        """Extend the lock; returns the new ``locked_until``."""
        ...

    async def peek(
        self, queue: str, *, max_messages: int = 10, sub_queue: SubQueue | None = None
    ) -> list[ReceivedMessage]:
        """Look without locking, in sequence order (active and scheduled, or the dead letters)."""
        ...

    async def stats(self, queue: str) -> QueueStats:
        """Counts of active, scheduled and dead-lettered messages."""
        ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------- secrets


class SecretValue:
    """A secret that never shows itself in a repr, str or log line; ``reveal()`` is the one way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretValue('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class SecretProperties:
    name: str
    version: str
    created_on: datetime
    expires_on: datetime | None = None
    content_type: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


class SecretStore(Protocol):
    """Versioned named secrets (Key Vault semantics: names ``[0-9A-Za-z-]{1,127}``)."""

    async def get_secret(self, name: str, version: str | None = None) -> SecretValue:
        """The latest (or given) version; raises ``NotFound``."""
        ...

    async def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        expires_on: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> SecretProperties:
        """Store a new version."""
        ...

    async def get_properties(self, name: str) -> SecretProperties:
        """Metadata of the latest version; raises ``NotFound``."""
        ...

    async def list_versions(self, name: str) -> list[SecretProperties]:
        """Every version, oldest first; raises ``NotFound``."""
        ...

    async def delete_secret(self, name: str) -> None:
        """Remove every version; raises ``NotFound``."""
        ...

    async def close(self) -> None: ...
