"""The portable query plan both document stores share: field paths, document keys, the total sort order and
keyset continuation tokens, so that the SQLite and Cosmos stores validate and page identically. No I/O.

Why keyset continuation instead of the SDK's tokens: azure-cosmos for Python cannot resume a cross-partition
ORDER BY query from a continuation token. Its multi-partition pipeline hands back one partition's server token, so
pages skip or repeat items (Azure/azure-sdk-for-python#37230, #41434). A token that names the last item's sort key
works for every query shape, costs one index seek per page, and behaves the same on both backends. Every order ends
with ``id`` and the partition key as tie-breaks, so the order is total and no two items share a position.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import orjson

from castiel.models import CONTAINER_PARTITION_KEYS
from castiel.ports import Filter, FilterOp, Query, SortOrder

SortKey = tuple[str, SortOrder]
"""One ``(dotted path, direction)`` of a sort order."""

SYSTEM_FIELDS = frozenset({"_etag", "_ts", "_rid", "_self", "_attachments", "_lsn"})
"""Properties the store owns: dropped from documents on write; ``_etag`` and ``_ts`` are set on read."""

_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_FORBIDDEN_ID_CHARACTERS = frozenset("/\\?#")  # Cosmos DB rejects these in an id
_MAX_ID_LENGTH = 255
_OPS = frozenset(get_args(FilterOp))
_ORDERING_OPS = frozenset({"<", "<=", ">", ">="})


def field_segments(path: str) -> tuple[str, ...]:
    """The segments of a dotted field path; ``ValueError`` unless each segment is a plain identifier.

    The strict grammar is what makes it safe to write paths into SQL text: values are always bound parameters.
    """
    if not isinstance(path, str) or not _FIELD_PATH.fullmatch(path):
        raise ValueError(f"invalid field path {path!r}: dotted identifiers only, like 'health.status'")
    return tuple(path.split("."))


def partition_key_field(container: str) -> str:
    """The top-level field holding ``container``'s partition key; ``ValueError`` for an unknown container."""
    try:
        return CONTAINER_PARTITION_KEYS[container]
    except KeyError:
        known = ", ".join(sorted(CONTAINER_PARTITION_KEYS))
        raise ValueError(f"unknown container {container!r}; expected one of: {known}") from None


def check_key(doc_id: object, partition_key: object) -> tuple[str, str]:
    """``(doc_id, partition_key)`` once both are valid: non-empty strings, the id as Cosmos DB accepts it."""
    if not isinstance(doc_id, str) or not doc_id:
        raise ValueError(f"document id must be a non-empty string, not {doc_id!r}")
    if len(doc_id) > _MAX_ID_LENGTH or not _FORBIDDEN_ID_CHARACTERS.isdisjoint(doc_id):
        raise ValueError(f"document id {doc_id!r} must be at most {_MAX_ID_LENGTH} characters without / \\ ? #")
    if not isinstance(partition_key, str) or not partition_key:
        raise ValueError(f"partition key of document {doc_id!r} must be a non-empty string, not {partition_key!r}")
    return doc_id, partition_key


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A document checked for writing: its body without store-owned fields, its key, and its TTL in seconds."""

    body: dict[str, Any]
    doc_id: str
    partition_key: str
    ttl: int | None


def prepare_document(container: str, doc: Mapping[str, Any]) -> PreparedDocument:
    """Validate ``doc`` for ``container``: ``id``, its partition-key field and an optional ``ttl``.

    ``ttl`` follows Cosmos DB: a positive whole number of seconds, or -1 for "never expires".
    """
    pk_field = partition_key_field(container)
    if "id" not in doc:
        raise ValueError(f"a {container} document needs an 'id'")
    if pk_field not in doc:
        raise ValueError(f"{container} document {doc['id']!r} has no {pk_field!r} (its partition key)")
    doc_id, partition_key = check_key(doc["id"], doc[pk_field])
    ttl = doc.get("ttl", -1)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or (ttl <= 0 and ttl != -1):
        raise ValueError(f"ttl of {doc_id!r} must be a positive whole number of seconds or -1, not {ttl!r}")
    if SYSTEM_FIELDS.isdisjoint(doc):  # a new document usually: one C-level copy instead of a filtering loop
        body = dict(doc)
    else:
        body = {name: value for name, value in doc.items() if name not in SYSTEM_FIELDS}
    return PreparedDocument(body, doc_id, partition_key, None if ttl == -1 else ttl)


def check_filter(flt: Filter) -> None:
    """``ValueError`` unless ``flt`` is one every backend can evaluate exactly."""
    field_segments(flt.field)
    if flt.op not in _OPS:
        raise ValueError(f"unknown filter operator {flt.op!r} on {flt.field!r}")
    if flt.op == "in":
        if not isinstance(flt.value, tuple):
            raise ValueError(f"'in' on {flt.field!r} takes a tuple of values, not {flt.value!r}")
        values: tuple[object, ...] = flt.value
    elif isinstance(flt.value, tuple):
        raise ValueError(f"only 'in' takes a tuple; {flt.field!r} {flt.op} got {flt.value!r}")
    elif flt.value is None and flt.op in _ORDERING_OPS:
        raise ValueError(f"{flt.field!r} {flt.op} None: null has no order, use == or !=")
    else:
        values = (flt.value,)
    for value in values:
        if value is not None and not isinstance(value, str | int | float):
            raise ValueError(f"filter value for {flt.field!r} must be a JSON scalar, not {value!r}")


def check_limit(limit: int | None) -> None:
    """``ValueError`` unless ``limit`` is None or a positive int."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"query limit must be a positive int or None, not {limit!r}")


def sort_keys(container: str, query: Query) -> tuple[SortKey, ...]:
    """The total order of ``query``: its ``order_by``, then ``id`` and the partition key as tie-breaks.

    The tie-breaks take the direction of the last sort key, so a descending query is the exact reverse of the
    ascending one (and Cosmos serves both from a single composite index).
    """
    for path, direction in query.order_by:
        field_segments(path)
        if direction not in ("asc", "desc"):
            raise ValueError(f"sort direction of {path!r} must be 'asc' or 'desc', not {direction!r}")
    direction = query.order_by[-1][1] if query.order_by else "asc"
    named = {path for path, _ in query.order_by}
    ties = tuple((path, direction) for path in ("id", partition_key_field(container)) if path not in named)
    return (*query.order_by, *ties)


def encode_continuation(container: str, query: Query, after: Sequence[Any]) -> str:
    """An opaque token for the page after the item whose sort-key values are ``after``."""
    state = {"q": _fingerprint(container, query), "after": list(after)}
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode("ascii").rstrip("=")


def decode_continuation(container: str, query: Query) -> list[Any] | None:
    """The sort-key values ``query.continuation`` resumes after (None on a first page).

    ``ValueError`` if the token is malformed or was issued for a different query, rather than a silently wrong page.
    """
    token = query.continuation
    if token is None:
        return None
    try:
        state = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:  # binascii.Error and orjson.JSONDecodeError are both ValueErrors
        raise ValueError("malformed continuation token") from None
    after = state.get("after") if isinstance(state, dict) else None
    if (
        not isinstance(after, list)
        or state.get("q") != _fingerprint(container, query)
        or len(after) != len(sort_keys(container, query))
    ):
        raise ValueError("continuation token does not belong to this query")
    return after


def _fingerprint(container: str, query: Query) -> str:
    shape = [container, [[f.field, f.op, f.value] for f in query.filters], query.partition_key, query.order_by]
    return hashlib.sha256(orjson.dumps(shape)).hexdigest()[:16]
