"""Notion (2025-09-03 data sources) through ``httpx.MockTransport``, with bodies shaped as Notion documents them."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from adapters.notion import NOTION_VERSION, NotionAdapter
from adapters.records import Change, PushStatus
from castiel.errors import CastielError, ConfigError, PermanentError, RateLimited, RetryableError
from castiel.models import Operation, Provider
from tests.unit.adapters.support import (
    Maker,
    RefreshingAuth,
    RefreshingConnectionAuth,
    connection,
    fetch_all,
    fetch_fails,
    json_response,
    maker,
)

DS = "2f26ee68-df30-4251-aad4-8ddc420cba3d"
DB = "842a0286-cef0-46a8-abba-eac4c8ca644e"
CONN = connection(Provider.NOTION, base_url=None, dataSourceId=DS)


def notion_page(n: int, edited: str, *, title: str = "Bug bash", trashed: bool = False) -> dict[str, Any]:
    return {
        "object": "page",
        "id": f"be633bf1-dfa0-436d-b259-5711290000{n:02d}",
        "created_time": "2022-10-24T22:54:00.000Z",
        "last_edited_time": edited,
        "created_by": {"object": "user", "id": "c2f20311-9e54-4d11-8c79-7398424ae41e"},
        "last_edited_by": {"object": "user", "id": "9188c6a5-7381-452f-b3dc-d4865aa89bdf"},
        "cover": None,
        "icon": None,
        "parent": {"type": "data_source_id", "data_source_id": DS, "database_id": DB},
        "archived": trashed,
        "in_trash": trashed,
        "properties": {"Name": {"id": "title", "type": "title", "title": [{"plain_text": title}]}},
        "url": f"https://www.notion.so/Bug-bash-{n}",
        "public_url": None,
    }


def listing(results: list[dict[str, Any]], next_cursor: str | None = None) -> httpx.Response:
    return json_response(
        200,
        {
            "object": "list",
            "results": results,
            "next_cursor": next_cursor,
            "has_more": next_cursor is not None,
            "type": "page_or_data_source",
            "page_or_data_source": {},
            "request_id": "5e0b3bf4-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
        },
    )


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return json_response(status, {"object": "error", "status": status, "code": code, "message": message}, headers)


Make = Maker[NotionAdapter]


@pytest.fixture
def make(redis_client: aioredis.Redis) -> Make:
    return maker(NotionAdapter, redis_client)


def body(request: httpx.Request) -> Any:
    return orjson.loads(request.content)


async def test_pages_follow_next_cursor_in_the_body(make: Make) -> None:
    adapter, requests = make(
        listing([notion_page(1, "2026-01-05T12:00:00.000Z")], next_cursor="be633bf1-next"),
        listing([notion_page(2, "2026-01-05T12:03:00.000Z")]),
    )
    pages = await fetch_all(adapter, CONN, "page")
    assert [[r.external_id[-2:] for r in p.records] for p in pages] == [["01"], ["02"]]
    assert requests[0].url.path == f"/v1/data_sources/{DS}/query"
    assert requests[0].headers["notion-version"] == NOTION_VERSION
    assert body(requests[0]) == {
        "page_size": 100,
        "sorts": [{"timestamp": "last_edited_time", "direction": "ascending"}],
    }
    assert body(requests[1])["start_cursor"] == "be633bf1-next"


async def test_the_boundary_minute_is_read_again_and_only_what_changed_there_is_emitted(make: Make) -> None:
    adapter, requests = make(
        listing([notion_page(1, "2026-01-05T12:07:00.000Z"), notion_page(2, "2026-01-05T12:07:00.000Z")]),
        listing(
            [
                notion_page(1, "2026-01-05T12:07:00.000Z"),
                notion_page(2, "2026-01-05T12:07:00.000Z", title="edited again within the minute"),
                notion_page(3, "2026-01-05T12:07:00.000Z"),
            ]
        ),
    )
    [first] = await fetch_all(adapter, CONN, "page")
    [second] = await fetch_all(adapter, CONN, "page", first.cursor)
    assert body(requests[1])["filter"] == {
        "timestamp": "last_edited_time",
        "last_edited_time": {"on_or_after": "2026-01-05T12:07:00.000Z"},
    }
    assert [r.external_id[-2:] for r in second.records] == ["02", "03"]


async def test_a_trashed_page_is_a_deletion(make: Make) -> None:
    archived_only = notion_page(2, "2026-01-05T12:00:00.000Z")
    del archived_only["in_trash"]  # the shape of versions before in_trash existed
    archived_only["archived"] = True
    adapter, _ = make(listing([notion_page(1, "2026-01-05T12:00:00.000Z", trashed=True), archived_only]))
    [only] = await fetch_all(adapter, CONN, "page")
    assert [r.deleted for r in only.records] == [True, True]


@pytest.mark.parametrize(
    ("answers", "raised", "message"),
    [
        (
            [error(429, "rate_limited", "You have been rate limited.", {"retry-after": "7"})],
            RateLimited,
            "rate_limited",
        ),
        ([error(400, "validation_error", "body.filter is invalid")], PermanentError, "validation_error: body.filter"),
        ([error(404, "object_not_found", "Could not find data_source")], PermanentError, "object_not_found"),
        ([error(403, "restricted_resource", "Insufficient permissions")], PermanentError, "restricted_resource"),
        ([error(529, "service_overload", "Overloaded")] * 3, RetryableError, "service_overload"),
        ([error(500, "internal_server_error", "Unexpected error")] * 3, RetryableError, "internal_server_error"),
        ([error(409, "conflict_error", "Conflict occurred while saving")] * 3, RetryableError, "conflict_error"),
    ],
)
async def test_error_table(make: Make, answers: list[httpx.Response], raised: type[CastielError], message: str) -> None:
    adapter, _ = make(*answers)
    caught = await fetch_fails(adapter, CONN, "page", raised, message)
    if isinstance(caught, RateLimited):
        assert caught.retry_after == 7


async def test_a_conflict_is_retried(make: Make) -> None:
    adapter, requests = make(error(409, "conflict_error", "Conflict"), listing([]))
    await fetch_all(adapter, CONN, "page")
    assert len(requests) == 2


async def test_a_401_is_refreshed_by_the_auth_flow(make: Make) -> None:
    flow = RefreshingAuth("secret_old", "secret_new")
    adapter, requests = make(
        error(401, "unauthorized", "API token is invalid."), listing([]), auth=RefreshingConnectionAuth(flow)
    )
    await fetch_all(adapter, CONN, "page")
    assert flow.refreshes == 1
    assert len(requests) == 2


async def test_a_repeated_cursor_stops_the_fetch(make: Make) -> None:
    adapter, _ = make(listing([], "c1"), listing([], "c1"))
    with pytest.raises(PermanentError, match="pagination loop"):
        await fetch_all(adapter, CONN, "page")


async def test_a_database_is_resolved_to_its_data_source_once(make: Make) -> None:
    database = {"object": "database", "id": DB, "data_sources": [{"id": DS, "name": "Tasks"}]}
    adapter, requests = make(json_response(200, database), listing([]), listing([]))
    by_database = connection(Provider.NOTION, base_url=None, databaseId=DB)
    await fetch_all(adapter, by_database, "page")
    await fetch_all(adapter, by_database, "page")
    assert [r.url.path for r in requests] == [
        f"/v1/databases/{DB}",
        f"/v1/data_sources/{DS}/query",
        f"/v1/data_sources/{DS}/query",
    ]


async def test_a_database_with_several_data_sources_needs_one_named(make: Make) -> None:
    database = {"object": "database", "id": DB, "data_sources": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}]}
    adapter, _ = make(json_response(200, database))
    with pytest.raises(ConfigError, match=r"several data sources; set dataSourceId: A \(a\), B \(b\)"):
        await fetch_all(adapter, connection(Provider.NOTION, base_url=None, databaseId=DB), "page")


async def test_a_connection_naming_neither_is_a_config_error(make: Make) -> None:
    adapter, requests = make()
    with pytest.raises(ConfigError, match="'dataSourceId' or 'databaseId'"):
        await fetch_all(adapter, connection(Provider.NOTION, base_url=None), "page")
    assert requests == []


async def test_push_creates_under_the_data_source_updates_and_trashes(make: Make) -> None:
    created = notion_page(9, "2026-01-05T12:00:00.000Z")
    adapter, requests = make(
        json_response(200, created),
        json_response(200, notion_page(1, "2026-01-05T12:00:00.000Z")),
        json_response(200, notion_page(1, "2026-01-05T12:00:00.000Z", trashed=True)),
    )
    properties = {"Name": {"title": [{"text": {"content": "New"}}]}}
    results = await adapter.push(
        CONN,
        [
            Change("page", Operation.CREATE, data=properties),
            Change("page", Operation.UPDATE, "p1", {"properties": properties, "icon": {"emoji": "🐞"}}),
            Change("page", Operation.DELETE, "p1"),
        ],
    )
    assert [(r.status, r.external_id) for r in results] == [
        (PushStatus.CREATED, created["id"]),
        (PushStatus.UPDATED, notion_page(1, "x")["id"]),
        (PushStatus.DELETED, notion_page(1, "x")["id"]),
    ]
    assert [(r.method, r.url.path, body(r)) for r in requests] == [
        ("POST", "/v1/pages", {"parent": {"type": "data_source_id", "data_source_id": DS}, "properties": properties}),
        ("PATCH", "/v1/pages/p1", {"properties": properties, "icon": {"emoji": "🐞"}}),
        ("PATCH", "/v1/pages/p1", {"in_trash": True}),
    ]


async def test_discovery_reads_the_data_source_schema(make: Make) -> None:
    schema = {
        "object": "data_source",
        "id": DS,
        "title": [{"type": "text", "plain_text": "Tasks"}],
        "properties": {
            "Name": {"id": "title", "name": "Name", "type": "title"},
            "Due": {"id": "M%3BBw", "name": "Due", "type": "date"},
        },
    }
    adapter, requests = make(json_response(200, {"object": "user", "type": "bot"}), json_response(200, schema))
    report = await adapter.health_check(CONN)
    assert report.ok
    assert [r.url.path for r in requests] == ["/v1/users/me", f"/v1/data_sources/{DS}"]
    assert report.to_json()["discovery"]["entities"] == [
        {
            "name": "page",
            "shardType": "page",
            "label": "Tasks",
            "fields": [{"name": "Name", "type": "title"}, {"name": "Due", "type": "date"}],
        }
    ]
