"""A deletion a pull discovers, end to end through the sandbox: a cancelled Google event, a Salesforce record with
``IsDeleted`` — pulled, fanned out, and pushed as a delete to the shard type's other connection (a Notion page
trashed, a GitHub issue closed) under the source's ``deletePolicy: propagate``; under ``tombstone_only`` it stays
local. Nothing comes back either way."""

from __future__ import annotations

from typing import Any

import pytest

from castiel.models import DeletePolicy, Provider, SyncMode
from castiel.sandbox.demo import GITHUB_TASKS
from tests.integration.sync.two_way import TwoWay

GITHUB, NOTION, GOOGLE, SALESFORCE = Provider.GITHUB, Provider.NOTION, Provider.GOOGLE, Provider.SALESFORCE
RECORDS = 6


@pytest.fixture(scope="module")
def sandbox_records() -> int:
    return RECORDS


ITEMS = "item"
"""A shard type the tests share between a pulled provider and the connection it reaches."""
PULLED_ITEMS: dict[Provider, dict[str, Any]] = {
    GOOGLE: {"event": {"shardType": ITEMS, "fields": {"summary": "title"}}},
    SALESFORCE: {"Account": {"shardType": ITEMS, "fields": {"Name": "title"}}},
}
TARGET_ITEMS: dict[Provider, dict[str, Any]] = {
    NOTION: {"page": {"shardType": ITEMS, "fields": {"properties.Name.title[0].text.content": "title"}}},
    GITHUB: {"issue": {**GITHUB_TASKS["issue"], "shardType": ITEMS}},
}


def trashed(two: TwoWay, shard: dict[str, Any]) -> tuple[tuple[str, str, str], dict[str, Any], bool]:
    """The write that deletes the shard's record in Notion, or closes its GitHub issue; and whether it is gone."""
    sandbox = two.world.sandbox
    if "notion" in shard["externalIds"]:
        page_id = shard["externalIds"]["notion"]
        return (
            ("notion", "PATCH", f"/notion/v1/pages/{page_id}"),
            {"in_trash": True},
            sandbox.notion.pages.get(page_id).deleted,
        )
    issue = sandbox.github.issues.get(shard["externalIds"]["github"]).body
    path = f"/github/repos/acme/widgets/issues/{issue['number']}"
    return ("github", "PATCH", path), {"state": "closed"}, issue["state"] == "closed"


@pytest.mark.parametrize("policy", [DeletePolicy.PROPAGATE, DeletePolicy.TOMBSTONE_ONLY])
@pytest.mark.parametrize("target", [NOTION, GITHUB], ids=lambda provider: f"to-{provider.value}")
@pytest.mark.parametrize("source", [GOOGLE, SALESFORCE], ids=lambda provider: provider.value)
async def test_a_deletion_a_pull_discovers_goes_to_the_other_connections_under_propagate(
    two: TwoWay, source: Provider, target: Provider, policy: DeletePolicy
) -> None:
    # The source only pulls (a tool without webhooks: a pull is how its deletions are learnt); the target takes its
    # items, and its own records land in shards too.
    await two.connect(source, entity_mappings=PULLED_ITEMS[source], delete_policy=policy, sync_direction=SyncMode.PULL)
    await two.connect(target, entity_mappings=TARGET_ITEMS[target])
    await two.pull(source)
    await two.drain()
    assert [provider for provider, _, _ in two.pushes()] == [target.value] * RECORDS
    await two.pull(target)
    await two.drain()
    two.world.sandbox.pushes.clear()
    two.world.clock.advance(60)

    [deleted] = two.world.sandbox.delete(source.value, count=1)
    result = await two.pull(source)
    assert (result.counts.deleted, result.counts.updated, result.counts.created) == (1, 0, 0)
    await two.drain()

    shard = await two.shard_of(source, deleted)
    write, body, gone = trashed(two, shard)
    assert shard["sync"][source.value]["deleted"]
    if policy is DeletePolicy.PROPAGATE:
        assert two.pushes() == [write]
        assert two.world.sandbox.pushes[0].body == body
        assert gone
        assert shard["deleted"]
    else:
        assert two.pushes() == []
        assert not gone
        assert not shard["deleted"]

    # The next pulls of both tools bring nothing back.
    two.world.clock.advance(60)
    await two.pull(source)
    await two.pull(target)
    assert await two.drain() == 0
    assert len(two.pushes()) == (1 if policy is DeletePolicy.PROPAGATE else 0)
    assert (await two.shard_of(source, deleted))["deleted"] is (policy is DeletePolicy.PROPAGATE)
