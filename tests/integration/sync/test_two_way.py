"""Two tools on one shard type, both ways (GitHub issues ↔ a Notion tasks database): pulls and webhooks reach the
other tool once, our own writes coming back are dropped, deletes follow the delete policy, a failing target is
retried alone, a change made on the target meanwhile is merged before it could be overwritten."""

from __future__ import annotations

import pytest

from castiel.errors import ConfigError, PermanentError
from castiel.models import Conflict, Connection, DeletePolicy, Operation, Provider, SyncResult
from castiel.sync.local import LocalEdits
from tests.integration.sync.two_way import OUTBOUND, TENANT, TwoWay

GITHUB, NOTION, SLACK = Provider.GITHUB, Provider.NOTION, Provider.SLACK
RECORDS = 6  # per provider: the first six GitHub issues are issues (every tenth is a pull request)
NOTION_PAGES = "/notion/v1/pages"


@pytest.fixture(scope="module")
def sandbox_records() -> int:
    return RECORDS


async def synced(two: TwoWay, *providers: Provider) -> None:
    """Connect ``providers`` (GitHub and Notion by default), sync them both ways, forget the writes that took."""
    for provider in providers or (GITHUB, NOTION):
        await two.connect(provider)
    await two.sync_both()
    two.world.sandbox.pushes.clear()


async def test_a_pull_reaches_the_other_tool_once_and_nothing_comes_back(two: TwoWay) -> None:
    await two.connect(GITHUB)
    await two.connect(NOTION)

    await two.pull(GITHUB)
    assert await two.queued() == RECORDS
    await two.drain()
    assert two.pushes() == [("notion", "POST", NOTION_PAGES)] * RECORDS
    shard = await two.shard_of(GITHUB, "1000000001")
    assert set(shard["externalIds"]) == {"github", "notion"}
    assert shard["sync"]["notion"]["snapshot"] == {"title": shard["data"]["title"]}

    await two.pull(NOTION)  # its six pages, and the six we just made there
    await two.drain()
    assert two.pushes("github") == [("github", "POST", "/github/repos/acme/widgets/issues")] * RECORDS

    two.world.sandbox.pushes.clear()
    for provider in (GITHUB, NOTION):
        result = await two.pull(provider)
        assert result.counts.created == result.counts.updated == 0
    assert await two.queued() == 0
    assert two.pushes() == []
    shards = await two.shards()
    assert len(shards) == 2 * RECORDS
    assert all(set(shard["externalIds"]) == {"github", "notion"} for shard in shards)


async def test_one_github_edit_lands_once_in_notion_and_nothing_comes_back(two: TwoWay) -> None:
    await synced(two)
    two.world.clock.advance(60)
    [issue] = two.world.sandbox.edit("github", ids=["1000000002"])

    [change] = two.webhook(GITHUB, Operation.UPDATE, issue)
    await two.deliver(change)

    page_id = (await two.shard_of(GITHUB, "1000000002"))["externalIds"]["notion"]
    assert two.pushes() == [("notion", "PATCH", f"{NOTION_PAGES}/{page_id}")]
    title = two.world.sandbox.pushes[0].body["properties"]["Name"]["title"][0]["text"]["content"]
    assert title == issue["title"]

    # Notion reports our write; GitHub's event arrives again; both tools are pulled: nothing moves.
    [echo] = two.webhook(NOTION, Operation.UPDATE, two.world.sandbox.notion.pages.get(page_id).body)
    await two.deliver(echo)
    await two.deliver(change, key="redelivered")
    for provider in (GITHUB, NOTION):
        await two.pull(provider)
    assert await two.drain() == 0
    assert len(two.pushes()) == 1


async def test_a_notion_edit_known_only_by_its_id_reaches_github_by_the_issue_number(two: TwoWay) -> None:
    await synced(two)
    two.world.clock.advance(60)
    shard = await two.shard_of(GITHUB, "1000000003")
    [page] = two.world.sandbox.edit("notion", ids=[shard["externalIds"]["notion"]])

    [change] = two.webhook(NOTION, Operation.UPDATE, page)
    assert set(change.changes) <= {"workspace_id", "parent", "updated_properties"}  # ids only
    await two.deliver(change)

    assert two.pushes() == [("github", "PATCH", "/github/repos/acme/widgets/issues/3")]
    assert two.world.sandbox.pushes[0].body == {"title": page["properties"]["Name"]["title"][0]["plain_text"]}
    assert two.world.sandbox.github.issues.get("1000000003").body["title"].endswith("(edited)")


