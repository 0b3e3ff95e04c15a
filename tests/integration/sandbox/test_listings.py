"""What each stand-in lists, as its provider documents it: filters, order, pagination, sync tokens, deletions."""

from __future__ import annotations

import base64

import httpx
import pytest

from castiel.sandbox.notion import DATA_SOURCE_ID
from castiel.sandbox.state import Sandbox
from tests.integration.sandbox.conftest import AUTH, RECORDS

NOTION = {**AUTH, "Notion-Version": "2025-09-03"}
ISSUES = "/github/repos/acme/widgets/issues"


async def test_seeded_data_is_the_same_in_every_sandbox_of_the_same_size(client: httpx.AsyncClient) -> None:
    other = Sandbox(records=RECORDS)
    params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": 100}
    served = (await client.get("/github/repos/acme/widgets/issues", params=params, headers=AUTH)).json()
    assert served == [item.body for item in other.github.issues.after(None)]
    default = (await client.get("/github/repos/acme/widgets/issues", headers=AUTH)).json()
    numbers = [issue["number"] for issue in default]
    assert numbers == sorted(numbers, reverse=True)  # GitHub's default: created, newest first
    assert {issue["state"] for issue in default} == {"open"}


async def test_github_since_is_inclusive_to_the_second_and_pages_link_onwards(client: httpx.AsyncClient) -> None:
    params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": 4}
    everything = (
        await client.get("/github/repos/acme/widgets/issues", params={**params, "per_page": 100}, headers=AUTH)
    ).json()
    boundary = everything[5]["updated_at"]
    since = (
        await client.get("/github/repos/acme/widgets/issues", params={**params, "since": boundary}, headers=AUTH)
    ).json()
    assert since[0]["updated_at"] == boundary
    assert since[0]["number"] == everything[4]["number"]  # two issues share each second
    page = await client.get("/github/repos/acme/widgets/issues", params=params, headers=AUTH)
    next_link = page.links["next"]["url"]
    assert "page=2" in next_link
    second = (await client.get(next_link, headers=AUTH)).json()
    assert [issue["number"] for issue in second] == [issue["number"] for issue in everything[4:8]]
    assert sum("pull_request" in issue for issue in everything) == RECORDS // 10


@pytest.mark.parametrize("change", ["edit", "delete"])
async def test_github_pages_by_position_so_a_change_between_pages_shifts_the_rest(
    client: httpx.AsyncClient, change: str
) -> None:
    params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": 4}
    first = await client.get(ISSUES, params=params, headers=AUTH)
    await client.post(f"/_sandbox/github/{change}", json={"ids": [str(first.json()[1]["id"])]})

    second = (await client.get(first.links["next"]["url"], headers=AUTH)).json()
    everything = (await client.get(ISSUES, params={**params, "per_page": 100}, headers=AUTH)).json()
    # As on GitHub: the second issue left its place, so page 2 starts one issue later and one is served by neither.
    assert [issue["number"] for issue in second] == [issue["number"] for issue in everything[4:8]]
    served = [issue["number"] for issue in first.json() + second]
    assert everything[3]["number"] not in served


async def test_notion_filters_on_the_minute_and_pages_with_a_cursor(client: httpx.AsyncClient) -> None:
    sorts = [{"timestamp": "last_edited_time", "direction": "ascending"}]
    first = (
        await client.post(
            f"/notion/v1/data_sources/{DATA_SOURCE_ID}/query", json={"page_size": 10, "sorts": sorts}, headers=NOTION
        )
    ).json()
    assert first["has_more"]
    rest = (
        await client.post(
            f"/notion/v1/data_sources/{DATA_SOURCE_ID}/query",
            json={"page_size": 100, "sorts": sorts, "start_cursor": first["next_cursor"]},
            headers=NOTION,
        )
    ).json()
    assert len(first["results"]) + len(rest["results"]) == RECORDS
    assert rest["has_more"] is False
    minute = first["results"][8]["last_edited_time"]
    filtered = {"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": minute}}
    since = (
        await client.post(
            f"/notion/v1/data_sources/{DATA_SOURCE_ID}/query", json={"filter": filtered, "sorts": sorts}, headers=NOTION
        )
    ).json()
    assert since["results"][0]["id"] == first["results"][7]["id"]  # seven pages share a minute: 7..13
    too_big = await client.post(
        f"/notion/v1/data_sources/{DATA_SOURCE_ID}/query", json={"page_size": 101}, headers=NOTION
    )
    assert (too_big.status_code, too_big.json()["code"]) == (400, "validation_error")


