"""Dedup — four strategies, pure: which shard each mapped record of a page belongs to, decided for the page at once.

Every strategy first knows a record by its link (``external-ids``: connection, entity type, external id → shard):
a linked record whose fingerprint is the one last pulled is ``unchanged`` and its shard is not even read; one whose
push fingerprint is the one last pushed is our own write coming back (``echo``), as is a record of a deleted link
whose content is what our delete left (``deletedHash``: GitHub keeps the issue a delete closed). A record without a
link:

- ``external_id``: creates its shard.
- ``content_hash``: is the shard of its type whose ``data`` is exactly its mapped fields (``contentHash``), if any.
- ``composite_key``: is the shard of its type with the same normalised natural key (``matchKeys``: e-mail or
  name + company, case and whitespace folded) that no other record of this connection holds, if any.
- ``fuzzy``: creates its shard, and ``duplicate_candidates`` reports the shards whose key is similar (rapidfuzz
  ``token_sort_ratio`` ≥ the connection's threshold) for a person to review: existing shards, and the shards of
  the page's earlier new records — a page's bounds are arbitrary, so two alike records are reported whether they
  came in one page or two. Each pair once, the best ``MAX_CANDIDATES`` per record. Never merged.

A page is decided in four pure steps around three batched store calls, never a query per record::

    kept, folded = fold_page(items)                 # duplicates inside the page: last updatedAt wins
    links = read_many("external-ids", link_ids(kept, ctx))
    found = [query("shards", q) for q in match_queries(kept, links, ctx)]   # none for external_id
    shards = read_many("shards", shard_ids(kept, links, ctx))
    decisions = decide(kept, links, shards + found, ctx)

The shard id a record creates is deterministic (``sharding.shard_id``), so a redelivered page finds the shard its
first attempt wrote even when the link was not written yet.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal

from rapidfuzz import fuzz

from castiel.models import ConflictStatus, DedupStrategy, DuplicateCandidate, ExternalIdLink, stable_id
from castiel.ports import Filter, Query
from castiel.sync.canonical import canonical_bytes
from castiel.sync.mapping import ConnectionMapping, MappedRecord

_WORDS = re.compile(r"\w+")
_ID_CACHE = 8192  # a page asks for each id several times (reads, decisions, writes): hash it once
_NO_TIME = datetime.min.replace(tzinfo=UTC)

MAX_CANDIDATES = 3
"""Duplicate candidates recorded per new record at most, the best scores first: a person reviews a few likely
matches, not every shard of a block (e-mails of one domain all score alike)."""


class RecordAction(StrEnum):
    """What a pulled record does to the hub: dedup's decision, then what sharding made of it."""

    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    DELETE = "delete"
    IGNORE = "ignore"
    """A deletion of a record never synced here: nothing to do."""


MatchedBy = Literal["link", "recovered", "content_hash", "composite_key"]


@dataclass(frozen=True, slots=True)
class DedupContext:
    """What dedup needs to know of the connection a page came from."""

    tenant_id: str
    connection_id: str
    strategy: DedupStrategy
    mapping: ConnectionMapping
    fuzzy_threshold: float = 90.0


@dataclass(frozen=True, slots=True)
class Decision:
    """What a record does: ``shard_id`` it lands in, the shard as stored (None for a new one) and its link.

    ``matched_by`` says how an existing shard was found (``content_hash``/``composite_key`` count as duplicates:
    another record made the shard); ``echo`` marks a record equal to what we last pushed to this connection.
    """

    record: MappedRecord
    action: RecordAction
    shard_id: str
    shard: dict[str, Any] | None = None
    link: dict[str, Any] | None = None
    matched_by: MatchedBy | None = None
    echo: bool = False


@lru_cache(maxsize=_ID_CACHE)
def shard_id(tenant_id: str, connection_id: str, entity_type: str, external_id: str) -> str:
    """The id of the shard a record creates: the same record always gets the same id, and each tenant its own."""
    return stable_id("shard", tenant_id, connection_id, entity_type, external_id)


