"""Where a local edit goes, pure: for each field set by hand, the connections it is pushed to and those it is not,
with why — before anything is written, so an operator is told rather than surprised.

A connection syncing the shard type does not get a field it maps ``readOnly`` (the provider owns it: GitHub's issue
number), one its mapping leaves out, or anything when it syncs ``pull`` only. A field that some connection maps
``readOnly`` and no pushing connection writes is refused: it would go nowhere, and the provider's own value, which
every pull reports unchanged, would never show through it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from castiel.sync.mapping import EntityMapping

READ_ONLY = "read-only there"
UNMAPPED = "not in its mapping"
PULL_ONLY = "it syncs pull only"


@dataclass(frozen=True, slots=True)
class Syncing:
    """A connection that maps the shard type: its id, whether it is pushed to, and the mapping it uses."""

    connection_id: str
    pushes: bool
    mapping: EntityMapping


@dataclass(frozen=True, slots=True)
class Withheld:
    """Fields of an edit that do not go out to one connection, and why."""

    connection_id: str
    fields: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Reach:
    """Where an edit's fields go: the connections pushed to, what each one does not get, and the refused fields
    (each with the connections owning it read-only)."""

    targets: tuple[str, ...]
    withheld: tuple[Withheld, ...]
    refused: dict[str, tuple[str, ...]]


def reach(fields: Iterable[str], syncing: Sequence[Syncing]) -> Reach:
    """Where ``fields`` of a shard go among the connections ``syncing`` its type (see the module docstring)."""
    names = sorted(set(fields))
    withheld: list[Withheld] = []
    written: set[str] = set()
    owners: dict[str, list[str]] = {}
    for one in sorted(syncing, key=lambda item: item.connection_id):
        by_reason: dict[str, list[str]] = {}
        for name in names:
            reason = _why_not(one, name)
            if reason is None:
                written.add(name)
                continue
            by_reason.setdefault(reason, []).append(name)
            if name in one.mapping.read_only:
                owners.setdefault(name, []).append(one.connection_id)
        withheld += [Withheld(one.connection_id, tuple(held), why) for why, held in by_reason.items()]
    refused = {name: tuple(ids) for name, ids in owners.items() if name not in written}
    targets = tuple(sorted(one.connection_id for one in syncing if one.pushes))
    return Reach(targets, tuple(withheld), refused)


def _why_not(one: Syncing, name: str) -> str | None:
    """Why ``name`` does not go out to ``one``; None when it does."""
    mapping = one.mapping
    if name in mapping.read_only:
        return READ_ONLY
    if mapping.rules is not None and all(rule.shard_field != name for rule in mapping.rules):
        return UNMAPPED
    return None if one.pushes else PULL_ONLY
