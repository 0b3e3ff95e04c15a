"""Cosmos DB refuses an ORDER BY over several paths without a composite index: the ordered queries of the sync
commands (``conflicts list`` newest first, ``shards list`` by id) each have one in the containers' policies."""

from __future__ import annotations

import pytest

from castiel.backends.cosmos import DEFAULT_ORDERINGS
from castiel.backends.cosmos_query import indexing_policy
from castiel.backends.query_plan import sort_keys
from castiel.ports import Query, SortOrder

FLIPPED: dict[SortOrder, str] = {"asc": "descending", "desc": "ascending"}
SAME: dict[SortOrder, str] = {"asc": "ascending", "desc": "descending"}


@pytest.mark.parametrize(
    ("container", "order_by"),
    [("conflicts", (("detectedAt", "desc"),)), ("shards", (("id", "asc"),))],
)
def test_each_ordered_query_of_the_sync_commands_has_a_composite_index(
    container: str, order_by: tuple[tuple[str, SortOrder], ...]
) -> None:
    keys = sort_keys(container, Query(order_by=order_by))
    composites = indexing_policy(container, DEFAULT_ORDERINGS.get(container, ()))["compositeIndexes"]
    wanted = [[{"path": f"/{path}", "order": SAME[direction]} for path, direction in keys]]
    wanted.append([{"path": f"/{path}", "order": FLIPPED[direction]} for path, direction in keys])
    assert any(index in composites for index in wanted)
