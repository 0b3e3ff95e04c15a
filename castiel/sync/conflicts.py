"""Conflicts — six strategies, pure: merging a change from one side (a connection, or ``local``) into a shard.

Every field the change carries is classed against the base, the change's source's snapshot at its last sync:

- the same on both sides: nothing to do (a no-op change never conflicts);
- changed by the source only (``forward``): the source's value is the news;
- changed locally only (``stale``): the source still has the base value, the local one is the news;
- changed on both sides to different values (``contested``): a conflict. With no base (the first sync of a record
  with a shard that already had a value) every differing field with a local value is contested.
- a field the source maps ``readOnly`` is its own (``RemoteChange.owned``): when it differs, the source's value is
  taken as forward, whatever the base — nothing local can have changed it legitimately.

The strategies differ in what they do when both sides changed the record (``concurrent``: something contested, or
forward and stale fields together):

- ``local_wins`` / ``manual``: the shard stays as it is, whole; every dropped source value is recorded (``manual``
  opens it for a person to decide). ``remote_wins``: the source's version replaces the shard's fields, whole.
- ``field_merge``: forward fields are taken and stale ones kept, so disjoint changes both survive; each contested
  field goes to the configured fallback rule (recorded as the rule that decided it).
- ``newest_wins``: ``field_merge`` whose contested fields go to the later timestamp (the shard's per-field
  version against the change's time); equal times go to the greater canonical value, so both sides of a two-way
  sync settle on the same value whichever merges first.
- ``source_priority``: an ordered list of sources owns the fields: a source's change to a field last set by a
  higher-ranked source is refused (unlisted sources rank last; equal ranks merge as ``newest_wins``).

Without concurrency, every strategy takes the forward fields (``source_priority`` still refuses a lower-ranked
source). Every conflict is recorded with its field, both values, the rule that decided it and the side kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from castiel.models import Conflict, ConflictStatus, ConflictStrategy, Connection, stable_id
from castiel.sync.canonical import canonical_bytes, fingerprint, same

LOCAL = "local"
"""The source name of a local edit (``castiel shards update``), as ``field_sources`` and ``sourcePriority`` use it."""

Side = Literal["local", "remote"]
_ABSENT: Any = object()


@dataclass(frozen=True, slots=True)
class ConflictSettings:
    """A connection's conflict rule and its parameters."""

    strategy: ConflictStrategy = ConflictStrategy.LOCAL_WINS
    fallback: ConflictStrategy = ConflictStrategy.LOCAL_WINS
    source_priority: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.fallback is ConflictStrategy.FIELD_MERGE:
            raise ValueError("the field_merge fallback must be another strategy than field_merge")

    @classmethod
    def of(cls, connection: Connection) -> ConflictSettings:
        """The settings a connection document holds."""
        return cls(connection.conflict_strategy, connection.field_merge_fallback, tuple(connection.source_priority))


@dataclass(frozen=True, slots=True)
class LocalState:
    """The shard's side: its data, when each field was last set (``format_utc`` text, which orders as the times
    do) and by which source."""

    data: Mapping[str, Any]
    versions: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RemoteChange:
    """One source's side: its fields, the time of the change (``format_utc``), and its snapshot from the last sync
    (None before the first). ``field_times`` overrides ``time`` for fields the source timestamps one by one."""

    source: str
    fields: Mapping[str, Any]
    time: str
    base: Mapping[str, Any] | None = None
    field_times: Mapping[str, str] = field(default_factory=dict)
    owned: frozenset[str] = frozenset()
    """Fields the source maps ``readOnly``: it alone sets them (nothing pushes them to it), so its value is taken,
    never a conflict — a shard value it disagrees with (set by an earlier release's local edit) is put right."""


@dataclass(frozen=True, slots=True)
class FieldConflict:
    """A field both sides had a say in, both values, the rule that decided it, the side kept, and whether it waits
    for a person (``manual``)."""

    field: str
    local: Any
    remote: Any
    rule: ConflictStrategy
    kept: Side
    open: bool = False


@dataclass(frozen=True, slots=True)
class Merge:
    """The shard after a change: its data, the fields whose value changed (with their new versions and source),
    and the conflicts, by field."""

    data: dict[str, Any]
    changed: dict[str, Any]
    versions: dict[str, str]
    sources: dict[str, str]
    conflicts: tuple[FieldConflict, ...]


def merge(local: LocalState, change: RemoteChange, settings: ConflictSettings) -> Merge:
    """Merge ``change`` into ``local`` under ``settings`` (see the module docstring)."""
    forward, stale, contested = _classify(local.data, change)
    if not forward and not contested:
        return Merge(dict(local.data), {}, {}, {}, ())
    take: dict[str, Any] = {}
    conflicts: list[FieldConflict] = []
    concurrent = bool(contested) or bool(forward and stale)
    strategy = settings.strategy
    if strategy is ConflictStrategy.SOURCE_PRIORITY:
        _by_priority(local, change, forward, contested, settings.source_priority, take, conflicts)
    elif concurrent and strategy in (ConflictStrategy.LOCAL_WINS, ConflictStrategy.MANUAL):
        opened = strategy is ConflictStrategy.MANUAL
        for name in sorted(forward + contested):
            conflicts.append(_conflict(name, local, change, strategy, "local", opened))
    elif concurrent and strategy is ConflictStrategy.REMOTE_WINS:
        take.update((name, change.fields[name]) for name in forward + contested + stale)
        conflicts += [_conflict(name, local, change, strategy, "remote") for name in sorted(contested + stale)]
    else:
        take.update((name, change.fields[name]) for name in forward)
        rule = settings.fallback if strategy is ConflictStrategy.FIELD_MERGE else strategy
        for name in contested:
            kept = _settle(name, local, change, rule, settings.source_priority)
            if kept == "remote":
                take[name] = change.fields[name]
            conflicts.append(_conflict(name, local, change, rule, kept, rule is ConflictStrategy.MANUAL))
    return _result(local, change, take, conflicts)