async def test_notion_trash_hides_a_page_from_queries(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    [trashed] = sandbox.delete("notion", count=1)
    listed = (await client.post(f"/notion/v1/data_sources/{DATA_SOURCE_ID}/query", json={}, headers=NOTION)).json()
    assert trashed not in [page["id"] for page in listed["results"]]
    read = (await client.get(f"/notion/v1/pages/{trashed}", headers=NOTION)).json()
    assert read["in_trash"] is True


async def test_slack_history_is_newest_first_between_oldest_and_latest(client: httpx.AsyncClient) -> None:
    everything = (
        await client.get(
            "/slack/api/conversations.history", params={"channel": "C0SANDBOX1", "limit": 999}, headers=AUTH
        )
    ).json()
    ts = [message["ts"] for message in everything["messages"]]
    assert ts == sorted(ts, key=float, reverse=True)
    window = {"channel": "C0SANDBOX1", "oldest": ts[-5], "latest": ts[-1], "limit": 2}
    page = (await client.get("/slack/api/conversations.history", params=window, headers=AUTH)).json()
    assert [message["ts"] for message in page["messages"]] == []  # latest is below oldest: nothing between
    window = {"channel": "C0SANDBOX1", "oldest": ts[-1], "latest": ts[-5], "limit": 2}
    page = (await client.get("/slack/api/conversations.history", params=window, headers=AUTH)).json()
    assert [message["ts"] for message in page["messages"]] == ts[-4:-2]
    cursor = page["response_metadata"]["next_cursor"]
    assert base64.b64decode(cursor).startswith(b"next_ts:")
    rest = (
        await client.get("/slack/api/conversations.history", params={**window, "cursor": cursor}, headers=AUTH)
    ).json()
    assert [message["ts"] for message in rest["messages"]] == ts[-2:-1]
    inclusive = (
        await client.get(
            "/slack/api/conversations.history", params={**window, "inclusive": "1", "limit": 10}, headers=AUTH
        )
    ).json()
    assert len(inclusive["messages"]) == 5


async def test_slack_edits_keep_their_ts_and_deletions_vanish(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    [edited] = sandbox.edit("slack", count=1)
    [gone] = sandbox.delete("slack", ids=[sandbox.slack.ids("message", 2)[1]])
    listed = (
        await client.get("/slack/api/conversations.history", params={"channel": "C0SANDBOX1"}, headers=AUTH)
    ).json()
    by_ts = {message["ts"]: message for message in listed["messages"]}
    assert by_ts[edited["ts"]]["edited"]["ts"]
    assert gone not in by_ts


async def test_google_gives_the_sync_token_on_the_last_page_and_changes_after_it(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    path = "/google/calendar/v3/calendars/primary/events"
    first = (await client.get(path, params={"maxResults": 20}, headers=AUTH)).json()
    assert "nextPageToken" in first
    assert "nextSyncToken" not in first
    last = (await client.get(path, params={"maxResults": 20, "pageToken": first["nextPageToken"]}, headers=AUTH)).json()
    assert "nextPageToken" not in last
    token = last["nextSyncToken"]
    [edited] = sandbox.edit("google", count=1)
    [deleted] = sandbox.delete("google", ids=["evt0000005"])
    changes = (await client.get(path, params={"syncToken": token}, headers=AUTH)).json()
    assert [(event["id"], event["status"]) for event in changes["items"]] == [
        (edited["id"], "confirmed"),
        (deleted, "cancelled"),
    ]
    refused = await client.get(path, params={"syncToken": token, "timeMin": "2025-01-01T00:00:00Z"}, headers=AUTH)
    assert refused.json()["error"]["errors"][0]["reason"] == "syncTokenWithRequestRestrictions"
    sandbox.google.invalidate_sync_tokens()
    gone = await client.get(path, params={"syncToken": token}, headers=AUTH)
    assert (gone.status_code, gone.json()["error"]["errors"][0]["reason"]) == (410, "fullSyncRequired")


async def test_salesforce_query_hides_deleted_rows_and_query_all_shows_them(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    [deleted] = sandbox.delete("salesforce", count=1, entity_type="Account")
    soql = "SELECT Id, IsDeleted FROM Account ORDER BY SystemModstamp, Id"
    live = (await client.get("/salesforce/services/data/v66.0/query", params={"q": soql}, headers=AUTH)).json()
    every = (await client.get("/salesforce/services/data/v66.0/queryAll", params={"q": soql}, headers=AUTH)).json()
    assert (live["totalSize"], every["totalSize"]) == (RECORDS - 1, RECORDS)
    assert every["records"][-1] == {
        "attributes": {"type": "Account", "url": f"/services/data/v66.0/sobjects/Account/{deleted}"},
        "Id": deleted,
        "IsDeleted": True,
    }


async def test_salesforce_batches_follow_next_records_url(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.salesforce.batch_size = 12
    soql = "SELECT Id FROM Contact"
    answer = (await client.get("/salesforce/services/data/v66.0/query", params={"q": soql}, headers=AUTH)).json()
    seen = [record["Id"] for record in answer["records"]]
    while not answer["done"]:
        answer = (await client.get(f"/salesforce{answer['nextRecordsUrl']}", headers=AUTH)).json()
        seen.extend(record["Id"] for record in answer["records"])
    assert len(seen) == len(set(seen)) == RECORDS
    first = (await client.get("/salesforce/services/data/v66.0/query", params={"q": soql}, headers=AUTH)).json()
    sandbox.salesforce.expire_query_locators()
    expired = await client.get(f"/salesforce{first['nextRecordsUrl']}", headers=AUTH)
    assert (expired.status_code, expired.json()[0]["errorCode"]) == (400, "INVALID_QUERY_LOCATOR")


async def test_salesforce_collections_roll_back_everything_with_all_or_none(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    records = [{"attributes": {"type": "Account"}, "Name": "Kept?"}, {"attributes": {"type": "Account"}}]
    body = {"allOrNone": True, "records": records}
    answer = (await client.post("/salesforce/services/data/v66.0/composite/sobjects", json=body, headers=AUTH)).json()
    assert [item["success"] for item in answer] == [False, False]
    assert answer[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert answer[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert len(sandbox.salesforce.datasets["Account"]) == RECORDS
    too_many = {"records": [{"attributes": {"type": "Account"}, "Name": "x"}] * 201}
    refused = await client.post("/salesforce/services/data/v66.0/composite/sobjects", json=too_many, headers=AUTH)
    assert (refused.status_code, refused.json()[0]["errorCode"]) == (400, "EXCEEDED_ID_LIMIT")
