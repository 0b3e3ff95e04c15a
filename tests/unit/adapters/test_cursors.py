"""Cursor strategies: the boundary neither loses nor repeats a record, across pages and across interrupted runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.cursors import (
    Keyset,
    KeysetCursor,
    Overlap,
    OverlapCursor,
    decode_cursor,
    encode_cursor,
    parse_time,
)
from adapters.pagination import CursorPaginator
from adapters.records import Record
from adapters.wire import Reply
from castiel.clock import ManualClock
from castiel.errors import PermanentError
from tests.unit.adapters.support import json_response

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
NO_REPLY = Reply(json_response(200, {}))


def record(external_id: str, minute: int, version: int = 0) -> Record:
    return Record("page", external_id, T0 + timedelta(minutes=minute), False, {"id": external_id, "v": version})


def advance(strategy: Any, state: Any, records: list[Record]) -> tuple[list[Record], Any]:
    return strategy.advance(state, records, CursorPaginator(("c",), "c"), NO_REPLY)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("cursor", "natural", "fields"),
    [
        (None, "since", {}),
        ("", "since", {}),
        ("2026-01-05T12:00:00Z", "since", {"since": "2026-01-05T12:00:00Z"}),
        ("CPDAlvWDx70CEPDAlvWDx70CGAU=", "syncToken", {"syncToken": "CPDAlvWDx70CEPDAlvWDx70CGAU="}),
        ('{"since": "2026-01-05T12:00:00Z", "id": "a"}', "since", {"since": "2026-01-05T12:00:00Z", "id": "a"}),
    ],
)
def test_decode_cursor(cursor: str | None, natural: str, fields: dict[str, Any]) -> None:
    assert decode_cursor(cursor, natural) == fields


@pytest.mark.parametrize("bad", ["{not json", "{1: 2}"])
def test_an_unreadable_cursor_is_a_clear_error(bad: str) -> None:
    with pytest.raises(PermanentError, match="cursor"):
        decode_cursor(bad, "since")


def test_an_opaque_token_survives_encoding_exactly() -> None:
    token = 'CPDAlvWDx70CEPDAlvWDx70CGAU=/+"\\ é'
    assert decode_cursor(encode_cursor({"syncToken": token}), "syncToken") == {"syncToken": token}


@pytest.mark.parametrize(
    "text", ["2024-01-15T10:30:00.000+0000", "2024-01-15T10:30:00Z", "2024-01-15T10:30:00+00:00", "2024-01-15T10:30:00"]
)
def test_provider_time_formats_parse_to_the_same_instant(text: str) -> None:
    assert parse_time(text) == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def test_keyset_moves_to_the_last_record_with_its_id() -> None:
    strategy = KeysetCursor()
    state = strategy.load(None)
    kept, state = advance(strategy, state, [record("a", 0), record("b", 1), record("c", 1)])
    assert [r.external_id for r in kept] == ["a", "b", "c"]
    assert strategy.load(strategy.dump(state)) == state
    assert state.last_id == "c"


def test_overlap_drops_only_what_was_already_emitted_unchanged_at_the_boundary() -> None:
    strategy = OverlapCursor()
    _, state = advance(strategy, strategy.load(None), [record("a", 0), record("b", 1), record("c", 1)])
    assert state.since == T0 + timedelta(minutes=1)
    assert set(state.seen) == {"b", "c"}
    # the next run starts at the boundary minute: b comes back unchanged, c edited again in the same minute
    relisted = [record("b", 1), record("c", 1, version=2), record("d", 1), record("e", 2)]
    kept, state = advance(strategy, strategy.load(strategy.dump(state)), relisted)
    assert [(r.external_id, r.data["v"]) for r in kept] == [("c", 2), ("d", 0), ("e", 0)]
    assert state == Overlap(T0 + timedelta(minutes=2), {"e": state.seen["e"]})


def test_overlap_keeps_the_boundary_set_across_pages_of_one_minute() -> None:
    strategy = OverlapCursor()
    _, state = advance(strategy, strategy.load(None), [record("a", 3), record("b", 3)])
    _, state = advance(strategy, state, [record("c", 3)])
    assert set(state.seen) == {"a", "b", "c"}


def test_an_empty_page_keeps_the_cursor() -> None:
    overlap = OverlapCursor()
    state = overlap.load('{"since": "2026-01-05T12:00:00Z"}')
    assert advance(overlap, state, [])[1] == state


def test_an_empty_page_keeps_the_keyset_and_marks_it_checked() -> None:
    keyset = KeysetCursor(ManualClock(1_767_614_400.0))
    state = keyset.load('{"since": "2026-01-05T12:00:00Z", "id": "b"}')
    assert advance(keyset, state, [])[1] == Keyset(state.since, "b", datetime(2026, 1, 5, 12, tzinfo=UTC))


# ---------------------------------------------------------------- properties over interrupted runs


class CoarseProvider:
    """Lists records with time >= since (minute precision), ties in an order the client cannot choose."""

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}

    def pages(self, since: datetime | None, size: int) -> list[list[Record]]:
        listed = [r for r in self.records.values() if since is None or r.updated_at >= since]  # type: ignore[operator]
        listed.sort(key=lambda r: (r.updated_at, [-ord(ch) for ch in r.external_id]))
        return [listed[i : i + size] for i in range(0, len(listed), size)] or [[]]


class ExactProvider(CoarseProvider):
    """Lists records strictly after (time, id), ordered by both."""

    def keyset_pages(self, since: datetime | None, last_id: str | None, size: int) -> list[list[Record]]:
        key = (since, last_id or "")
        listed = sorted(
            (r for r in self.records.values() if since is None or (r.updated_at, r.external_id) > key),  # type: ignore[operator]
            key=lambda r: (r.updated_at, r.external_id),
        )
        return [listed[i : i + size] for i in range(0, len(listed), size)] or [[]]


runs_strategy = st.lists(
    st.tuples(
        st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 1)), max_size=6),  # edits: id, minutes ahead
        st.integers(0, 4),  # pages saved before the run is interrupted (0: none)
    ),
    min_size=1,
    max_size=6,
)


def apply_edits(
    provider: CoarseProvider, edits: list[tuple[str, int]], now: list[int], version: list[int], *, tick: int = 0
) -> None:
    """Edit records; ``tick`` 1 makes every edit's time strictly later than the last (exact timestamps)."""
    for external_id, ahead in edits:
        now[0] += ahead + tick
        version[0] += 1
        provider.records[external_id] = record(external_id, now[0], version[0])