@lru_cache(maxsize=_ID_CACHE)
def link_id(connection_id: str, entity_type: str, external_id: str) -> str:
    """The id of the ``external-ids`` link of a record."""
    return ExternalIdLink.make_id(connection_id, entity_type, external_id)


# ---------------------------------------------------------------- the page


def fold_page(items: Sequence[MappedRecord]) -> tuple[list[MappedRecord], int]:
    """One record per (entity type, external id): the latest ``updated_at`` (unknown counts as oldest); on a tie a
    deletion, then the greater fingerprint, so the winner never depends on page order. Returns the kept records, in
    the order each was first seen, and how many were folded away."""
    kept: dict[tuple[str, str], MappedRecord] = {}
    for item in items:
        key = (item.entity_type, item.external_id)
        current = kept.get(key)
        if current is None or _rank(item) > _rank(current):
            kept[key] = item
    return list(kept.values()), len(items) - len(kept)


def _rank(item: MappedRecord) -> tuple[datetime, bool, str]:
    return (item.updated_at or _NO_TIME, item.deleted, item.fingerprint)


def link_ids(items: Sequence[MappedRecord], ctx: DedupContext) -> list[str]:
    """The ``external-ids`` a page needs: each record's link and the links of the records it references."""
    wanted = {link_id(ctx.connection_id, item.entity_type, item.external_id): None for item in items}
    for item in items:
        for reference in item.references:
            wanted[link_id(ctx.connection_id, reference.entity_type, reference.external_id)] = None
    return list(wanted)


def match_queries(
    items: Sequence[MappedRecord], links: Mapping[str, Mapping[str, Any]], ctx: DedupContext
) -> list[Query]:
    """``shards`` queries finding the existing shards that unlinked records may match: one per shard type and key
    (composite, fuzzy) or per shard type (content hash); none for ``external_id``."""
    values: dict[tuple[str, str], set[str]] = {}
    for item in _unlinked(items, links, ctx):
        if ctx.strategy is DedupStrategy.CONTENT_HASH:
            values.setdefault((item.shard_type, "contentHash"), set()).add(item.content_hash)
        elif ctx.strategy is DedupStrategy.COMPOSITE_KEY:
            for name, value in match_keys(item.fields, ctx.mapping.entity(item.entity_type).keys).items():
                values.setdefault((item.shard_type, f"matchKeys.{name}"), set()).add(value)
        elif ctx.strategy is DedupStrategy.FUZZY:
            for name, value in match_keys(item.fields, ctx.mapping.entity(item.entity_type).keys).items():
                values.setdefault((item.shard_type, f"matchBlocks.{name}"), set()).add(block(value))
    return [
        Query(
            filters=(
                Filter("shardType", "==", shard_type),
                Filter("deleted", "==", False),
                Filter(path, "in", tuple(sorted(wanted))),
            ),
            partition_key=ctx.tenant_id,
        )
        for (shard_type, path), wanted in sorted(values.items())
    ]


def shard_ids(items: Sequence[MappedRecord], links: Mapping[str, Mapping[str, Any]], ctx: DedupContext) -> list[str]:
    """The ``shards`` a page needs read: linked shards of records that changed, and the ids unlinked records would
    create (found when a first attempt wrote the shard but not its link)."""
    wanted: dict[str, None] = {}
    for item in items:
        link = links.get(link_id(ctx.connection_id, item.entity_type, item.external_id))
        if link is None:
            if not item.deleted:
                wanted[shard_id(ctx.tenant_id, ctx.connection_id, item.entity_type, item.external_id)] = None
        elif not _unchanged(item, link):
            wanted[link["shardId"]] = None
    return list(wanted)


def decide(
    items: Sequence[MappedRecord],
    links: Mapping[str, Mapping[str, Any]],
    shards: Iterable[Mapping[str, Any]],
    ctx: DedupContext,
) -> list[Decision]:
    """Each record's ``Decision``, given the page's links and every shard read or found for it."""
    by_id = {doc["id"]: dict(doc) for doc in shards}
    matcher = _Matcher(by_id, ctx)
    decisions = []
    for item in items:
        link_doc = links.get(link_id(ctx.connection_id, item.entity_type, item.external_id))
        link = None if link_doc is None else dict(link_doc)
        decisions.append(_decide(item, link, by_id, matcher, ctx))
    return decisions