def _classify(data: Mapping[str, Any], change: RemoteChange) -> tuple[list[str], list[str], list[str]]:
    """The differing fields of ``change``: (forward, stale, contested), each in the change's field order."""
    forward: list[str] = []
    stale: list[str] = []
    contested: list[str] = []
    base = change.base
    for name, remote in change.fields.items():
        ours = data.get(name, _ABSENT)
        if not _differs(ours, remote):
            continue
        if name in change.owned:
            forward.append(name)  # the source's alone: what it says is the value, whatever the shard holds
            continue
        if base is None:
            (forward if ours is _ABSENT or ours is None else contested).append(name)
            continue
        was = base.get(name, _ABSENT)
        if not _differs(was, remote):
            stale.append(name)
        else:
            (contested if _differs(ours, was) else forward).append(name)
    return forward, stale, contested


def _differs(left: Any, right: Any) -> bool:
    """Whether two values differ, a field's absence being a value of its own."""
    if left is _ABSENT or right is _ABSENT:
        return left is not right
    return not same(left, right)


def _settle(
    name: str, local: LocalState, change: RemoteChange, rule: ConflictStrategy, priority: Sequence[str]
) -> Side:
    """The side a contested field goes to under a per-field ``rule``."""
    if rule is ConflictStrategy.REMOTE_WINS:
        return "remote"
    if rule is ConflictStrategy.NEWEST_WINS:
        return _newest(name, local, change)
    if rule is ConflictStrategy.SOURCE_PRIORITY:
        ours, theirs = _rank(priority, local.sources.get(name)), _rank(priority, change.source)
        return "remote" if theirs < ours else "local" if theirs > ours else _newest(name, local, change)
    return "local"  # local_wins and manual keep the shard's value


def _newest(name: str, local: LocalState, change: RemoteChange) -> Side:
    ours, theirs = local.versions.get(name, ""), change.field_times.get(name, change.time)
    if theirs != ours:
        return "remote" if theirs > ours else "local"
    # Equal times: the greater canonical value wins, so both sides of a two-way sync settle on the same one.
    return "remote" if canonical_bytes(change.fields[name]) > canonical_bytes(local.data.get(name)) else "local"


def _rank(priority: Sequence[str], source: str | None) -> int:
    return priority.index(source) if source in priority else len(priority)


def _by_priority(
    local: LocalState,
    change: RemoteChange,
    forward: list[str],
    contested: list[str],
    priority: Sequence[str],
    take: dict[str, Any],
    conflicts: list[FieldConflict],
) -> None:
    """``source_priority``: each field the source changed goes to the higher-ranked of it and the field's owner."""
    rule = ConflictStrategy.SOURCE_PRIORITY
    theirs = _rank(priority, change.source)
    for name in forward + contested:
        ours = _rank(priority, local.sources.get(name))
        if theirs > ours or (name in contested and theirs == ours and _newest(name, local, change) == "local"):
            conflicts.append(_conflict(name, local, change, rule, "local"))
            continue
        take[name] = change.fields[name]
        if name in contested:
            conflicts.append(_conflict(name, local, change, rule, "remote"))


def _conflict(
    name: str, local: LocalState, change: RemoteChange, rule: ConflictStrategy, kept: Side, opened: bool = False
) -> FieldConflict:
    return FieldConflict(name, local.data.get(name), change.fields.get(name), rule, kept, opened)


def _result(local: LocalState, change: RemoteChange, take: Mapping[str, Any], conflicts: list[FieldConflict]) -> Merge:
    data = dict(local.data)
    data.update(take)
    versions = {name: change.field_times.get(name, change.time) for name in take}
    sources = dict.fromkeys(take, change.source)
    return Merge(data, dict(take), versions, sources, tuple(sorted(conflicts, key=lambda c: c.field)))


def conflict_documents(
    conflicts: Sequence[FieldConflict],
    *,
    tenant_id: str,
    shard_id: str,
    shard_type: str,
    connection_id: str,
    detected_at: datetime,
) -> list[dict[str, Any]]:
    """The ``conflicts`` documents of one merge. Ids are deterministic (shard, source, field, both values), so a
    redelivered page records each conflict once."""
    docs = []
    for found in conflicts:
        values = fingerprint({"local": found.local, "remote": found.remote})
        doc = Conflict(
            id=stable_id("conflict", tenant_id, shard_id, connection_id, found.field, values),
            tenant_id=tenant_id,
            status=ConflictStatus.OPEN if found.open else ConflictStatus.RESOLVED,
            shard_id=shard_id,
            shard_type=shard_type,
            connection_id=connection_id,
            field=found.field,
            local_value=found.local,
            remote_value=found.remote,
            rule=found.rule,
            kept=found.kept,
            detected_at=detected_at,
            resolved_at=None if found.open else detected_at,
        )
        docs.append(doc.to_doc())
    return docs