def check(emitted: list[tuple[str, int]], provider: CoarseProvider) -> None:
    assert len(emitted) == len(set(emitted)), f"a record was repeated: {emitted}"
    for latest in provider.records.values():
        assert (latest.external_id, latest.data["v"]) in emitted, f"{latest} was lost"


@settings(max_examples=150, deadline=None)
@given(runs=runs_strategy, size=st.integers(1, 3))
def test_overlap_never_loses_or_repeats_across_interrupted_runs(runs: list[tuple[list[Any], int]], size: int) -> None:
    provider, strategy = CoarseProvider(), OverlapCursor()
    cursor: str | None = None
    emitted: list[tuple[str, int]] = []
    now, version = [0], [0]
    for edits, saved in [*runs, ([], 10_000)]:  # a last complete run after the edits
        apply_edits(provider, edits, now, version)
        state = strategy.load(cursor)
        for page in provider.pages(state.since, size)[:saved]:
            kept, state = advance(strategy, state, page)
            emitted.extend((r.external_id, r.data["v"]) for r in kept)
            cursor = strategy.dump(state)
    check(emitted, provider)


@settings(max_examples=150, deadline=None)
@given(runs=runs_strategy, size=st.integers(1, 3))
def test_keyset_never_loses_or_repeats_across_interrupted_runs(runs: list[tuple[list[Any], int]], size: int) -> None:
    provider, strategy = ExactProvider(), KeysetCursor()
    cursor: str | None = None
    emitted: list[tuple[str, int]] = []
    now, version = [0], [0]
    for edits, saved in [*runs, ([], 10_000)]:
        apply_edits(provider, edits, now, version, tick=1)
        state = strategy.load(cursor)
        for page in provider.keyset_pages(state.since, state.last_id, size)[:saved]:
            kept, state = advance(strategy, state, page)
            emitted.extend((r.external_id, r.data["v"]) for r in kept)
            cursor = strategy.dump(state)
    check(emitted, provider)