@pytest.mark.parametrize("policy", [DeletePolicy.TOMBSTONE_ONLY, DeletePolicy.PROPAGATE])
async def test_a_delete_goes_out_only_under_propagate(two: TwoWay, policy: DeletePolicy) -> None:
    await two.connect(GITHUB, delete_policy=policy)
    await two.connect(NOTION)
    await two.sync_both()
    two.world.sandbox.pushes.clear()
    issue = two.world.sandbox.github.issues.get("1000000004").body
    two.world.sandbox.delete("github", ids=["1000000004"])

    [change] = two.webhook(GITHUB, Operation.DELETE, issue)
    await two.deliver(change)

    shard = await two.shard_of(GITHUB, "1000000004")
    page_id = shard["externalIds"]["notion"]
    assert shard["sync"]["github"]["deleted"]
    if policy is DeletePolicy.TOMBSTONE_ONLY:
        assert two.pushes() == []
        assert not shard["deleted"]
        assert not two.world.sandbox.notion.pages.get(page_id).deleted
    else:
        assert two.pushes() == [("notion", "PATCH", f"{NOTION_PAGES}/{page_id}")]
        assert two.world.sandbox.pushes[0].body == {"in_trash": True}
        assert shard["deleted"]
        [trashed] = two.webhook(NOTION, Operation.DELETE, two.world.sandbox.notion.pages.get(page_id).body)
        await two.deliver(trashed)
        assert len(two.pushes()) == 1


async def test_a_failing_target_is_retried_alone(two: TwoWay) -> None:
    await synced(two, GITHUB, NOTION, SLACK)
    two.world.clock.advance(60)
    [issue] = two.world.sandbox.edit("github", ids=["1000000005"])
    two.world.sandbox.faults.configure("slack", next_statuses=[503, 503, 503])

    [change] = two.webhook(GITHUB, Operation.UPDATE, issue)
    await two.deliver(change)

    results = [SyncResult.model_validate(doc) for doc in await two.world.docs(SyncResult.container, TENANT)]
    [result] = [result for result in results if result.shard_id and result.trigger == "webhook"]
    assert result.status == "retrying"
    assert [(target.connection_id, target.status) for target in result.targets] == [
        ("notion", "pushed"),
        ("slack", "failed"),
    ]
    assert two.pushes() == [("notion", "PATCH", two.pushes()[0][2])]

    two.world.clock.advance(10)  # the retry copy's backoff
    assert await two.drain() == 1
    assert sorted(provider for provider, _, _ in two.pushes()) == ["notion", "slack"]
    retried = SyncResult.model_validate(await two.world.store.read(SyncResult.container, result.id, TENANT))
    assert retried.status == "succeeded"
    assert [(target.connection_id, target.status) for target in retried.targets] == [
        ("notion", "skipped"),
        ("slack", "pushed"),
    ]


async def test_a_target_refusing_for_good_dead_letters_the_change_and_a_resubmission_pushes_only_it(
    two: TwoWay,
) -> None:
    await synced(two, GITHUB, NOTION, SLACK)
    two.world.clock.advance(60)
    [issue] = two.world.sandbox.edit("github", ids=["1000000006"])
    slack = Connection.model_validate(await two.world.store.read(Connection.container, "slack", TENANT))
    moved = slack.model_copy(update={"settings": {**slack.settings, "channel": "C0GONE0000"}})
    await two.world.store.replace(Connection.container, moved.to_doc(), if_match=slack.etag)  # Slack: channel_not_found

    [change] = two.webhook(GITHUB, Operation.UPDATE, issue)
    with pytest.raises(PermanentError, match=r"slack: .*channel_not_found") as refused:
        await two.deliver(change)  # the worker dead-letters its message with this reason

    results = [SyncResult.model_validate(doc) for doc in await two.world.docs(SyncResult.container, TENANT)]
    [result] = [result for result in results if result.shard_id and result.trigger == "webhook"]
    assert (result.status, result.error) == ("failed", str(refused.value))
    assert [(target.connection_id, target.status) for target in result.targets] == [
        ("notion", "pushed"),
        ("slack", "failed"),
    ]

    restored = Connection.model_validate(await two.world.store.read(Connection.container, "slack", TENANT))
    fixed = restored.model_copy(update={"settings": slack.settings})
    await two.world.store.replace(Connection.container, fixed.to_doc(), if_match=restored.etag)
    await two.deliver(change, key="resubmitted")  # `castiel queue resubmit`, the cause gone
    assert sorted(provider for provider, _, _ in two.pushes()) == ["notion", "slack"]


