"""A portable ``Query`` rendered as parameterised Cosmos SQL, and the indexing policy its ORDER BY clauses need.

The plan itself (paths, sort order, keyset continuation) is ``query_plan``'s, shared with the SQLite store. No I/O.

``indexing_policy(container)`` is the one source of truth for every container's indexing policy: the store creates
containers with it where it may (key auth, the emulator), and ``infra/`` declares the same ``compositeIndexes``
(checked by a test), because data-plane RBAC cannot create or replace a container and
``create_container_if_not_exists`` never updates an existing container's policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from castiel.backends.query_plan import (
    SortKey,
    check_filter,
    check_limit,
    field_segments,
    partition_key_field,
    sort_keys,
)
from castiel.models import CONTAINER_PARTITION_KEYS
from castiel.ports import Filter, Query

ORDERINGS: Mapping[str, tuple[tuple[SortKey, ...], ...]] = {
    "connections": ((("tenantId", "asc"), ("id", "asc")),),  # castiel connections list
    "sync-tasks": (
        (("priorityRank", "asc"), ("nextRunAt", "asc")),  # the scheduler's due tasks
        (("nextRunAt", "asc"),),  # castiel tasks list
    ),
    "sync-results": ((("startedAt", "asc"),),),  # castiel status, newest first
    "credentials": ((("dueAt", "asc"),),),  # the token refresher's due credentials
    "conflicts": ((("detectedAt", "asc"),),),  # castiel conflicts list, newest first
    "webhook-audit": ((("receivedAt", "asc"),),),  # castiel webhooks health, newest first
}
"""The orderings the code queries each container with (beyond none, the ``id`` order): one composite index each.

One index serves an ordering and its exact reverse, so each is listed once, ascending first. A test finds every
``order_by=`` in the code and checks that its container's policy has the index.
"""

_INDEX_ORDER = {  # (direction, flipped) -> composite index order
    ("asc", False): "ascending",
    ("desc", False): "descending",
    ("asc", True): "descending",
    ("desc", True): "ascending",
}
_COSMOS_OPS = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True, slots=True)
class CosmosSql:
    """A parameterised Cosmos SQL query, as ``ContainerProxy.query_items(query=text, parameters=...)`` takes it."""

    text: str
    parameters: list[dict[str, Any]] = field(default_factory=list)


class _Parameters:
    """Binds values to ``@p0``, ``@p1``, ... in order of appearance."""

    def __init__(self) -> None:
        self.bound: list[dict[str, Any]] = []

    def bind(self, value: Any) -> str:
        name = f"@p{len(self.bound)}"
        self.bound.append({"name": name, "value": value})
        return name


def cosmos_path(path: str) -> str:
    """``a.b`` as ``c["a"]["b"]``: bracket notation, so fields named like keywords (``value``, ``order``) work."""
    return "c" + "".join(f'["{segment}"]' for segment in field_segments(path))


def select_sql(container: str, query: Query, after: Sequence[Any] | None = None) -> CosmosSql:
    """``SELECT`` of the page of ``query`` following ``after`` (``keyset_after`` of the last item), with one extra row
    to tell whether more follow.

    The partition key is not part of the text: it is passed to the SDK, which then targets that partition only.
    """
    check_limit(query.limit)
    keys = sort_keys(container, query)
    parameters = _Parameters()
    conditions = [_condition(flt, parameters) for flt in query.filters]
    if after is not None:
        conditions.append(_after(container, keys, after, parameters))
    top = "" if query.limit is None else f"TOP {query.limit + 1} "
    order = ", ".join(f"{cosmos_path(path)} {direction.upper()}" for path, direction in keys)
    # Paths in the text are validated identifiers; every value is a bound parameter.
    return CosmosSql(f"SELECT {top}* FROM c{_where(conditions)} ORDER BY {order}", parameters.bound)  # noqa: S608


def keyset_after(container: str, query: Query, doc: Mapping[str, Any]) -> list[list[Any]]:
    """The sort-key values of ``doc`` for a continuation token: ``[value]`` for each key, ``[]`` where the document
    has no such field — Cosmos DB sorts a missing field (undefined) before null, so the two must not be confused."""
    found: list[list[Any]] = []
    for path, _ in sort_keys(container, query):
        value: Any = doc
        for segment in field_segments(path):
            if not isinstance(value, Mapping) or segment not in value:
                found.append([])
                break
            value = value[segment]
        else:
            found.append([value])
    return found


def ids_sql(doc_ids: Sequence[str]) -> CosmosSql:
    """``SELECT`` of the documents with these ids (run within one partition, an index lookup per id)."""
    return CosmosSql("SELECT * FROM c WHERE ARRAY_CONTAINS(@ids, c.id)", [{"name": "@ids", "value": list(doc_ids)}])


def count_sql(query: Query) -> CosmosSql:
    """``SELECT VALUE COUNT(1)`` of the documents matching ``query``'s filters."""
    parameters = _Parameters()
    conditions = [_condition(flt, parameters) for flt in query.filters]
    return CosmosSql(f"SELECT VALUE COUNT(1) FROM c{_where(conditions)}", parameters.bound)  # noqa: S608


