"""Conflicts, one table per situation across the six strategies, and the properties every merge keeps."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from castiel.models import Conflict, ConflictStrategy, Connection
from castiel.sync.canonical import same
from castiel.sync.conflicts import (
    ConflictSettings,
    FieldConflict,
    LocalState,
    RemoteChange,
    conflict_documents,
    merge,
)

LW, RW, NW, FM, SP, MA = (
    ConflictStrategy.LOCAL_WINS,
    ConflictStrategy.REMOTE_WINS,
    ConflictStrategy.NEWEST_WINS,
    ConflictStrategy.FIELD_MERGE,
    ConflictStrategy.SOURCE_PRIORITY,
    ConflictStrategy.MANUAL,
)
T1, T2, T3 = "2026-03-01T10:00:00.000000Z", "2026-03-01T11:00:00.000000Z", "2026-03-01T12:00:00.000000Z"

BASE = {"title": "Draft", "status": "open", "owner": "ann"}


def settings(strategy: ConflictStrategy, fallback: ConflictStrategy = LW, *priority: str) -> ConflictSettings:
    return ConflictSettings(strategy, fallback, priority)


def conflicts_of(result: Any) -> list[tuple[str, ConflictStrategy, str, bool]]:
    return [(c.field, c.rule, c.kept, c.open) for c in result.conflicts]


# ---------------------------------------------------------------- both sides changed different fields

DISJOINT_LOCAL = LocalState(
    {"title": "Draft", "status": "done", "owner": "ann"},
    {"title": T1, "status": T2, "owner": T1},
    {"title": "sf", "status": "local", "owner": "sf"},
)
DISJOINT_CHANGE = RemoteChange("sf", {"title": "Final", "status": "open", "owner": "ann"}, T3, BASE)

DISJOINT_CASES = [
    pytest.param(settings(LW), {"status": "done", "title": "Draft"}, [("title", LW, "local", False)], id="local_wins"),
    pytest.param(
        settings(RW), {"status": "open", "title": "Final"}, [("status", RW, "remote", False)], id="remote_wins"
    ),
    pytest.param(settings(MA), {"status": "done", "title": "Draft"}, [("title", MA, "local", True)], id="manual"),
    pytest.param(settings(FM, RW), {"status": "done", "title": "Final"}, [], id="field_merge"),
    pytest.param(settings(NW), {"status": "done", "title": "Final"}, [], id="newest_wins"),
    pytest.param(settings(SP, LW, "sf"), {"status": "done", "title": "Final"}, [], id="source_priority"),
]


@pytest.mark.parametrize(("rule", "expected", "conflicts"), DISJOINT_CASES)
def test_both_sides_changed_different_fields(
    rule: ConflictSettings, expected: dict[str, Any], conflicts: list[Any]
) -> None:
    result = merge(DISJOINT_LOCAL, DISJOINT_CHANGE, rule)

    assert {name: result.data[name] for name in expected} == expected
    assert conflicts_of(result) == conflicts
    assert result.changed == {name: value for name, value in expected.items() if DISJOINT_LOCAL.data[name] != value}
    assert result.versions == dict.fromkeys(result.changed, T3)
    assert result.sources == dict.fromkeys(result.changed, "sf")


# ---------------------------------------------------------------- both sides changed the same field


def contested(local_time: str, local_source: str = "sf", source: str = "sf") -> tuple[LocalState, RemoteChange]:
    local = LocalState({**BASE, "title": "Ours"}, {"title": local_time}, {"title": local_source})
    return local, RemoteChange(source, {**BASE, "title": "Theirs"}, T2, BASE)


CONTESTED_CASES = [
    pytest.param(settings(LW), T1, "sf", "sf", "Ours", LW, False, id="local_wins"),
    pytest.param(settings(RW), T1, "sf", "sf", "Theirs", RW, False, id="remote_wins"),
    pytest.param(settings(MA), T1, "sf", "sf", "Ours", MA, True, id="manual-opens-it"),
    pytest.param(settings(FM, LW), T1, "sf", "sf", "Ours", LW, False, id="field_merge-fallback-local"),
    pytest.param(settings(FM, RW), T3, "sf", "sf", "Theirs", RW, False, id="field_merge-fallback-remote"),
    pytest.param(settings(FM, MA), T1, "sf", "sf", "Ours", MA, True, id="field_merge-fallback-manual"),
    pytest.param(settings(FM, NW), T1, "sf", "sf", "Theirs", NW, False, id="field_merge-fallback-newest"),
    pytest.param(settings(NW), T1, "sf", "sf", "Theirs", NW, False, id="newest-remote-later"),
    pytest.param(settings(NW), T3, "sf", "sf", "Ours", NW, False, id="newest-local-later"),
    pytest.param(settings(NW), T2, "sf", "sf", "Theirs", NW, False, id="newest-tie-greater-value"),
    pytest.param(settings(SP, LW, "notion", "sf"), T1, "notion", "sf", "Ours", SP, False, id="priority-owner-kept"),
    pytest.param(settings(SP, LW, "notion", "sf"), T3, "sf", "notion", "Theirs", SP, False, id="priority-owner-wins"),
    pytest.param(settings(SP, LW, "notion"), T3, "hub", "sf", "Ours", SP, False, id="priority-unlisted-newest"),
    pytest.param(settings(SP, LW, "local"), T3, "local", "sf", "Ours", SP, False, id="priority-local-edits"),
]


@pytest.mark.parametrize(
    ("rule", "local_time", "local_source", "source", "title", "applied", "opened"), CONTESTED_CASES
)
def test_both_sides_changed_the_same_field(
    rule: ConflictSettings,
    local_time: str,
    local_source: str,
    source: str,
    title: str,
    applied: ConflictStrategy,
    opened: bool,
) -> None:
    local, change = contested(local_time, local_source, source)

    result = merge(local, change, rule)

    assert result.data["title"] == title
    kept = "local" if title == "Ours" else "remote"
    assert result.conflicts == (FieldConflict("title", "Ours", "Theirs", applied, kept, opened),)
    assert result.changed == ({} if kept == "local" else {"title": "Theirs"})


def test_newest_wins_uses_the_source_s_per_field_time_when_it_has_one() -> None:
    local, change = contested(T2)
    timed = RemoteChange(change.source, change.fields, T1, BASE, {"title": T3})

    assert merge(local, timed, settings(NW)).data["title"] == "Theirs"
    assert merge(local, change, settings(NW)).versions == {"title": T2}


# ---------------------------------------------------------------- only one side changed


@pytest.mark.parametrize("strategy", [LW, RW, NW, FM, MA])
def test_a_change_only_the_source_made_is_taken_under_every_strategy(strategy: ConflictStrategy) -> None:
    local = LocalState(dict(BASE))

    change = RemoteChange("sf", {**BASE, "owner": "bob", "due": "2026-04-01"}, T2, BASE)
    result = merge(local, change, settings(strategy))

    assert result.changed == {"owner": "bob", "due": "2026-04-01"}
    assert result.conflicts == ()


@pytest.mark.parametrize("strategy", [LW, RW, NW, FM, MA])
def test_a_field_the_source_owns_read_only_is_taken_from_it_and_never_a_conflict(strategy: ConflictStrategy) -> None:
    # ``number`` diverged locally (an earlier release took a local edit of it; none goes out): the source's value
    # puts it right, and its edit of the title is not turned into a conflict by it.
    local = LocalState({**BASE, "number": 999})

    change = RemoteChange(
        "gh", {**BASE, "title": "Final", "number": 21}, T2, {**BASE, "number": 21}, owned=frozenset({"number"})
    )
    result = merge(local, change, settings(strategy))

    assert result.changed == {"title": "Final", "number": 21}
    assert result.conflicts == ()


def test_a_source_ranked_below_a_field_s_owner_cannot_change_it() -> None:
    local = LocalState(dict(BASE), {}, {"owner": "sf", "title": "notion"})
    change = RemoteChange("notion", {**BASE, "owner": "bob", "title": "Final"}, T2, BASE)

    result = merge(local, change, settings(SP, LW, "sf", "notion"))

    assert result.changed == {"title": "Final"}
    assert conflicts_of(result) == [("owner", SP, "local", False)]


NO_BASE_CASES = [
    pytest.param({}, {"title": "T"}, {"title": "T"}, [], id="new-shard"),
    pytest.param({"title": None}, {"title": "T"}, {"title": "T"}, [], id="null-is-no-value"),
    pytest.param({"title": "Mine"}, {"title": "T"}, {}, [("title", LW, "local", False)], id="a-value-is-contested"),
    pytest.param({"title": "T "}, {"title": "T"}, {}, [], id="same-in-canonical-form"),
]


@pytest.mark.parametrize(("data", "fields", "changed", "conflicts"), NO_BASE_CASES)
def test_without_a_base_every_differing_local_value_is_contested(
    data: dict[str, Any], fields: dict[str, Any], changed: dict[str, Any], conflicts: list[Any]
) -> None:
    result = merge(LocalState(data), RemoteChange("sf", fields, T1), settings(FM))

    assert (result.changed, conflicts_of(result)) == (changed, conflicts)


# ---------------------------------------------------------------- settings and documents


def test_field_merge_cannot_fall_back_to_itself() -> None:
    with pytest.raises(ValueError, match="another strategy"):
        ConflictSettings(FM, FM)
    with pytest.raises(ValidationError, match="another strategy"):
        Connection(id="c", tenant_id="t", integration_id="i", provider="github", field_merge_fallback="field_merge")

    connection = Connection(
        id="c", tenant_id="t", integration_id="i", provider="github", conflict_strategy=SP, source_priority=["a", "b"]
    )
    assert ConflictSettings.of(connection) == ConflictSettings(SP, LW, ("a", "b"))


def test_conflict_documents_record_both_values_and_the_rule_with_deterministic_ids() -> None:
    found = (FieldConflict("title", "Ours", "Theirs", MA, "local", True), FieldConflict("due", None, 3, NW, "remote"))
    at = datetime(2026, 3, 1, tzinfo=UTC)
    where = {"tenant_id": "t1", "shard_id": "s1", "shard_type": "task", "connection_id": "gh", "detected_at": at}

    docs = conflict_documents(found, **where)

    assert docs == conflict_documents(found, **where)
    opened, settled = (Conflict.model_validate(doc) for doc in docs)
    assert (opened.status, opened.field, opened.local_value, opened.remote_value) == ("open", "title", "Ours", "Theirs")
    assert (opened.rule, opened.kept, opened.resolved_at) == (MA, "local", None)
    assert (settled.status, settled.rule, settled.kept, settled.resolved_at) == ("resolved", NW, "remote", at)
    assert docs[0]["id"] != docs[1]["id"]
    assert docs[0]["id"] != conflict_documents(found, **{**where, "tenant_id": "t2"})[0]["id"]


# ---------------------------------------------------------------- properties

FIELDS = ("a", "b", "c", "d", "e")
values = st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["x", "y", " x", "z"]), st.booleans())
records = st.dictionaries(st.sampled_from(FIELDS), values, max_size=5)
times = st.sampled_from([T1, T2, T3])
rules = st.builds(
    ConflictSettings,
    st.sampled_from(list(ConflictStrategy)),
    st.sampled_from([LW, RW, NW, SP, MA]),
    st.permutations(["sf", "notion", "local"]).map(tuple),
)
locals_ = st.builds(
    LocalState,
    records,
    st.dictionaries(st.sampled_from(FIELDS), times),
    st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(["sf", "notion", "local", "hub"])),
)
changes = st.builds(
    RemoteChange, st.sampled_from(["sf", "notion", "local", "hub"]), records, times, st.none() | records
)


def shuffled(mapping: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    items = list(mapping.items())
    rnd.shuffle(items)
    return dict(items)


@given(locals_, changes, rules, st.randoms())
def test_merging_is_deterministic_whatever_the_field_order(
    local: LocalState, change: RemoteChange, rule: ConflictSettings, rnd: random.Random
) -> None:
    reordered = RemoteChange(
        change.source,
        shuffled(dict(change.fields), rnd),
        change.time,
        None if change.base is None else shuffled(dict(change.base), rnd),
    )

    assert merge(local, change, rule) == merge(
        LocalState(shuffled(dict(local.data), rnd), local.versions, local.sources), reordered, rule
    )


@given(locals_, records, rules, st.data())
def test_a_no_op_change_never_creates_a_conflict(
    local: LocalState, base: dict[str, Any], rule: ConflictSettings, data: st.DataObject
) -> None:
    # Every field the change carries is what the shard has, or what the source had at its last sync.
    candidates = {name: [local.data[name]] for name in local.data}
    for name, value in base.items():
        candidates.setdefault(name, []).append(value)
    fields = {
        name: data.draw(st.sampled_from(options)) for name, options in candidates.items() if data.draw(st.booleans())
    }

    result = merge(local, RemoteChange("sf", fields, T2, base), rule)

    assert result.conflicts == ()
    assert (result.changed, result.data) == ({}, local.data)


@given(records, st.data(), st.sampled_from([LW, RW, NW, SP, MA]))
def test_field_merge_with_disjoint_changes_loses_nothing(
    base: dict[str, Any], data: st.DataObject, fallback: ConflictStrategy
) -> None:
    edits = data.draw(st.dictionaries(st.sampled_from(FIELDS), st.tuples(st.booleans(), values)))
    ours = {name: value for name, (local_side, value) in edits.items() if local_side}
    theirs = {name: value for name, (local_side, value) in edits.items() if not local_side}
    local = LocalState({**base, **ours})

    result = merge(local, RemoteChange("sf", {**base, **theirs}, T2, base), settings(FM, fallback))

    assert same(result.data, {**base, **ours, **theirs})
    assert result.conflicts == ()
