"""A delete pushed to GitHub, end to end through the sandbox: GitHub cannot delete an issue, so the delete closes
it; GitHub's later reports of the closed issue (its webhook, a pull) are our own write coming back, while a person
re-opening it afterwards is a change of theirs."""

from __future__ import annotations

import pytest

from castiel.models import DeletePolicy, Operation, Provider, SyncResult
from tests.integration.sync.two_way import TENANT, TwoWay

GITHUB, NOTION = Provider.GITHUB, Provider.NOTION
RECORDS = 6
ISSUE = "1000000002"
ISSUE_PATH = "/github/repos/acme/widgets/issues/2"


@pytest.fixture(scope="module")
def sandbox_records() -> int:
    return RECORDS


async def outbound_results(two: TwoWay) -> list[SyncResult]:
    docs = await two.world.docs(SyncResult.container, TENANT)
    return sorted((SyncResult.model_validate(doc) for doc in docs if doc.get("shardId")), key=lambda r: r.started_at)


async def test_a_delete_pushed_to_github_closes_the_issue_and_its_report_does_not_revive_the_task(
    two: TwoWay,
) -> None:
    await two.connect(GITHUB)
    await two.connect(NOTION, delete_policy=DeletePolicy.PROPAGATE)
    await two.sync_both()
    two.world.sandbox.pushes.clear()
    page_id = (await two.shard_of(GITHUB, ISSUE))["externalIds"]["notion"]
    two.world.clock.advance(60)

    two.world.sandbox.delete("notion", ids=[page_id])
    [trashed] = two.webhook(NOTION, Operation.DELETE, two.world.sandbox.notion.pages.get(page_id).body)
    await two.deliver(trashed)

    assert two.pushes() == [("github", "PATCH", ISSUE_PATH)]
    assert two.world.sandbox.pushes[0].body == {"state": "closed"}
    closed = two.world.sandbox.github.issues.get(ISSUE).body
    assert closed["state"] == "closed"
    assert (await two.shard_of(GITHUB, ISSUE))["deleted"]

    # GitHub reports the issue we closed — its webhook, then the next pulls of both tools: our own write, dropped.
    [reported] = two.webhook(GITHUB, Operation.UPDATE, closed)
    await two.deliver(reported)
    await two.sync_both()
    shard = await two.shard_of(GITHUB, ISSUE)
    assert shard["deleted"]
    assert shard["sync"]["github"]["deleted"]
    assert two.pushes() == [("github", "PATCH", ISSUE_PATH)]

    # A person re-opens it in GitHub: their change, not ours; the task lives again.
    two.world.clock.advance(60)
    github = two.world.server.base_urls()["github"]
    answer = await two.world.http.patch(f"{github}/repos/acme/widgets/issues/2", json={"state": "open"},
                                        headers={"Authorization": "Bearer a-person"})  # fmt: skip
    assert answer.status_code == 200
    [reopened] = two.webhook(GITHUB, Operation.UPDATE, answer.json())
    await two.deliver(reopened)

    shard = await two.shard_of(GITHUB, ISSUE)
    assert not shard["deleted"]
    assert not shard["sync"]["github"]["deleted"]
    assert shard["data"]["state"] == "open"
    last = (await outbound_results(two))[-1]
    assert (last.shard_id, last.trigger, last.status) == (shard["id"], "webhook", "succeeded")
    assert [(target.connection_id, target.reason) for target in last.targets] == [
        ("notion", "deleted on this connection: not recreated")
    ]
    assert two.pushes() == [("github", "PATCH", ISSUE_PATH)] * 2  # ours, then the person's re-open