def indexing_policy(container: str, orderings: Sequence[Sequence[SortKey]] | None = None) -> dict[str, Any]:
    """``container``'s indexing policy: every path, plus one composite index per ordering it is queried with.

    ``orderings`` defaults to the container's row of ``ORDERINGS`` (a test passes its own). Cosmos DB needs a
    composite index for an ORDER BY over more than one path, and every order here has at least the two tie-breaks;
    the unordered case (``id``, partition key) is always included. An index also serves the exact reverse of its
    order, so each is stored starting ascending and an ordering and its reverse share one. ``ValueError`` for an
    unknown container.
    """
    chosen = ORDERINGS.get(container, ()) if orderings is None else orderings
    composites: list[list[dict[str, str]]] = []
    for ordering in ((), *chosen):
        keys = sort_keys(container, Query(order_by=tuple(ordering)))
        flip = keys[0][1] == "desc"
        index = [
            {"path": "/" + "/".join(field_segments(path)), "order": _INDEX_ORDER[direction, flip]}
            for path, direction in keys
        ]
        if index not in composites:
            composites.append(index)
    return {
        "indexingMode": "consistent",
        "automatic": True,
        "includedPaths": [{"path": "/*"}],
        "excludedPaths": [{"path": '/"_etag"/?'}],
        "compositeIndexes": composites,
    }


def indexing_policies() -> dict[str, dict[str, Any]]:
    """Every container of ``models.CONTAINER_PARTITION_KEYS`` with its ``indexing_policy``."""
    return {container: indexing_policy(container) for container in CONTAINER_PARTITION_KEYS}


def _where(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _condition(flt: Filter, parameters: _Parameters) -> str:
    check_filter(flt)
    path = cosmos_path(flt.field)
    if isinstance(flt.value, tuple):
        if not flt.value:
            return "false"
        return f"{path} IN ({', '.join(parameters.bind(value) for value in flt.value)})"
    if flt.value is None:
        # IS_NULL is true for JSON null only, never for a missing field: the same as SQLite's json_type = 'null'.
        return f"IS_NULL({path})" if flt.op == "==" else f"(IS_DEFINED({path}) AND NOT IS_NULL({path}))"
    return f"{path} {_COSMOS_OPS[flt.op]} {parameters.bind(flt.value)}"


def _after(container: str, keys: Sequence[SortKey], after: Sequence[Any], parameters: _Parameters) -> str:
    """Rows strictly after ``after`` in the order ``keys``: equal on a prefix of keys, beyond on the next one.

    Cosmos DB orders values of different types by type (undefined, null, boolean, number, string, array, object) and
    a comparison across types is undefined, never true, so "beyond" is the same type's greater (or lesser) values
    or any later (or earlier) type: a last value that is null or missing skips nothing.
    """
    if not isinstance(after, Sequence) or not all(isinstance(v, list) and len(v) <= 1 for v in after):
        raise ValueError("continuation token does not belong to this query")
    names = [parameters.bind(value[0]) if _rank(value) > 1 else "" for value in after]
    always_strings = {"id", partition_key_field(container)}  # validated non-empty strings on every document
    alternatives = []
    for position, (path, direction) in enumerate(keys):
        terms = [_equal(cosmos_path(prefix), after[i], names[i]) for i, (prefix, _) in enumerate(keys[:position])]
        beyond = _beyond(cosmos_path(path), direction, after[position], names[position], path in always_strings)
        if not beyond:
            continue  # nothing sorts beyond this key's value: no row differs first here
        either = beyond[0] if len(beyond) == 1 else f"({' OR '.join(beyond)})"
        clause = " AND ".join([*terms, either]) if terms else " OR ".join(beyond)
        alternatives.append(f"({clause})")
    return f"({' OR '.join(alternatives)})" if alternatives else "false"


_TYPE_TESTS = ("NOT IS_DEFINED({})", "IS_NULL({})", "IS_BOOL({})", "IS_NUMBER({})", "IS_STRING({})",
               "IS_ARRAY({})", "IS_OBJECT({})")  # fmt: skip
"""Cosmos DB's sort order of types, each with the test that tells it."""


def _rank(value: list[Any]) -> int:
    """The position in ``_TYPE_TESTS`` of a keyset value (``[]`` for undefined, else ``[value]``)."""
    if not value:
        return 0
    item = value[0]
    if item is None:
        return 1
    if isinstance(item, bool):
        return 2
    if isinstance(item, int | float):
        return 3
    if isinstance(item, str):
        return 4
    return 5 if isinstance(item, list) else 6


def _equal(path: str, value: list[Any], name: str) -> str:
    rank = _rank(value)
    return _TYPE_TESTS[rank].format(path) if rank <= 1 else f"{path} = {name}"


def _beyond(path: str, direction: str, value: list[Any], name: str, always_string: bool) -> list[str]:
    """The alternatives that put a row's ``path`` strictly after ``value`` in ``direction`` (none: nothing can)."""
    rank = _rank(value)
    ascending = direction == "asc"
    # Cosmos DB compares only booleans, numbers and strings by value.
    same_type = [f"{path} {'>' if ascending else '<'} {name}"] if rank in (2, 3, 4) else []
    if always_string:
        return same_type
    other_types = range(rank + 1, len(_TYPE_TESTS)) if ascending else reversed(range(rank))
    return same_type + [_TYPE_TESTS[other].format(path) for other in other_types]
