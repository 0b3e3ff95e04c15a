"""Google Calendar events through ``httpx.MockTransport``, with bodies shaped as Google documents them."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from adapters.google import GoogleCalendarAdapter
from adapters.records import Change, PushStatus
from castiel.errors import CastielError, PermanentError, RateLimited, RetryableError
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

CONN = connection(Provider.GOOGLE, base_url=None, calendarId="team@group.calendar.google.com")
EVENTS = "/calendar/v3/calendars/team@group.calendar.google.com/events"
SYNC_TOKEN = "CPDAlvWDx70CEPDAlvWDx70CGAU="


def event(n: int, updated: str = "2026-01-05T12:00:00.000Z", status: str = "confirmed") -> dict[str, Any]:
    if status == "cancelled":
        return {"kind": "calendar#event", "etag": f'"{n}"', "id": f"evt{n:04d}", "status": "cancelled"}
    return {
        "kind": "calendar#event",
        "etag": f'"31{n:04d}"',
        "id": f"evt{n:04d}",
        "status": status,
        "htmlLink": f"https://www.google.com/calendar/event?eid=evt{n:04d}",
        "created": "2025-12-01T09:00:00.000Z",
        "updated": updated,
        "summary": f"Standup {n}",
        "start": {"dateTime": "2026-01-06T09:00:00+01:00"},
        "end": {"dateTime": "2026-01-06T09:15:00+01:00"},
    }


def listing(
    items: list[dict[str, Any]], *, page_token: str | None = None, sync_token: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {
        "kind": "calendar#events",
        "etag": '"p33kd9"',
        "summary": "Team",
        "updated": "2026-01-05T12:00:00.000Z",
        "timeZone": "Europe/Paris",
        "accessRole": "owner",
        "items": items,
    }
    if page_token:
        body["nextPageToken"] = page_token
    if sync_token:
        body["nextSyncToken"] = sync_token
    return json_response(200, body)


def google_error(status: int, reason: str, message: str, domain: str = "global") -> httpx.Response:
    return json_response(
        status,
        {
            "error": {
                "errors": [{"domain": domain, "reason": reason, "message": message}],
                "code": status,
                "message": message,
            }
        },
    )


Make = Maker[GoogleCalendarAdapter]


@pytest.fixture
def make(redis_client: aioredis.Redis) -> Make:
    return maker(GoogleCalendarAdapter, redis_client)


async def test_a_full_pass_pages_and_its_last_page_gives_the_sync_token(make: Make) -> None:
    adapter, requests = make(
        listing([event(1), event(2)], page_token="p2"),
        listing([event(3)], sync_token=SYNC_TOKEN),
    )
    pages = await fetch_all(adapter, CONN, "event")
    assert [[r.external_id for r in p.records] for p in pages] == [["evt0001", "evt0002"], ["evt0003"]]
    assert [orjson.loads(p.cursor or "") for p in pages] == [{"pageToken": "p2"}, {"syncToken": SYNC_TOKEN}]
    assert requests[0].url.path == EVENTS
    assert dict(requests[0].url.params) == {"maxResults": "250"}
    assert dict(requests[1].url.params) == {"maxResults": "250", "pageToken": "p2"}


async def test_an_incremental_pass_sends_only_the_sync_token_and_sees_cancellations(make: Make) -> None:
    adapter, requests = make(
        listing([event(1, "2026-01-06T08:00:00.000Z"), event(2, status="cancelled")], sync_token="next-token")
    )
    [page] = await fetch_all(adapter, CONN, "event", orjson.dumps({"syncToken": SYNC_TOKEN}).decode())
    assert dict(requests[0].url.params) == {"maxResults": "250", "syncToken": SYNC_TOKEN}
    assert [(r.external_id, r.deleted, r.updated_at is None) for r in page.records] == [
        ("evt0001", False, False),
        ("evt0002", True, True),
    ]
    assert orjson.loads(page.cursor or "") == {"syncToken": "next-token"}


async def test_a_bare_cursor_is_a_sync_token_kept_verbatim(make: Make) -> None:
    adapter, requests = make(listing([], sync_token="t2"))
    await fetch_all(adapter, CONN, "event", SYNC_TOKEN)
    assert requests[0].url.params["syncToken"] == SYNC_TOKEN


async def test_an_interrupted_incremental_pass_resumes_with_both_tokens(make: Make) -> None:
    adapter, requests = make(listing([event(5)], sync_token="t3"))
    cursor = orjson.dumps({"syncToken": SYNC_TOKEN, "pageToken": "p7"}).decode()
    await fetch_all(adapter, CONN, "event", cursor)
    assert dict(requests[0].url.params) == {"maxResults": "250", "syncToken": SYNC_TOKEN, "pageToken": "p7"}


async def test_410_gone_starts_a_clean_full_pass_marked_resync(make: Make) -> None:
    adapter, requests = make(
        google_error(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required."),
        listing([event(1)], sync_token="fresh"),
    )
    pages = await fetch_all(adapter, CONN, "event", SYNC_TOKEN)
    assert [(p.resync, len(p.records)) for p in pages] == [(True, 1)]
    assert "syncToken" not in requests[1].url.params
    assert orjson.loads(pages[0].cursor or "") == {"syncToken": "fresh"}


async def test_410_on_the_fresh_pass_too_is_permanent(make: Make) -> None:
    gone = google_error(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
    adapter, _ = make(gone, gone)
    with pytest.raises(PermanentError, match="fullSyncRequired"):
        await fetch_all(adapter, CONN, "event", SYNC_TOKEN)


@pytest.mark.parametrize(
    ("answers", "raised", "message"),
    [
        (
            [google_error(403, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits")],
            RateLimited,
            "rateLimitExceeded",
        ),
        (
            [google_error(403, "userRateLimitExceeded", "User Rate Limit Exceeded", "usageLimits")],
            RateLimited,
            "userRateLimit",
        ),
        (
            [google_error(429, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits")],
            RateLimited,
            "Rate Limit Exceeded",
        ),
        ([google_error(403, "forbidden", "Forbidden")], PermanentError, "HTTP 403 forbidden: Forbidden"),
        ([google_error(404, "notFound", "Not Found")], PermanentError, "notFound"),
        (
            [
                google_error(
                    400,
                    "syncTokenWithRequestRestrictions",
                    "Sync token cannot be used with other request restrictions.",
                )
            ],
            PermanentError,
            "syncTokenWithRequestRestrictions",
        ),
        ([google_error(503, "backendError", "Backend Error")] * 3, RetryableError, "backendError"),
        ([google_error(500, "backendError", "Backend Error")] * 3, RetryableError, "Backend Error"),
    ],
)
async def test_error_table(make: Make, answers: list[httpx.Response], raised: type[CastielError], message: str) -> None:
    adapter, _ = make(*answers)
    await fetch_fails(adapter, CONN, "event", raised, message)


async def test_a_401_is_refreshed_by_the_auth_flow(make: Make) -> None:
    flow = RefreshingAuth("ya29.old", "ya29.new")
    adapter, _ = make(
        google_error(401, "authError", "Invalid Credentials"), listing([]), auth=RefreshingConnectionAuth(flow)
    )
    await fetch_all(adapter, CONN, "event")
    assert flow.refreshes == 1


async def test_a_repeated_page_token_stops_the_fetch(make: Make) -> None:
    adapter, _ = make(listing([], page_token="same"), listing([], page_token="same"))
    with pytest.raises(PermanentError, match="pagination loop: the provider sent page token 'same'"):
        await fetch_all(adapter, CONN, "event")


async def test_the_default_calendar_is_primary(make: Make) -> None:
    adapter, requests = make(listing([]))
    await fetch_all(adapter, connection(Provider.GOOGLE, base_url=None), "event")
    assert requests[0].url.path == "/calendar/v3/calendars/primary/events"


async def test_push_inserts_patches_and_deletes(make: Make) -> None:
    adapter, requests = make(
        json_response(200, event(9)),
        json_response(200, event(1)),
        httpx.Response(204),
        google_error(410, "deleted", "Resource has been deleted"),
        google_error(400, "invalid", "Invalid start time."),
    )
    results = await adapter.push(
        CONN,
        [
            Change("event", Operation.CREATE, data={"summary": "New", "start": {"date": "2026-01-07"}}),
            Change("event", Operation.UPDATE, "evt0001", {"summary": "Moved"}),
            Change("event", Operation.DELETE, "evt0001"),
            Change("event", Operation.DELETE, "evt0002"),
            Change("event", Operation.UPDATE, "evt0003", {"start": {}}),
        ],
    )
    assert [(r.status, r.external_id) for r in results[:4]] == [
        (PushStatus.CREATED, "evt0009"),
        (PushStatus.UPDATED, "evt0001"),
        (PushStatus.DELETED, "evt0001"),
        (PushStatus.DELETED, "evt0002"),
    ]
    assert "invalid: Invalid start time." in (results[4].reason or "")
    assert [(r.method, r.url.path) for r in requests[:3]] == [
        ("POST", EVENTS),
        ("PATCH", f"{EVENTS}/evt0001"),
        ("DELETE", f"{EVENTS}/evt0001"),
    ]


async def test_health_check_and_discovery(make: Make) -> None:
    adapter, requests = make(
        json_response(200, {"kind": "calendar#calendarList", "items": []}),
        json_response(200, {"kind": "calendar#calendar", "id": "team@group.calendar.google.com", "summary": "Team"}),
    )
    report = await adapter.health_check(CONN)
    assert report.ok
    assert [r.url.path for r in requests] == [
        "/calendar/v3/users/me/calendarList",
        "/calendar/v3/calendars/team@group.calendar.google.com",
    ]
    assert report.discovery is not None
    assert report.discovery.entities[0].label == "Team"