def _decide(
    item: MappedRecord,
    link: dict[str, Any] | None,
    by_id: Mapping[str, dict[str, Any]],
    matcher: _Matcher,
    ctx: DedupContext,
) -> Decision:
    if link is not None:
        target = link["shardId"]
        if item.deleted:
            gone = link.get("deleted", False) or target not in by_id
            return Decision(
                item, RecordAction.IGNORE if gone else RecordAction.DELETE, target, by_id.get(target), link, "link"
            )
        if _unchanged(item, link):
            echo = item.fingerprint != link.get("fingerprint")
            return Decision(item, RecordAction.UNCHANGED, target, None, link, "link", echo)
        shard = by_id.get(target)
        return Decision(
            item, RecordAction.CREATE if shard is None else RecordAction.UPDATE, target, shard, link, "link"
        )
    own = shard_id(ctx.tenant_id, ctx.connection_id, item.entity_type, item.external_id)
    if item.deleted:
        return Decision(item, RecordAction.IGNORE, own)
    if own in by_id:
        return Decision(item, RecordAction.UPDATE, own, by_id[own], None, "recovered")
    matched = matcher.match(item)
    if matched is not None:
        return Decision(item, RecordAction.UPDATE, matched["id"], matched, None, _MATCHED_BY[ctx.strategy])
    return Decision(item, RecordAction.CREATE, own)


_MATCHED_BY: Mapping[DedupStrategy, MatchedBy] = {
    DedupStrategy.CONTENT_HASH: "content_hash",
    DedupStrategy.COMPOSITE_KEY: "composite_key",
}


def _unchanged(item: MappedRecord, link: Mapping[str, Any]) -> bool:
    """Nothing new from the connection: what we last pulled from it, or what we last pushed to it coming back (a
    delete included, on a provider that keeps the record)."""
    if item.deleted:
        return False
    if link.get("deleted", False):
        return item.content_hash == link.get("deletedHash")
    return item.fingerprint == link.get("fingerprint") or item.push_fingerprint == link.get("pushedFingerprint")


def _unlinked(
    items: Iterable[MappedRecord], links: Mapping[str, Mapping[str, Any]], ctx: DedupContext
) -> Iterable[MappedRecord]:
    for item in items:
        if not item.deleted and link_id(ctx.connection_id, item.entity_type, item.external_id) not in links:
            yield item


class _Matcher:
    """Finds the existing shard an unlinked record is (content hash, composite key), one record at a time, so that
    two records of the page never both claim one shard."""

    def __init__(self, shards: Mapping[str, dict[str, Any]], ctx: DedupContext) -> None:
        self._ctx = ctx
        self._claimed: set[str] = set()
        self._index: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        if ctx.strategy not in _MATCHED_BY:
            return
        for shard in sorted(shards.values(), key=lambda doc: str(doc["id"])):
            if shard.get("deleted"):
                continue
            entries = [("contentHash", shard.get("contentHash"))]
            entries += [(f"matchKeys.{name}", value) for name, value in (shard.get("matchKeys") or {}).items()]
            for path, value in entries:
                if value is not None:
                    self._index.setdefault((shard["shardType"], path, value), []).append(shard)

    def match(self, item: MappedRecord) -> dict[str, Any] | None:
        ctx = self._ctx
        if ctx.strategy is DedupStrategy.CONTENT_HASH:
            wanted = [(item.shard_type, "contentHash", item.content_hash)]
        elif ctx.strategy is DedupStrategy.COMPOSITE_KEY:
            keys = match_keys(item.fields, ctx.mapping.entity(item.entity_type).keys)
            wanted = [(item.shard_type, f"matchKeys.{name}", value) for name, value in keys.items()]
        else:
            return None
        for entry in wanted:
            for shard in self._index.get(entry, ()):
                held = (shard.get("externalIds") or {}).get(ctx.connection_id)
                if shard["id"] not in self._claimed and held in (None, item.external_id):
                    self._claimed.add(shard["id"])
                    return shard
        return None


# ---------------------------------------------------------------- natural keys and fuzzy candidates


