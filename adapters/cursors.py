"""Incremental cursors: what a fetch resumes from, and how its boundary neither loses nor repeats a record.

A cursor is stored as text (``SyncTask.cursors``), always a compact JSON object, so it can carry a time with its
tie-breaker or a provider token exactly as received. ``decode_cursor`` also takes a bare value, which an operator
may pass to ``castiel connections fetch --since``: it stands for the strategy's natural field (a time, a Slack
``ts``, a Google sync token).

Two strategies are shared; providers with opaque tokens define their own beside their adapter:

* ``KeysetCursor`` — the provider filters and orders on (time, id) exactly (Salesforce: ``SystemModstamp``, ``Id``):
  the cursor is the last record's pair, and the next query asks for what comes strictly after it. Records sharing
  the boundary time are ordered by id, so none is skipped or repeated, across pages or runs. It also keeps when the
  provider last answered it (``checked``): how stale a cursor is, for a provider that forgets deletions after a while,
  is the time since it was last asked, not the age of the last record (a quiet object keeps an old one).
* ``OverlapCursor`` — the provider's filter is inclusive or coarse (GitHub's ``since`` is ``>=`` to the second,
  Notion's ``last_edited_time`` is rounded down to the minute): the next query starts *at* the boundary time, so
  everything at it comes again, and the cursor remembers a fingerprint of each record already emitted at that time.
  A record that comes back unchanged is dropped; one edited again within the same second or minute comes back with
  a different fingerprint and is emitted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import orjson

from adapters.pagination import Paginator
from adapters.records import Record
from adapters.wire import Reply
from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import PermanentError
from castiel.models import format_utc

S = TypeVar("S")


class CursorExpired(PermanentError):
    """The provider no longer accepts the cursor (Google's 410 ``fullSyncRequired``): start a full pass."""


class CursorStrategy(Protocol, Generic[S]):
    """Turns a stored cursor into state, moves it past each page, and stores it again."""

    def load(self, cursor: str | None) -> S:
        """The state a stored cursor (None: from the beginning) stands for; ``PermanentError`` if unreadable."""
        ...

    def advance(self, state: S, records: list[Record], paginator: Paginator, reply: Reply) -> tuple[list[Record], S]:
        """The page's records to emit (boundary duplicates dropped) and the state after the page."""
        ...

    def dump(self, state: S) -> str | None:
        """The cursor to checkpoint for ``state`` (None: nothing to resume from yet)."""
        ...


def decode_cursor(cursor: str | None, natural: str) -> dict[str, Any]:
    """A cursor's fields: its JSON object, or ``{natural: cursor}`` for a bare value; ``{}`` for none."""
    if cursor is None or not cursor.strip():
        return {}
    text = cursor.strip()
    if not text.startswith("{"):
        return {natural: text}
    try:
        fields = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise PermanentError(f"cursor {text[:80]!r} is not valid JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise PermanentError(f"cursor {text[:80]!r} is not a JSON object")
    return fields


def encode_cursor(fields: Mapping[str, Any]) -> str:
    """Compact JSON, keys sorted, None fields left out."""
    return orjson.dumps({k: v for k, v in fields.items() if v is not None}, option=orjson.OPT_SORT_KEYS).decode()


def parse_time(value: object, what: str = "time") -> datetime:
    """An ISO-8601 time (``Z``, ``+00:00`` or ``+0000``) as aware UTC; a naive one is taken as UTC."""
    if not isinstance(value, str):
        raise PermanentError(f"{what} {value!r} is not an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PermanentError(f"{what} {value[:64]!r} is not an ISO-8601 time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def optional_time(value: object, what: str = "time") -> datetime | None:
    """``parse_time``, or None for None."""
    return None if value is None else parse_time(value, what)


def fingerprint(record: Record) -> str:
    """A short digest of a record's content, to tell an unchanged re-listed record from a re-edited one."""
    data = orjson.dumps(record.data, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Keyset:
    """The last (time, id) emitted, None before the first record; and when a query through it last answered."""

    since: datetime | None = None
    last_id: str | None = None
    checked: datetime | None = None


class KeysetCursor:
    """Strictly after the last (time, id): for providers that filter and order on both exactly."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock

    def load(self, cursor: str | None) -> Keyset:
        """``{"since": time, "id": last id, "checked": time}``; a bare value is a time."""
        fields = decode_cursor(cursor, "since")
        last_id = fields.get("id")
        if last_id is not None and not isinstance(last_id, str):
            raise PermanentError(f"cursor id {last_id!r} is not a string")
        since = optional_time(fields.get("since"), "cursor since")
        return Keyset(since, last_id, optional_time(fields.get("checked"), "cursor checked"))

    def advance(
        self, state: Keyset, records: list[Record], paginator: Paginator, reply: Reply
    ) -> tuple[list[Record], Keyset]:
        """Every record; the state moves to the page's last timed record, and is checked now."""
        last = next((record for record in reversed(records) if record.updated_at is not None), None)
        checked = now_utc(self._clock)
        if last is None:
            return records, Keyset(state.since, state.last_id, checked)
        return records, Keyset(last.updated_at, last.external_id, checked)

    def dump(self, state: Keyset) -> str | None:
        """The JSON cursor, None before the first record."""
        if state.since is None:
            return None
        checked = format_utc(state.checked) if state.checked is not None else None
        return encode_cursor({"since": format_utc(state.since), "id": state.last_id, "checked": checked})


@dataclass(frozen=True, slots=True)
class Overlap:
    """The boundary time and the fingerprints of the records already emitted at exactly that time."""

    since: datetime | None = None
    seen: Mapping[str, str] = field(default_factory=dict)


class OverlapCursor:
    """From the boundary time inclusive, dropping what was already emitted there unchanged."""

    def load(self, cursor: str | None) -> Overlap:
        """``{"since": time, "seen": {id: fingerprint}}``; a bare value is a time."""
        fields = decode_cursor(cursor, "since")
        seen = fields.get("seen", {})
        if not isinstance(seen, dict) or not all(isinstance(v, str) for v in seen.values()):
            raise PermanentError("cursor seen is not an object of id → fingerprint strings")
        return Overlap(optional_time(fields.get("since"), "cursor since"), seen)

    def advance(
        self, state: Overlap, records: list[Record], paginator: Paginator, reply: Reply
    ) -> tuple[list[Record], Overlap]:
        """The records not already emitted at the boundary; the boundary moves to the page's latest time."""
        kept = [
            record
            for record in records
            if state.since is None
            or record.updated_at != state.since
            or state.seen.get(record.external_id) != fingerprint(record)
        ]
        latest = max((record.updated_at for record in records if record.updated_at is not None), default=None)
        if latest is None or (state.since is not None and latest < state.since):
            return kept, state
        at_latest = {record.external_id: fingerprint(record) for record in records if record.updated_at == latest}
        seen = {**state.seen, **at_latest} if latest == state.since else at_latest
        return kept, Overlap(latest, seen)

    def dump(self, state: Overlap) -> str | None:
        """The JSON cursor, None before the first record."""
        if state.since is None:
            return None
        return encode_cursor({"since": format_utc(state.since), "seen": dict(state.seen)})
