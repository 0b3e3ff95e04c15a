"""Salesforce REST through ``httpx.MockTransport``, with bodies shaped as Salesforce documents them."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from adapters.records import Change, PushStatus
from adapters.salesforce import SalesforceAdapter
from castiel.clock import ManualClock
from castiel.errors import CastielError, ConfigError, PermanentError, RateLimited, RetryableError
from castiel.models import Operation, Provider
from tests.unit.adapters.support import (
    Maker,
    RefreshingAuth,
    RefreshingConnectionAuth,
    StaticAuth,
    connection,
    fetch_all,
    fetch_fails,
    json_response,
    maker,
)

INSTANCE = "https://acme.my.salesforce.com"
V = "/services/data/v66.0"
CONN = connection(Provider.SALESFORCE, base_url=None, apiVersion="66.0", fields={"Account": ["Name"]})
JAN_5 = 1_767_614_400.0  # 2026-01-05T12:00:00Z


def account(n: int, stamp: str, *, deleted: bool = False, name: str = "Acme") -> dict[str, Any]:
    record_id = f"001D000000Iqh{n:02d}AAA"
    return {
        "attributes": {"type": "Account", "url": f"{V}/sobjects/Account/{record_id}"},
        "Id": record_id,
        "SystemModstamp": stamp,
        "IsDeleted": deleted,
        "Name": name,
    }


def query(records: list[dict[str, Any]], next_url: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"totalSize": 5, "done": next_url is None, "records": records}
    if next_url:
        body["nextRecordsUrl"] = next_url
    return json_response(200, body, {"sforce-limit-info": "api-usage=18/15000"})


def sf_error(status: int, code: str, message: str) -> httpx.Response:
    return json_response(status, [{"message": message, "errorCode": code, "fields": []}])


DESCRIBE = {
    "name": "Account",
    "label": "Account",
    "fields": [
        {"name": "Id", "type": "id"},
        {"name": "IsDeleted", "type": "boolean"},
        {"name": "Name", "type": "string"},
        {"name": "BillingAddress", "type": "address"},
        {"name": "Logo__c", "type": "base64"},
        {"name": "SystemModstamp", "type": "datetime"},
    ],
}

Make = Maker[SalesforceAdapter]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(JAN_5)


@pytest.fixture
def make(redis_client: aioredis.Redis, clock: ManualClock) -> Make:
    return maker(SalesforceAdapter, redis_client, clock, default_auth=lambda: StaticAuth(api_root=INSTANCE))


def soql(request: httpx.Request) -> str:
    return parse_qs(urlsplit(str(request.url)).query)["q"][0]


async def test_the_newest_api_version_is_discovered_once(make: Make) -> None:
    versions = [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in ("64.0", "99.0", "100.0")]
    adapter, requests = make(json_response(200, versions), query([]), query([]))
    auto = connection(Provider.SALESFORCE, base_url=None, fields={"Account": ["Name"]})
    await fetch_all(adapter, auto, "Account")
    await fetch_all(adapter, auto, "Account")
    assert [r.url.path for r in requests] == [
        "/services/data/",
        "/services/data/v100.0/queryAll",
        "/services/data/v100.0/queryAll",
    ]
    assert str(requests[0].url).startswith(INSTANCE)  # the credential's instance URL


async def test_fields_come_from_describe_without_base64(make: Make) -> None:
    adapter, requests = make(json_response(200, DESCRIBE), query([]))
    await fetch_all(adapter, connection(Provider.SALESFORCE, base_url=None, apiVersion="v66.0"), "Account")
    assert requests[0].url.path == f"{V}/sobjects/Account/describe"
    assert soql(requests[1]) == (
        "SELECT Id, SystemModstamp, IsDeleted, Name, BillingAddress FROM Account ORDER BY SystemModstamp ASC, Id ASC"
    )


async def test_pages_follow_next_records_url_and_strip_attributes(make: Make) -> None:
    adapter, requests = make(
        query([account(1, "2026-01-05T11:00:00.000+0000")], f"{V}/query/01gD0000002HU6KIAW-2000"),
        query([account(2, "2026-01-05T11:30:00.000+0000", deleted=True)]),
    )
    pages = await fetch_all(adapter, CONN, "Account")
    assert requests[0].url.path == f"{V}/queryAll"
    assert str(requests[1].url) == f"{INSTANCE}{V}/query/01gD0000002HU6KIAW-2000"
    first, second = pages[0].records[0], pages[1].records[0]
    assert first.entity_type == "Account"
    assert "attributes" not in first.data
    assert first.data["Name"] == "Acme"
    assert second.deleted
    assert orjson.loads(pages[1].cursor or "") == {
        "id": "001D000000Iqh02AAA",
        "since": "2026-01-05T11:30:00.000000Z",
        "checked": "2026-01-05T12:00:00.000000Z",
    }


async def test_the_next_run_continues_strictly_after_the_last_time_and_id(make: Make) -> None:
    adapter, requests = make(
        query([account(1, "2026-01-05T11:00:00.000+0000"), account(2, "2026-01-05T11:00:00.000+0000")]),
        query([account(3, "2026-01-05T11:00:00.000+0000")]),
    )
    [first] = await fetch_all(adapter, CONN, "Account")
    [second] = await fetch_all(adapter, CONN, "Account", first.cursor)
    assert soql(requests[1]) == (
        "SELECT Id, SystemModstamp, IsDeleted, Name FROM Account WHERE SystemModstamp > 2026-01-05T11:00:00.000Z "
        "OR (SystemModstamp = 2026-01-05T11:00:00.000Z AND Id > '001D000000Iqh02AAA') "
        "ORDER BY SystemModstamp ASC, Id ASC"
    )
    assert [r.external_id for r in second.records] == ["001D000000Iqh03AAA"]


async def test_a_bare_time_cursor_is_inclusive(make: Make) -> None:
    adapter, requests = make(query([]))
    await fetch_all(adapter, CONN, "Account", "2026-01-04T00:00:00Z")
    assert "WHERE SystemModstamp >= 2026-01-04T00:00:00.000Z ORDER BY" in soql(requests[0])


async def test_a_cursor_older_than_the_recycle_bin_starts_a_full_pass(make: Make) -> None:
    adapter, requests = make(query([account(1, "2026-01-05T11:00:00.000+0000")]))
    [page] = await fetch_all(adapter, CONN, "Account", '{"id":"001D000000Iqh01AAA","since":"2025-12-20T00:00:00Z"}')
    assert "WHERE" not in soql(requests[0])
    assert page.resync


async def test_a_quiet_sobject_asked_within_the_recycle_bin_stays_incremental(make: Make) -> None:
    adapter, requests = make(query([]))
    cursor = '{"checked":"2026-01-04T12:00:00Z","id":"001D000000Iqh01AAA","since":"2025-06-01T00:00:00Z"}'
    [page] = await fetch_all(adapter, CONN, "Account", cursor)
    assert "WHERE SystemModstamp > 2025-06-01T00:00:00.000Z" in soql(requests[0])
    assert not page.resync


async def test_a_cursor_not_asked_for_longer_than_the_recycle_bin_starts_a_full_pass(make: Make) -> None:
    adapter, requests = make(query([]))
    cursor = '{"checked":"2025-12-20T00:00:00Z","id":"001D000000Iqh01AAA","since":"2025-12-19T00:00:00Z"}'
    [page] = await fetch_all(adapter, CONN, "Account", cursor)
    assert "WHERE" not in soql(requests[0])
    assert page.resync


async def test_an_empty_pull_still_marks_the_cursor_checked(make: Make) -> None:
    adapter, _ = make(query([]))
    cursor = '{"checked":"2026-01-01T00:00:00Z","id":"001D000000Iqh01AAA","since":"2025-06-01T00:00:00Z"}'
    [page] = await fetch_all(adapter, CONN, "Account", cursor)
    assert orjson.loads(page.cursor or "") == {
        "id": "001D000000Iqh01AAA",
        "since": "2025-06-01T00:00:00.000000Z",
        "checked": "2026-01-05T12:00:00.000000Z",
    }


async def test_a_cursor_within_the_recycle_bin_is_incremental(make: Make) -> None:
    adapter, requests = make(query([]))
    [page] = await fetch_all(adapter, CONN, "Account", '{"id":"001D000000Iqh01AAA","since":"2025-12-22T00:00:00Z"}')
    assert "WHERE" in soql(requests[0])
    assert not page.resync


@pytest.mark.parametrize(
    ("answers", "raised", "message"),
    [
        (
            [sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")],
            RateLimited,
            "REQUEST_LIMIT_EXCEEDED",
        ),
        (
            [sf_error(400, "MALFORMED_QUERY", "unexpected token: FROM")],
            PermanentError,
            "MALFORMED_QUERY: unexpected token",
        ),
        (
            [sf_error(400, "INVALID_FIELD", "No such column 'Nmae' on entity 'Account'.")],
            PermanentError,
            "INVALID_FIELD",
        ),
        ([sf_error(403, "INSUFFICIENT_ACCESS", "insufficient access rights")], PermanentError, "INSUFFICIENT_ACCESS"),
        ([sf_error(503, "SERVER_UNAVAILABLE", "Server unavailable")] * 3, RetryableError, "SERVER_UNAVAILABLE"),
        ([sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")] * 2, PermanentError, "INVALID_SESSION_ID"),
    ],
)
async def test_error_table(make: Make, answers: list[httpx.Response], raised: type[CastielError], message: str) -> None:
    adapter, _ = make(*answers)
    caught = await fetch_fails(adapter, CONN, "Account", raised, message)
    if isinstance(caught, RateLimited):
        assert caught.retry_after == 3600


async def test_an_expired_query_locator_resumes_from_the_checkpoint(make: Make) -> None:
    adapter, _ = make(
        query([account(1, "2026-01-05T11:00:00.000+0000")], f"{V}/query/01gD0000002HU6KIAW-2000"),
        sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator"),
    )
    pages = adapter.fetch(CONN, "Account")
    first = await anext(pages)
    with pytest.raises(RetryableError, match="query locator expired"):
        await anext(pages)
    assert first.cursor is not None


async def test_an_unknown_sobject_is_a_clear_error(make: Make) -> None:
    adapter, _ = make(sf_error(404, "NOT_FOUND", "The requested resource does not exist"))
    with pytest.raises(PermanentError, match="no sObject Invoice__c in this org"):
        await fetch_all(adapter, connection(Provider.SALESFORCE, base_url=None, apiVersion="66.0"), "Invoice__c")


async def test_an_entity_type_that_is_not_an_sobject_name_is_refused(make: Make) -> None:
    adapter, requests = make()
    with pytest.raises(ConfigError, match="is not an sObject name"):
        await fetch_all(adapter, CONN, "Account WHERE 1=1")
    assert requests == []


async def test_a_401_is_refreshed_by_the_auth_flow(make: Make) -> None:
    flow = RefreshingAuth("00D-old", "00D-new")
    auth = RefreshingConnectionAuth(flow)
    auth.api_root = INSTANCE
    adapter, _ = make(sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid"), query([]), auth=auth)
    await fetch_all(adapter, CONN, "Account")
    assert flow.refreshes == 1


async def test_a_repeated_next_records_url_stops_the_fetch(make: Make) -> None:
    url = f"{V}/query/01gD0000002HU6KIAW-2000"
    adapter, _ = make(query([], url), query([], url))
    with pytest.raises(PermanentError, match="pagination loop"):
        await fetch_all(adapter, CONN, "Account")


async def test_no_instance_url_is_a_config_error(make: Make) -> None:
    adapter, _ = make(auth=StaticAuth())
    with pytest.raises(ConfigError, match="no API root"):
        await fetch_all(adapter, CONN, "Account")


async def test_single_changes_use_sobject_endpoints(make: Make) -> None:
    adapter, requests = make(
        json_response(201, {"id": "001D000000IqhNEWAA", "success": True, "errors": []}),
        httpx.Response(204),
        sf_error(404, "ENTITY_IS_DELETED", "entity is deleted"),
    )
    results = await adapter.push(
        CONN,
        [
            Change(
                "Account", Operation.CREATE, data={"Name": "New", "Id": "x", "SystemModstamp": "x", "attributes": {}}
            ),
            Change("Account", Operation.UPDATE, "001D000000Iqh01AAA", {"Name": "Renamed"}),
            Change("Contact", Operation.DELETE, "003D000000Iqh01AAA"),
        ],
    )
    assert [(r.status, r.external_id) for r in results] == [
        (PushStatus.CREATED, "001D000000IqhNEWAA"),
        (PushStatus.UPDATED, "001D000000Iqh01AAA"),
        (PushStatus.DELETED, "003D000000Iqh01AAA"),
    ]
    assert [(r.method, r.url.path, r.content) for r in requests] == [
        ("POST", f"{V}/sobjects/Account/", b'{"Name":"New"}'),
        ("PATCH", f"{V}/sobjects/Account/001D000000Iqh01AAA", b'{"Name":"Renamed"}'),
        ("DELETE", f"{V}/sobjects/Contact/003D000000Iqh01AAA", b""),
    ]


async def test_consecutive_changes_go_as_collections_with_a_result_per_record(make: Make) -> None:
    adapter, requests = make(
        json_response(
            200,
            [
                {"id": "001D000000Iqh01AAA", "success": True, "errors": []},
                {"success": False, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked", "fields": []}]},
                {
                    "success": False,
                    "errors": [{"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "no", "fields": []}],
                },
            ],
        ),
        json_response(
            200,
            [
                {"id": "001D000000Iqh04AAA", "success": True, "errors": []},
                {"success": False, "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted"}]},
            ],
        ),
    )
    updates = [Change("Account", Operation.UPDATE, f"001D000000Iqh0{n}AAA", {"Name": f"N{n}"}) for n in (1, 2, 3)]
    deletes = [Change("Account", Operation.DELETE, f"001D000000Iqh0{n}AAA") for n in (4, 5)]
    bad = Change("Account", Operation.UPDATE, "not-an-id", {"Name": "x"})
    results = await adapter.push(CONN, [*updates, *deletes])
    assert [r.status for r in results] == [
        PushStatus.UPDATED,
        PushStatus.FAILED,
        PushStatus.FAILED,
        PushStatus.DELETED,
        PushStatus.DELETED,
    ]
    assert isinstance(results[1].error, RetryableError)
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION: no" in (results[2].reason or "")
    assert (requests[0].method, requests[0].url.path) == ("PATCH", f"{V}/composite/sobjects")
    assert orjson.loads(requests[0].content) == {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Account"}, "Name": f"N{n}", "id": f"001D000000Iqh0{n}AAA"} for n in (1, 2, 3)
        ],
    }
    assert dict(requests[1].url.params) == {"ids": "001D000000Iqh04AAA,001D000000Iqh05AAA", "allOrNone": "false"}
    [refused] = await adapter.push(CONN, [bad])
    assert "is not a Salesforce Id" in (refused.reason or "")


async def test_collections_hold_at_most_200_records(make: Make) -> None:
    answers = [json_response(200, [{"id": "x", "success": True, "errors": []}] * size) for size in (200, 1)]
    adapter, requests = make(*answers)
    results = await adapter.push(CONN, [Change("Account", Operation.CREATE, data={"Name": str(n)}) for n in range(201)])
    assert len(results) == 201
    assert [len(orjson.loads(r.content)["records"]) for r in requests] == [200, 1]


async def test_a_failed_collection_fails_each_of_its_records(make: Make) -> None:
    adapter, _ = make(sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
    results = await adapter.push(CONN, [Change("Account", Operation.CREATE, data={"Name": str(n)}) for n in range(3)])
    assert all(isinstance(r.error, RateLimited) for r in results)


async def test_discovery_lists_queryable_objects_and_describes_the_configured_ones(make: Make) -> None:
    global_describe = {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [
            {"name": "Account", "label": "Account", "queryable": True},
            {"name": "AccountChangeEvent", "label": "Account Change Event", "queryable": False},
            {"name": "Contact", "label": "Contact", "queryable": True},
        ],
    }
    adapter, requests = make(
        json_response(200, {"DailyApiRequests": {"Max": 15000, "Remaining": 14982}}),
        json_response(200, global_describe),
        json_response(200, DESCRIBE),
    )
    report = await adapter.health_check(CONN.model_copy(update={"entity_types": ["Account"]}))
    assert report.ok
    assert [r.url.path for r in requests] == [f"{V}/limits", f"{V}/sobjects/", f"{V}/sobjects/Account/describe"]
    discovery = report.to_json()["discovery"]
    assert discovery["available"] == ["Account", "Contact"]
    assert discovery["entities"][0]["shardType"] == "account"
    assert {"name": "Logo__c", "type": "base64"} in discovery["entities"][0]["fields"]
