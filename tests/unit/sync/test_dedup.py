"""Dedup, one table per strategy: what each record of a page does given its link and the shards found for it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from castiel.models import DedupStrategy, DuplicateCandidate
from castiel.ports import Filter, Query
from castiel.sync.dedup import (
    MAX_CANDIDATES,
    DedupContext,
    RecordAction,
    block,
    decide,
    duplicate_candidates,
    fold_page,
    link_id,
    link_ids,
    match_keys,
    match_queries,
    shard_id,
    shard_ids,
)
from castiel.sync.mapping import MappedRecord, compile_mappings
from tests.unit.sync.records import T0, Rec

MAPPING = compile_mappings(
    {
        "Contact": {
            "shardType": "contact",
            "fields": {"Email": "email", "Name": "name", "Company": "company", "AccountId": "accountId"},
            "relationships": [{"path": "AccountId", "entityType": "Account", "type": "account"}],
            "keys": [["email"], ["name", "company"]],
        }
    },
    {"Contact": "contact", "Account": "account"},
)


def contact(external_id: str, updated_at: datetime | None = T0, deleted: bool = False, **data: Any) -> MappedRecord:
    [mapped] = MAPPING.map_record(Rec("Contact", external_id, data, updated_at, deleted))
    return mapped


def ctx(strategy: DedupStrategy = DedupStrategy.EXTERNAL_ID, tenant: str = "t1") -> DedupContext:
    return DedupContext(tenant, "sf", strategy, MAPPING, fuzzy_threshold=90)


def link(record: MappedRecord, shard: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": link_id("sf", record.entity_type, record.external_id),
        "tenantId": "t1",
        "shardId": shard,
        "fingerprint": "older",
        **extra,
    }


def shard(shard_id_: str, **extra: Any) -> dict[str, Any]:
    return {"id": shard_id_, "tenantId": "t1", "shardType": "contact", "deleted": False, "data": {}, **extra}


def links_of(*docs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {doc["id"]: doc for doc in docs}


# ---------------------------------------------------------------- the page


def test_a_page_folds_to_the_latest_version_of_each_record() -> None:
    old = contact("c1", T0, Name="old")
    new = contact("c1", T0 + timedelta(seconds=1), Name="new")
    undated = contact("c1", None, Name="undated")
    other = contact("c2", Name="other")

    kept, folded = fold_page([old, other, new, undated])

    assert kept == [new, other]
    assert folded == 2


def test_a_tie_goes_to_a_deletion_then_to_the_greater_fingerprint() -> None:
    a, b = contact("c1", Name="a"), contact("c1", Name="b")
    gone = contact("c1", deleted=True)
    winner = max(a, b, key=lambda item: item.fingerprint)

    assert fold_page([a, b])[0] == [winner] == fold_page([b, a])[0]
    assert fold_page([a, gone, b])[0] == [gone]


@given(st.permutations([contact(f"c{n % 3}", T0 + timedelta(seconds=n % 2), Name=str(n)) for n in range(8)]))
def test_folding_does_not_depend_on_page_order(page: list[MappedRecord]) -> None:
    kept, folded = fold_page(page)

    assert sorted(kept, key=lambda item: item.external_id) == sorted(
        fold_page(sorted(page, key=lambda item: item.fields["name"]))[0], key=lambda item: item.external_id
    )
    assert folded == 5


def test_a_page_reads_its_links_and_the_links_of_what_it_references_once() -> None:
    page = [contact("c1", AccountId="001"), contact("c2", AccountId="001")]

    assert link_ids(page, ctx()) == [
        link_id("sf", "Contact", "c1"),
        link_id("sf", "Contact", "c2"),
        link_id("sf", "Account", "001"),
    ]


def test_shard_ids_are_deterministic_and_differ_per_tenant() -> None:
    assert shard_id("t1", "sf", "Contact", "c1") == shard_id("t1", "sf", "Contact", "c1")
    assert shard_id("t1", "sf", "Contact", "c1") != shard_id("t2", "sf", "Contact", "c1")


# ---------------------------------------------------------------- external_id (and what every strategy shares)

ADA = contact("c1", Email="ada@example.com", Name="Ada")
OWN = shard_id("t1", "sf", "Contact", "c1")

EXTERNAL_ID_CASES = [
    pytest.param(ADA, [], [], RecordAction.CREATE, OWN, None, False, id="new-record-creates-its-own-id"),
    pytest.param(ADA, [link(ADA, "s1")], [shard("s1")], RecordAction.UPDATE, "s1", "link", False, id="changed-record"),
    pytest.param(
        ADA,
        [link(ADA, "s1", fingerprint=ADA.fingerprint)],
        [],
        RecordAction.UNCHANGED,
        "s1",
        "link",
        False,
        id="unchanged",
    ),
    pytest.param(
        ADA,
        [link(ADA, "s1", pushedFingerprint=ADA.push_fingerprint)],
        [],
        RecordAction.UNCHANGED,
        "s1",
        "link",
        True,
        id="our-own-push-coming-back",
    ),
    pytest.param(ADA, [link(ADA, "s1")], [], RecordAction.CREATE, "s1", "link", False, id="link-to-a-vanished-shard"),
    pytest.param(ADA, [], [shard(OWN)], RecordAction.UPDATE, OWN, "recovered", False, id="shard-written-link-not-yet"),
    pytest.param(
        ADA,
        [link(ADA, "s1", fingerprint=ADA.fingerprint, deleted=True)],
        [shard("s1", deleted=True)],
        RecordAction.UPDATE,
        "s1",
        "link",
        False,
        id="deleted-record-comes-back",
    ),
    pytest.param(
        ADA,
        [link(ADA, "s1", deleted=True, deletedHash=ADA.content_hash)],
        [shard("s1", deleted=True)],
        RecordAction.UNCHANGED,
        "s1",
        "link",
        True,
        id="what-our-delete-left-reported-back",
    ),
    pytest.param(
        ADA,
        [link(ADA, "s1", deleted=True, deletedHash="what our delete left")],
        [shard("s1", deleted=True)],
        RecordAction.UPDATE,
        "s1",
        "link",
        False,
        id="changed-after-our-delete",
    ),
    pytest.param(
        contact("c1", deleted=True), [link(ADA, "s1")], [shard("s1")], RecordAction.DELETE, "s1", "link", False
    ),
    pytest.param(contact("c1", deleted=True), [], [], RecordAction.IGNORE, OWN, None, False, id="delete-of-unknown"),
    pytest.param(
        contact("c1", deleted=True),
        [link(ADA, "s1", deleted=True)],
        [shard("s1")],
        RecordAction.IGNORE,
        "s1",
        "link",
        False,
        id="delete-again",
    ),
]


@pytest.mark.parametrize(("record", "links", "shards", "action", "target", "matched_by", "echo"), EXTERNAL_ID_CASES)
def test_external_id(
    record: MappedRecord,
    links: list[dict[str, Any]],
    shards: list[dict[str, Any]],
    action: RecordAction,
    target: str,
    matched_by: str | None,
    echo: bool,
) -> None:
    [decision] = decide([record], links_of(*links), shards, ctx())

    assert (decision.action, decision.shard_id, decision.matched_by, decision.echo) == (
        action,
        target,
        matched_by,
        echo,
    )
    if action in (RecordAction.UPDATE, RecordAction.DELETE):
        assert decision.shard == next(doc for doc in shards if doc["id"] == target)


def test_only_changed_linked_records_and_unlinked_new_ones_need_their_shard_read() -> None:
    same, changed, new, gone = ADA, contact("c2", Name="B"), contact("c3"), contact("c4", deleted=True)
    links = links_of(link(same, "s1", fingerprint=same.fingerprint), link(changed, "s2"))

    assert shard_ids([same, changed, new, gone], links, ctx()) == ["s2", shard_id("t1", "sf", "Contact", "c3")]
    assert match_queries([same, changed, new], links, ctx()) == []


# ---------------------------------------------------------------- composite_key


def test_natural_keys_fold_case_and_whitespace_and_need_every_field() -> None:
    keys = (("email",), ("name", "company"))

    assert match_keys({"email": "  Ada@Example.COM ", "name": "Ada  Lovelace", "company": "ACME"}, keys) == {
        "email": "ada@example.com",
        "name__company": "ada lovelace\x1facme",
    }
    assert match_keys({"email": "", "name": "Ada", "company": None}, keys) == {}


def test_composite_key_queries_the_shards_holding_the_page_s_keys() -> None:
    page = [contact("c5", Email="A@x.io"), contact("c2", Name="Bo", Company="Co"), ADA]
    linked = links_of(link(ADA, "s1"))

    assert match_queries(page, linked, ctx(DedupStrategy.COMPOSITE_KEY)) == [
        Query((Filter("shardType", "==", "contact"), Filter("deleted", "==", False),
               Filter("matchKeys.email", "in", ("a@x.io",))), partition_key="t1"),
        Query((Filter("shardType", "==", "contact"), Filter("deleted", "==", False),
               Filter("matchKeys.name__company", "in", ("bo\x1fco",))), partition_key="t1"),
    ]  # fmt: skip


HUBSPOTS = shard("hub-1", matchKeys={"email": "ada@example.com"}, externalIds={"hubspot": "h1"})

COMPOSITE_CASES = [
    pytest.param([contact("c1", Email=" ADA@example.com")], [HUBSPOTS], ["hub-1"], id="match-another-connection-s"),
    pytest.param(
        [contact("c1", Name="Ada", Company="Acme")],
        [shard("hub-2", matchKeys={"name__company": "ada\x1facme"})],
        ["hub-2"],
        id="name-and-company",
    ),
    pytest.param([contact("c1", Email="bob@example.com")], [HUBSPOTS], [OWN], id="no-match"),
    pytest.param(
        [contact("c1", Email="ada@example.com")],
        [shard("s9", matchKeys={"email": "ada@example.com"}, externalIds={"sf": "c7"})],
        [OWN],
        id="held-by-another-record-of-this-connection",
    ),
    pytest.param(
        [contact("c1", Email="ada@example.com"), contact("c2", Email="ada@example.com")],
        [HUBSPOTS],
        ["hub-1", shard_id("t1", "sf", "Contact", "c2")],
        id="one-shard-one-claim",
    ),
    pytest.param(
        [contact("c1", Email="ada@example.com")],
        [{**HUBSPOTS, "deleted": True}],
        [OWN],
        id="tombstones-never-match",
    ),
]


@pytest.mark.parametrize(("page", "found", "targets"), COMPOSITE_CASES)
def test_composite_key(page: list[MappedRecord], found: list[dict[str, Any]], targets: list[str]) -> None:
    decisions = decide(page, {}, found, ctx(DedupStrategy.COMPOSITE_KEY))

    assert [decision.shard_id for decision in decisions] == targets
    for decision in decisions:
        matched = decision.shard_id != shard_id("t1", "sf", "Contact", decision.record.external_id)
        assert (decision.action, decision.matched_by) == (
            (RecordAction.UPDATE, "composite_key") if matched else (RecordAction.CREATE, None)
        )


def test_external_id_never_matches_by_key() -> None:
    [decision] = decide([contact("c1", Email="ada@example.com")], {}, [HUBSPOTS], ctx())

    assert (decision.action, decision.shard_id) == (RecordAction.CREATE, OWN)


# ---------------------------------------------------------------- content_hash


def test_content_hash_matches_a_shard_whose_data_is_exactly_the_record() -> None:
    record = contact("c1", Email="ada@example.com", Name="Ada")
    same = shard("hub-1", contentHash=record.content_hash)
    differs = shard("hub-2", contentHash=contact("x", Email="ada@example.com").content_hash)
    strategy = ctx(DedupStrategy.CONTENT_HASH)

    [query] = match_queries([record], {}, strategy)
    [matched] = decide([record], {}, [differs, same], strategy)
    [missed] = decide([record], {}, [differs], strategy)

    assert query.filters[-1] == Filter("contentHash", "in", (record.content_hash,))
    assert (matched.action, matched.shard_id, matched.matched_by) == (RecordAction.UPDATE, "hub-1", "content_hash")
    assert (missed.action, missed.shard_id) == (RecordAction.CREATE, OWN)


# ---------------------------------------------------------------- fuzzy

FUZZY_FOUND = [
    shard("hub-1", matchKeys={"name__company": "john smith\x1facme"}),
    shard("hub-2", matchKeys={"name__company": "jane smith\x1facme"}),
    shard("hub-3", matchKeys={"name__company": "jon smith\x1fglobex"}),
    shard("hub-4", matchKeys={"name__company": "jon smith\x1facme"}, deleted=True),
]

FUZZY_CASES = [
    pytest.param([contact("c1", Name="Jon Smith", Company="Acme")], [("hub-1", 96.55)], id="typo-in-a-name"),
    pytest.param([contact("c1", Name="Jane Smyth", Company="Acme Inc")], [], id="below-threshold"),
    pytest.param([contact("c1", Name="Bob Stone", Company="Acme")], [], id="another-block"),
    pytest.param([contact("c1", Name="Jon Smith", Company="Globex")], [("hub-3", 100.0)], id="same-key-exactly"),
    pytest.param(
        [contact("c1", Name="Bob Stone", Company="Initech"), contact("c2", Name="Bob Stone", Company="Initech.")],
        [("c1", 97.14)],
        id="two-new-records-of-one-page",
    ),
]


@pytest.mark.parametrize(("page", "expected"), FUZZY_CASES)
def test_fuzzy_reports_candidates_and_never_merges(page: list[MappedRecord], expected: list[tuple[str, float]]) -> None:
    strategy = ctx(DedupStrategy.FUZZY)

    decisions = decide(page, {}, FUZZY_FOUND, strategy)
    candidates = [
        DuplicateCandidate.model_validate(doc) for doc in duplicate_candidates(decisions, FUZZY_FOUND, strategy, T0)
    ]

    assert all(decision.action is RecordAction.CREATE for decision in decisions)
    own = {shard_id("t1", "sf", "Contact", item.external_id): item.external_id for item in page}
    assert [(own.get(c.candidate_shard_id, c.candidate_shard_id), c.score) for c in candidates] == expected
    for candidate in candidates:
        assert (candidate.status, candidate.shard_type, candidate.connection_id) == ("open", "contact", "sf")


def test_fuzzy_keeps_the_best_few_candidates_per_record_each_pair_once() -> None:
    # Ten alike existing shards and a page of ten alike records: every pair scores over the threshold.
    found = [shard(f"hub-{n}", matchKeys={"name__company": f"bob stone{n}\x1finitech"}) for n in range(10)]
    page = [contact(f"c{n}", Name=f"Bob Stone{n}", Company="Initech") for n in range(10)]
    strategy = ctx(DedupStrategy.FUZZY)

    decisions = decide(page, {}, found, strategy)
    docs = duplicate_candidates(decisions, found, strategy, T0)
    candidates = [DuplicateCandidate.model_validate(doc) for doc in docs]

    assert len(candidates) == MAX_CANDIDATES * len(page)
    assert len({c.id for c in candidates}) == len(candidates)
    for decision, item in zip(decisions, page, strict=True):
        mine = [c for c in candidates if c.shard_id == decision.shard_id]
        assert [c.score for c in mine] == sorted((c.score for c in mine), reverse=True)
        n = item.external_id[1:]
        assert mine[0].candidate_shard_id == f"hub-{n}"  # its exact twin first
        assert mine[0].score == 100.0


def test_fuzzy_queries_the_blocks_of_the_page_s_keys() -> None:
    page = [contact("c1", Name="Jon Smith", Company="Acme", Email="jon@acme.io")]

    queries = match_queries(page, {}, ctx(DedupStrategy.FUZZY))

    assert [query.filters[-1] for query in queries] == [
        Filter("matchBlocks.email", "in", ("ja",)),
        Filter("matchBlocks.name__company", "in", ("js",)),
    ]
    assert block("ada lovelace\x1facme") == "al"
    assert block("ada") == "ad"


def test_a_candidate_pair_is_reported_once_with_a_deterministic_id() -> None:
    strategy = ctx(DedupStrategy.FUZZY)
    page = [contact("c1", Name="Jon Smith", Company="Acme", Email="john@acme.io")]
    found = [shard("hub-1", matchKeys={"name__company": "john smith\x1facme", "email": "john@acme.io"})]

    first = duplicate_candidates(decide(page, {}, found, strategy), found, strategy, T0)
    again = duplicate_candidates(decide(page, {}, found, strategy), found, strategy, T0)

    assert len(first) == 1
    assert first[0]["key"] == "email"  # the better of the two keys
    assert first == again
