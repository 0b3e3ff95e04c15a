"""The sync policy flags of ``connections add`` and ``connections update``, and the check that they fit together.

A flag that the connection's strategy would ignore (``--source-priority`` without ``source_priority``) is refused
rather than stored: the operator believes it applies. The check runs on the connection as it would be stored, so
``update`` refuses an edit that leaves a ``source_priority`` connection without a priority list.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

import typer

from castiel.cli.flags import ID_RULE
from castiel.models import ConflictStrategy, Connection, DedupStrategy, DeletePolicy
from castiel.models.ids import is_valid_id

SOURCE_PRIORITY = "--source-priority"
FALLBACK = "--field-merge-fallback"
THRESHOLD = "--fuzzy-threshold"


def check_id_list(value: str | None) -> str | None:
    """``value`` if it is empty or comma-separated distinct ids, else ``typer.BadParameter``."""
    if value is None:
        return value
    ids = id_list(value)
    bad = [name for name in ids if not is_valid_id(name)]
    if bad:
        raise typer.BadParameter(f"{bad[0]!r} is not a valid connection id: ids are {ID_RULE}")
    if len(set(ids)) != len(ids):
        raise typer.BadParameter(f"{value!r} names a source twice")
    return value


def check_fallback(value: ConflictStrategy | None) -> ConflictStrategy | None:
    """``value`` unless it is ``field_merge``, which cannot fall back on itself."""
    if value is ConflictStrategy.FIELD_MERGE:
        raise typer.BadParameter("the field_merge fallback must be another strategy than field_merge")
    return value


def id_list(value: str) -> list[str]:
    """``a, b`` → ``["a", "b"]``."""
    return [name.strip() for name in value.split(",") if name.strip()]


DeletePolicyFlag = Annotated[
    DeletePolicy | None,
    typer.Option(
        "--delete-policy",
        help="Whether a delete seen on this connection goes out to the others (propagate) or stays local"
        " [default: tombstone_only].",
        show_default=False,
    ),
]
SourcePriorityFlag = Annotated[
    str | None,
    typer.Option(
        SOURCE_PRIORITY,
        callback=check_id_list,
        help="With --conflict-strategy source_priority: connection ids (and local), first wins, e.g. sf,local,gh.",
    ),
]
FallbackFlag = Annotated[
    ConflictStrategy | None,
    typer.Option(
        FALLBACK,
        callback=check_fallback,
        help="With --conflict-strategy field_merge: the rule for a field both sides changed [default: local_wins].",
        show_default=False,
    ),
]
ThresholdFlag = Annotated[
    float | None,
    typer.Option(
        THRESHOLD,
        min=0,
        max=100,
        help="With --dedup-strategy fuzzy: the similarity (0-100) from which a record is a duplicate candidate"
        " [default: 90].",
        show_default=False,
    ),
]


def check_policy(connection: Connection, given: Collection[str]) -> None:
    """``typer.BadParameter`` when ``connection`` (as it would be stored) and the policy flags ``given`` (their
    names) do not fit together: a flag its strategy ignores, or a strategy without what it needs."""
    strategy = connection.conflict_strategy
    if SOURCE_PRIORITY in given and strategy is not ConflictStrategy.SOURCE_PRIORITY:
        raise _misfit(SOURCE_PRIORITY, f"applies only with --conflict-strategy source_priority, not {strategy}")
    if strategy is ConflictStrategy.SOURCE_PRIORITY:
        if not connection.source_priority:
            raise _misfit(
                SOURCE_PRIORITY,
                "is needed by --conflict-strategy source_priority: the connection ids (and local) in order,"
                " first wins; without it no source ranks above another",
            )
        if connection.source_priority == [connection.id]:
            raise _misfit(
                SOURCE_PRIORITY,
                f"names only this connection ({connection.id}): rank it against the others or local",
            )
    if FALLBACK in given and strategy is not ConflictStrategy.FIELD_MERGE:
        raise _misfit(FALLBACK, f"applies only with --conflict-strategy field_merge, not {strategy}")
    if THRESHOLD in given and connection.dedup_strategy is not DedupStrategy.FUZZY:
        raise _misfit(THRESHOLD, f"applies only with --dedup-strategy fuzzy, not {connection.dedup_strategy}")


def _misfit(flag: str, reason: str) -> typer.BadParameter:
    return typer.BadParameter(reason, param_hint=f"'{flag}'")
