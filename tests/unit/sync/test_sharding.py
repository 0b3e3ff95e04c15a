"""Sharding: the documents a decided page writes — shards, links, conflicts — known answers per situation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from castiel.models import ConflictStrategy, DedupStrategy, ExternalIdLink, Shard, format_utc
from castiel.ports import BatchOperation
from castiel.sync.conflicts import ConflictSettings
from castiel.sync.dedup import DedupContext, RecordAction, decide, link_id, shard_id
from castiel.sync.mapping import MappedRecord, compile_mappings
from castiel.sync.sharding import PageWrites, build_page
from tests.unit.sync.records import T0, Rec

NOW = datetime(2026, 3, 2, tzinfo=UTC)
MAPPING = compile_mappings(
    {
        "Account": {
            "shardType": "account",
            "fields": {"Name": "name"},
            "derived": [{"path": "Contacts.records", "entityType": "Contact", "relationship": "account"}],
            "relationships": [{"path": "ParentId", "entityType": "Account", "type": "parent"}],
            "keys": [["name"]],
        },
        "Contact": {"shardType": "contact", "fields": {"Email": "email", "LastName": "name"}},
    },
    {"Account": "account", "Contact": "contact"},
)
CTX = DedupContext("t1", "sf", DedupStrategy.EXTERNAL_ID, MAPPING)
LOCAL_WINS = ConflictSettings(ConflictStrategy.LOCAL_WINS)


def mapped(entity_type: str, external_id: str, deleted: bool = False, **data: Any) -> list[MappedRecord]:
    return MAPPING.map_record(Rec(entity_type, external_id, data, T0, deleted))


def page(
    items: list[MappedRecord],
    links: dict[str, dict[str, Any]] | None = None,
    shards: list[dict[str, Any]] | None = None,
    settings: ConflictSettings = LOCAL_WINS,
    ctx: DedupContext = CTX,
    retention: timedelta | None = None,
) -> PageWrites:
    decisions = decide(items, links or {}, shards or [], ctx)
    return build_page(decisions, links or {}, ctx, settings, NOW, retention=retention)


def docs(operations: list[BatchOperation]) -> list[dict[str, Any]]:
    return [dict(operation.doc or {}) for operation in operations]


def stored(write: PageWrites, etag: str = "e1") -> dict[str, Any]:
    """The first shard a page wrote, as the store would return it."""
    return {**docs(write.shards)[0], "_etag": etag, "_ts": 1}


def stored_link(write: PageWrites, etag: str = "l1") -> dict[str, dict[str, Any]]:
    return {doc["id"]: {**doc, "_etag": etag} for doc in docs(write.links)}


ACME = shard_id("t1", "sf", "Account", "001")


def test_a_new_record_writes_a_shard_and_its_link_in_the_stored_shapes() -> None:
    write = page(mapped("Account", "001", Name="Acme"))

    [shard], [link] = docs(write.shards), docs(write.links)
    assert [op.kind for op in write.shards + write.links] == ["create", "create"]
    assert Shard.model_validate(shard).to_doc() == shard
    assert ExternalIdLink.model_validate(link).to_doc() == link
    assert shard == {
        "id": ACME,
        "tenantId": "t1",
        "shardType": "account",
        "data": {"name": "Acme"},
        "fieldVersions": {"name": format_utc(T0)},
        "fieldSources": {"name": "sf"},
        "externalIds": {"sf": "001"},
        "sync": {
            "sf": {
                "entityType": "Account",
                "pulledFingerprint": shard["sync"]["sf"]["pulledFingerprint"],
                "pulledAt": format_utc(NOW),
                "snapshot": {"name": "Acme"},
                "deleted": False,
            }
        },
        "relationships": [],
        "updatedAt": format_utc(NOW),
        "deleted": False,
        "matchKeys": {"name": "acme"},
        "matchBlocks": {"name": "ac"},
        "contentHash": shard["sync"]["sf"]["pulledFingerprint"],
    }
    assert (link["shardId"], link["fingerprint"], link["deleted"]) == (ACME, shard["contentHash"], False)
    assert (write.counts.created, write.conflicts) == (1, [])


def test_derived_records_point_at_their_parent_and_references_resolve_through_the_page() -> None:
    parent_link = {
        "id": link_id("sf", "Account", "000"),
        "entityType": "Account",
        "externalId": "000",
        "shardId": "holding-shard",
    }
    contacts = {"records": [{"Id": "003", "Email": "ada@acme.test"}]}
    items = mapped("Account", "001", Name="Acme", ParentId="000", Contacts=contacts)
    items += mapped("Account", "002", Name="Beta", ParentId="999")

    write = page(items, {parent_link["id"]: parent_link})

    acme, ada, beta = docs(write.shards)
    assert acme["relationships"] == [
        {
            "type": "parent",
            "shardId": "holding-shard",
            "connectionId": "sf",
            "entityType": "Account",
            "externalId": "000",
        }
    ]
    assert (ada["derivedFrom"], ada["shardType"]) == (ACME, "contact")
    assert [(r["type"], r["shardId"]) for r in ada["relationships"]] == [("account", ACME)]
    assert beta["relationships"][0]["shardId"] == shard_id("t1", "sf", "Account", "999")  # created when it arrives


def test_an_update_merges_into_the_stored_shard_under_its_etag() -> None:
    first = page(mapped("Account", "001", Name="Acme"))
    later = mapped("Account", "001", Name="Acme Corp")

    write = page(later, stored_link(first), [stored(first)])

    [shard], [link] = write.shards, write.links
    assert (shard.kind, shard.if_match, link.kind, link.if_match) == ("replace", "e1", "replace", "l1")
    doc = dict(shard.doc or {})
    assert doc["data"] == {"name": "Acme Corp"}
    assert doc["sync"]["sf"]["snapshot"] == {"name": "Acme Corp"}
    assert doc["matchKeys"] == {"name": "acme corp"}
    assert "_etag" not in doc
    assert write.outcomes[0].changed == {"name": "Acme Corp"}
    assert (write.counts.updated, write.counts.unchanged) == (1, 0)


def test_a_concurrent_edit_records_its_conflicts_and_keeps_local_under_local_wins() -> None:
    first = page(mapped("Account", "001", Name="Acme"))
    shard = stored(first)
    shard["data"] = {"name": "Acme (local edit)"}
    shard["fieldSources"] = {"name": "local"}

    write = page(mapped("Account", "001", Name="Acme Corp"), stored_link(first), [shard])

    [conflict] = docs(write.conflicts)
    assert (conflict["field"], conflict["localValue"], conflict["remoteValue"]) == (
        "name",
        "Acme (local edit)",
        "Acme Corp",
    )
    assert (conflict["rule"], conflict["kept"], conflict["status"]) == ("local_wins", "local", "resolved")
    assert docs(write.shards)[0]["data"] == {"name": "Acme (local edit)"}
    assert (write.counts.conflicts, write.counts.unchanged, write.outcomes[0].action) == (1, 1, RecordAction.UNCHANGED)


def test_a_deletion_tombstones_link_and_shard_when_no_other_connection_holds_it() -> None:
    first = page(mapped("Account", "001", Name="Acme"))

    write = page(
        mapped("Account", "001", deleted=True), stored_link(first), [stored(first)], retention=timedelta(days=30)
    )

    shard, link = docs(write.shards)[0], docs(write.links)[0]
    assert (shard["deleted"], shard["deletedAt"], shard["ttl"]) == (True, format_utc(NOW), 30 * 86400)
    assert shard["sync"]["sf"]["deleted"] is True
    assert shard["data"] == {"name": "Acme"}  # kept for the retention period
    assert (link["deleted"], link["ttl"]) == (True, 30 * 86400)
    assert write.counts.deleted == 1


def test_a_deletion_keeps_the_shard_another_connection_still_holds() -> None:
    first = page(mapped("Account", "001", Name="Acme"))
    shard = stored(first)
    shard["externalIds"]["hub"] = "h1"
    shard["sync"]["hub"] = {"entityType": "company", "snapshot": {"name": "Acme"}}

    write = page(mapped("Account", "001", deleted=True), stored_link(first), [shard])

    doc = docs(write.shards)[0]
    assert (doc["deleted"], doc["sync"]["sf"]["deleted"], "ttl" in doc) == (False, True, False)
    assert docs(write.links)[0]["deleted"] is True


def test_a_record_that_comes_back_revives_its_tombstone() -> None:
    first = page(mapped("Account", "001", Name="Acme"))
    gone = page(
        mapped("Account", "001", deleted=True), stored_link(first), [stored(first)], retention=timedelta(days=1)
    )

    write = page(mapped("Account", "001", Name="Acme"), stored_link(gone), [stored(gone)])

    shard, link = docs(write.shards)[0], docs(write.links)[0]
    assert (shard["deleted"], "deletedAt" in shard, "ttl" in shard) == (False, False, False)
    assert (shard["sync"]["sf"]["deleted"], "deletedAt" in shard["sync"]["sf"]) == (False, False)
    assert (link["deleted"], "ttl" in link, "deletedAt" in link) == (False, False, False)
    assert write.outcomes[0].action is RecordAction.UPDATE


def test_a_shard_matched_by_its_natural_key_gains_this_connection_and_counts_as_a_duplicate() -> None:
    hub = DedupContext("t1", "hub", DedupStrategy.COMPOSITE_KEY, MAPPING)
    first = page(mapped("Account", "001", Name="Acme"))  # made by the sf connection

    write = page(mapped("Account", "h-77", Name=" ACME "), {}, [stored(first)], ctx=hub)

    shard = docs(write.shards)[0]
    assert shard["id"] == ACME
    assert shard["externalIds"] == {"sf": "001", "hub": "h-77"}
    assert sorted(shard["sync"]) == ["hub", "sf"]
    assert (write.links[0].kind, docs(write.links)[0]["shardId"]) == ("create", ACME)
    assert write.counts.duplicates == 1


def test_relationships_of_other_connections_are_kept() -> None:
    first = page(mapped("Account", "001", Name="Acme", ParentId="000"))
    shard = stored(first)
    shard["relationships"].append({"type": "owner", "shardId": "u1", "connectionId": "hub"})

    write = page(mapped("Account", "001", Name="Acme", ParentId="005"), stored_link(first), [shard])

    assert [(r["connectionId"], r["type"], r.get("externalId")) for r in docs(write.shards)[0]["relationships"]] == [
        ("hub", "owner", None),
        ("sf", "parent", "005"),
    ]


def test_unchanged_and_ignored_records_write_nothing() -> None:
    first = page(mapped("Account", "001", Name="Acme"))

    write = page(mapped("Account", "001", Name="Acme") + mapped("Account", "404", deleted=True), stored_link(first))

    assert (write.shards, write.links, write.conflicts) == ([], [], [])
    assert [outcome.action for outcome in write.outcomes] == [RecordAction.UNCHANGED, RecordAction.IGNORE]
    assert write.counts.unchanged == 2
