"""Fuzzy dedup against the sandbox: two Salesforce connections with one Contact mapping keyed on e-mail, the second
``fuzzy``. Its records create their own shards, and each is reported with at most ``MAX_CANDIDATES`` duplicate
candidates — its twin from the first connection first — all counted in the run's ``conflicts``."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from castiel.models import DedupStrategy, DuplicateCandidate
from castiel.ports import Filter
from castiel.sync.dedup import MAX_CANDIDATES
from tests.integration.sync.world import RECORDS, SALESFORCE, World

CONTACTS = {"Contact": {"shardType": "contact", "fields": {"Email": "email", "LastName": "name"}, "keys": [["email"]]}}


async def test_candidates_are_bounded_per_record_and_counted(world: World) -> None:
    case = replace(SALESFORCE, entity_type="Contact")
    first = await world.connect(case, connection_id="sf-1", entity_mappings=CONTACTS)
    second = await world.connect(case, connection_id="sf-2", entity_mappings=CONTACTS,
                                 dedup_strategy=DedupStrategy.FUZZY)  # fmt: skip
    await world.pull(first)

    result = await world.pull(second)

    # Every sandbox e-mail is contact<i>@example.com: all of them are alike, and only the best few are kept.
    docs = await world.docs("conflicts", "t1", Filter("kind", "==", "duplicate"))
    candidates = [DuplicateCandidate.model_validate(doc) for doc in docs]
    assert (result.counts.created, result.counts.duplicates) == (RECORDS, 0)
    assert result.counts.conflicts == len(candidates) > 0
    per_record = Counter(candidate.shard_id for candidate in candidates)
    assert max(per_record.values()) <= MAX_CANDIDATES
    assert len({frozenset((c.shard_id, c.candidate_shard_id)) for c in candidates}) == len(candidates)
    for item in case.api(world.sandbox).datasets["Contact"].after(None):
        mine, theirs = await world.shard_of(second, item.id), await world.shard_of(first, item.id)
        assert mine["id"] != theirs["id"]  # never merged
        assert any(
            {c.shard_id, c.candidate_shard_id} == {mine["id"], theirs["id"]} and c.score == 100.0 for c in candidates
        )
