"""Cosmos DB refuses an ORDER BY over several paths without a matching composite index, and every order the stores
issue has at least two (its fields, then ``id`` and the partition key). So every ``order_by=`` written in the code is
found here, its container named, and its index looked up in ``indexing_policy`` — the policy ``infra/`` declares."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from castiel.backends.cosmos_query import ORDERINGS, indexing_policies, indexing_policy
from castiel.backends.query_plan import SortKey, sort_keys
from castiel.models import CONTAINER_PARTITION_KEYS
from castiel.ports import Query

ROOT = Path(__file__).resolve().parents[3]
SCANNED = ("castiel", "adapters")

Ordering = tuple[SortKey, ...]

ORDERED_QUERIES: dict[tuple[str, Ordering], str] = {
    ("castiel/cli/conflicts.py", (("detectedAt", "desc"),)): "conflicts",
    ("castiel/cli/connections.py", (("tenantId", "asc"), ("id", "asc"))): "connections",
    ("castiel/cli/shards.py", (("id", "asc"),)): "shards",
    ("castiel/cli/status.py", (("startedAt", "desc"),)): "sync-results",
    ("castiel/cli/tasks.py", (("nextRunAt", "asc"),)): "sync-tasks",
    ("castiel/credentials/records.py", (("id", "asc"),)): "credentials",
    ("castiel/credentials/refresher.py", (("dueAt", "asc"),)): "credentials",
    ("castiel/sync/scheduler.py", (("priorityRank", "asc"), ("nextRunAt", "asc"))): "sync-tasks",
    ("castiel/webhooks/health.py", (("receivedAt", "desc"),)): "webhook-audit",
    ("castiel/webhooks/registrations.py", (("id", "asc"),)): "webhooks",
}
"""Every literal ``order_by=`` in the code and the container its query runs on."""

_ORDER = {"asc": "ascending", "desc": "descending"}


def ordered_queries_in_code() -> Iterator[tuple[str, Ordering]]:
    """``(file, ordering)`` for every keyword argument ``order_by=<literal>`` under ``castiel/`` and ``adapters/``.

    The stores themselves pass a query's ``order_by`` on (not a literal), so they are not counted.
    """
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.keyword) and node.arg == "order_by":
                    try:
                        ordering = ast.literal_eval(node.value)
                    except ValueError:
                        continue
                    yield str(path.relative_to(ROOT)), tuple(tuple(key) for key in ordering)


def canonical(container: str, ordering: Ordering) -> tuple[SortKey, ...]:
    """The query's full sort order, starting ascending (one index serves an order and its exact reverse)."""
    keys = sort_keys(container, Query(order_by=ordering))
    if keys[0][1] == "asc":
        return keys
    return tuple((path, "desc" if direction == "asc" else "asc") for path, direction in keys)


def as_index(keys: tuple[SortKey, ...]) -> list[dict[str, str]]:
    return [{"path": "/" + path.replace(".", "/"), "order": _ORDER[direction]} for path, direction in keys]


def test_the_table_names_exactly_the_ordered_queries_in_the_code() -> None:
    found = set(ordered_queries_in_code())

    assert found == set(ORDERED_QUERIES), "a new ordered query: add it (and its container) to ORDERED_QUERIES"


@pytest.mark.parametrize(("where", "container"), ORDERED_QUERIES.items(), ids=[f[0] for f in ORDERED_QUERIES])
def test_every_ordered_query_has_its_composite_index(where: tuple[str, Ordering], container: str) -> None:
    _, ordering = where

    composites = indexing_policy(container)["compositeIndexes"]

    assert as_index(canonical(container, ordering)) in composites


def test_no_container_keeps_an_index_for_an_order_nothing_queries() -> None:
    queried = {(container, canonical(container, ordering)) for (_, ordering), container in ORDERED_QUERIES.items()}

    declared = {
        (container, canonical(container, ordering)) for container, rows in ORDERINGS.items() for ordering in rows
    }

    assert declared <= queried


def test_every_container_has_a_policy_with_the_unordered_index() -> None:
    policies = indexing_policies()

    assert set(policies) == set(CONTAINER_PARTITION_KEYS)
    for container, policy in policies.items():
        pk = CONTAINER_PARTITION_KEYS[container]
        assert policy["compositeIndexes"][0] == [
            {"path": "/id", "order": "ascending"},
            {"path": f"/{pk}", "order": "ascending"},
        ]
        assert policy["includedPaths"] == [{"path": "/*"}]


def test_an_unknown_container_has_no_policy() -> None:
    with pytest.raises(ValueError, match="unknown container"):
        indexing_policy("no-such-container")