async def test_a_change_made_on_the_target_meanwhile_is_merged_before_the_push(two: TwoWay) -> None:
    await synced(two)
    two.world.clock.advance(60)
    shard = await two.shard_of(GITHUB, "1000000002")
    page_id = shard["externalIds"]["notion"]
    [issue] = two.world.sandbox.edit("github", ids=["1000000002"])
    two.world.sandbox.edit("notion", ids=[page_id])
    [page] = two.world.sandbox.edit("notion", ids=[page_id])  # another title than GitHub's; no webhook processed yet

    [change] = two.webhook(GITHUB, Operation.UPDATE, issue)
    await two.deliver(change)

    # local_wins: the shard keeps GitHub's title, Notion's collision is recorded, then Notion gets the shard's.
    [conflict] = [Conflict.model_validate(doc) for doc in await two.world.docs(Conflict.container, TENANT)]
    assert (conflict.field, conflict.connection_id, conflict.rule, conflict.kept) == (
        "title",
        "notion",
        "local_wins",
        "local",
    )
    assert conflict.local_value == issue["title"]
    assert conflict.remote_value == page["properties"]["Name"]["title"][0]["plain_text"]
    assert two.pushes() == [("notion", "PATCH", f"{NOTION_PAGES}/{page_id}")]


async def test_a_local_edit_goes_to_every_connection_of_the_shard_type(two: TwoWay) -> None:
    await synced(two)
    shard = await two.shard_of(GITHUB, "1000000001")
    edits = LocalEdits(two.world.store, two.world.queue, OUTBOUND, clock=two.world.clock)

    edit = await edits.update(TENANT, shard["id"], {"title": "Renamed by hand"})
    assert edit.changed == {"title": "Renamed by hand"}
    assert edit.shard["fieldSources"]["title"] == "local"
    assert edit.reach.targets == ("github", "notion")
    assert await two.drain() == 1

    page_id = shard["externalIds"]["notion"]
    assert sorted(two.pushes()) == [
        ("github", "PATCH", "/github/repos/acme/widgets/issues/1"),
        ("notion", "PATCH", f"{NOTION_PAGES}/{page_id}"),
    ]
    assert two.world.sandbox.github.issues.get("1000000001").body["title"] == "Renamed by hand"
    again = await edits.update(TENANT, shard["id"], {"title": "Renamed by hand"})
    assert again.changed == {}
    assert await two.queued() == 0


async def test_a_read_only_field_is_refused_by_hand_and_never_turns_later_edits_into_conflicts(two: TwoWay) -> None:
    # GitHub alone, bidirectional, local_wins; its mapping owns ``number`` read-only.
    github = await two.connect(GITHUB)
    await two.pull(GITHUB)
    shard = await two.shard_of(GITHUB, "1000000001")
    issue_number = shard["data"]["number"]
    edits = LocalEdits(two.world.store, two.world.queue, OUTBOUND, clock=two.world.clock)

    with pytest.raises(ConfigError, match=r"read-only on the connections that sync task shards.*number by github"):
        await edits.update(TENANT, shard["id"], {"title": "Pushed by hand", "number": 999})
    assert (await two.shard_of(GITHUB, "1000000001"))["data"] == shard["data"]
    assert await two.queued() == 0

    edit = await edits.update(TENANT, shard["id"], {"title": "Pushed by hand"})
    assert (edit.reach.targets, edit.reach.withheld) == (("github",), ())
    await two.drain()
    assert two.world.sandbox.github.issues.get("1000000001").body["title"] == "Pushed by hand"

    # A shard that an earlier release let take number=999 (it never went out): GitHub owns number, so its next pull
    # puts it right, and GitHub's edits of the title are news, not conflicts, each time.
    await poison(two, shard["id"], number=999)
    for _ in range(2):
        two.world.clock.advance(60)
        [issue] = two.world.sandbox.edit("github", ids=["1000000001"])
        result = await two.world.pull(github)
        assert (result.counts.updated, result.counts.conflicts) == (1, 0)
        after = await two.shard_of(GITHUB, "1000000001")
        assert (after["data"]["title"], after["data"]["number"]) == (issue["title"], issue_number)
        assert after["sync"]["github"]["snapshot"]["number"] == issue_number
    assert await two.world.docs(Conflict.container, TENANT) == []


async def poison(two: TwoWay, shard_id: str, **fields: object) -> None:
    """Local values written straight into a shard, as ``shards update`` let through before it checked them."""
    shard = await two.world.store.read("shards", shard_id, TENANT)
    doc = {key: value for key, value in shard.items() if not key.startswith("_")}
    doc["data"] = {**shard["data"], **fields}
    doc["fieldSources"] = {**shard["fieldSources"], **dict.fromkeys(fields, "local")}
    await two.world.store.replace("shards", doc, if_match=shard["_etag"])