def key_name(fields: Sequence[str]) -> str:
    """The name a natural key is stored under in ``matchKeys`` (``name__company``)."""
    return "__".join(fields)


def match_keys(fields: Mapping[str, Any], keys: Sequence[Sequence[str]]) -> dict[str, str]:
    """The normalised natural keys of shard ``fields``: for each key whose fields all have a value, the values
    case-folded (NFKC) with whitespace collapsed, joined by a unit separator."""
    found: dict[str, str] = {}
    for key in keys:
        parts = []
        for name in key:
            value = fields.get(name)
            if value is None or value == "":
                break
            text = value if isinstance(value, str) else canonical_bytes(value).decode()
            parts.append(" ".join(unicodedata.normalize("NFKC", text).casefold().split()))
        else:
            if all(parts):
                found[key_name(key)] = "\x1f".join(parts)
    return found


def block(value: str) -> str:
    """The fuzzy block of a normalised key: the initials of its first two words (of a single word, its first two
    letters). Candidates share a block, so a page compares against a few shards, not all; a typo in an initial is
    the rare one that a block misses."""
    words: list[str] = _WORDS.findall(value)
    if len(words) >= 2:
        return words[0][0] + words[1][0]
    return (words[0] if words else value)[:2]


def match_blocks(keys: Mapping[str, str]) -> dict[str, str]:
    """``matchBlocks`` of a shard with these ``match_keys``."""
    return {name: block(value) for name, value in keys.items()}


def duplicate_candidates(
    decisions: Sequence[Decision], found: Iterable[Mapping[str, Any]], ctx: DedupContext, detected_at: datetime
) -> list[dict[str, Any]]:
    """``fuzzy``: a ``DuplicateCandidate`` document for each record that creates a shard and each shard (found by
    ``match_queries``, or created earlier in the same page) whose key is similar: each pair once, by its best key;
    at most ``MAX_CANDIDATES`` per record, the best scores first (ties by shard id)."""
    pool: list[tuple[str, str, dict[str, str]]] = [
        (doc["id"], doc["shardType"], dict(doc.get("matchKeys") or {})) for doc in found if not doc.get("deleted")
    ]
    docs: list[dict[str, Any]] = []
    for decision in decisions:
        if decision.action is not RecordAction.CREATE:
            continue
        item = decision.record
        keys = match_keys(item.fields, ctx.mapping.entity(item.entity_type).keys)
        best: dict[str, tuple[float, str, str, str]] = {}
        for other_id, other_type, other_keys in pool:
            if other_type != item.shard_type or other_id == decision.shard_id:
                continue
            for name, value in keys.items():
                other = other_keys.get(name)
                if other is None or block(other) != block(value):
                    continue
                score = fuzz.token_sort_ratio(value.replace("\x1f", " "), other.replace("\x1f", " "))
                if score >= ctx.fuzzy_threshold and (other_id not in best or score > best[other_id][0]):
                    best[other_id] = (score, name, value, other)
        ranked = sorted(best.items(), key=lambda entry: (-entry[1][0], entry[0]))[:MAX_CANDIDATES]
        docs += [_candidate(decision, other_id, *found_by, ctx, detected_at) for other_id, found_by in ranked]
        pool.append((decision.shard_id, item.shard_type, keys))
    return docs


def _candidate(
    decision: Decision,
    other_id: str,
    score: float,
    key: str,
    value: str,
    other: str,
    ctx: DedupContext,
    detected_at: datetime,
) -> dict[str, Any]:
    # The id is the unordered pair's: a redone page, or the pair met from either side, writes one document.
    pair = sorted((decision.shard_id, other_id))
    return DuplicateCandidate(
        id=stable_id("duplicate", ctx.tenant_id, *pair),
        tenant_id=ctx.tenant_id,
        status=ConflictStatus.OPEN,
        shard_id=decision.shard_id,
        candidate_shard_id=other_id,
        shard_type=decision.record.shard_type,
        connection_id=ctx.connection_id,
        key=key,
        value=value,
        candidate_value=other,
        score=round(score, 2),
        detected_at=detected_at,
    ).to_doc()
