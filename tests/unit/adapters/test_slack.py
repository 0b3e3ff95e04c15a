"""Slack ``conversations.history`` and ``chat.*`` through ``httpx.MockTransport``, shaped as Slack documents them."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from adapters.records import Change, PushStatus
from adapters.slack import SlackAdapter
from castiel.errors import CastielError, ConfigError, Deferred, PermanentError, RateLimited, RetryableError
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

CONN = connection(Provider.SLACK, base_url=None, channel="C1234567890")


def message(ts: str, text: str = "Hello world", **extra: Any) -> dict[str, Any]:
    return {"type": "message", "user": "U012AB3CDE", "text": text, "ts": ts, **extra}


def history(messages: list[dict[str, Any]], next_cursor: str = "") -> httpx.Response:
    return json_response(
        200,
        {
            "ok": True,
            "messages": messages,
            "has_more": bool(next_cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        },
    )


def failure(code: str, **extra: Any) -> httpx.Response:
    return json_response(200, {"ok": False, "error": code, **extra})


Make = Maker[SlackAdapter]


@pytest.fixture
def make(redis_client: aioredis.Redis) -> Make:
    return maker(SlackAdapter, redis_client)


async def test_a_pass_reads_newest_first_and_moves_oldest_only_at_its_end(make: Make) -> None:
    adapter, requests = make(
        history([message("1512085950.000216"), message("1512085950.000200")], "bmV4dF90czoxNTEy"),
        history([message("1512085861.000543", edited={"user": "U1", "ts": "1512090000.000001"})]),
    )
    pages = await fetch_all(adapter, CONN, "message", "1512085000.000000")
    assert [[r.external_id for r in p.records] for p in pages] == [
        ["1512085950.000216", "1512085950.000200"],
        ["1512085861.000543"],
    ]
    # mid-pass: the pass's oldest, Slack's cursor verbatim, and the highest ts read so far
    assert orjson.loads(pages[0].cursor or "") == {
        "oldest": "1512085000.000000",
        "next": "bmV4dF90czoxNTEy",
        "high": "1512085950.000216",
    }
    assert orjson.loads(pages[1].cursor or "") == {"oldest": "1512085950.000216"}
    assert dict(requests[0].url.params) == {"channel": "C1234567890", "limit": "200", "oldest": "1512085000.000000"}
    assert requests[1].url.params["cursor"] == "bmV4dF90czoxNTEy"
    edited = pages[1].records[0]
    assert edited.to_json()["updatedAt"] == "2017-12-01T01:00:00.000001Z"
    assert edited.data["channel"] == "C1234567890"


async def test_an_interrupted_pass_resumes_from_slacks_cursor_with_the_same_oldest(make: Make) -> None:
    adapter, requests = make(history([message("1512085861.000543")]))
    cursor = '{"high":"1512085950.000216","next":"bmV4dF90czoxNTEy","oldest":"1512085000.000000"}'
    [page] = await fetch_all(adapter, CONN, "message", cursor)
    assert requests[0].url.params["cursor"] == "bmV4dF90czoxNTEy"
    assert requests[0].url.params["oldest"] == "1512085000.000000"
    # the high seen before the interruption survives the resumed pass
    assert orjson.loads(page.cursor or "") == {"oldest": "1512085950.000216"}


async def test_timestamps_compare_as_numbers_not_text(make: Make) -> None:
    adapter, _ = make(history([message("999999999.000001"), message("1000000000.000001")]))
    [page] = await fetch_all(adapter, CONN, "message")
    assert orjson.loads(page.cursor or "") == {"oldest": "1000000000.000001"}


async def test_a_tombstone_is_a_deletion(make: Make) -> None:
    adapter, _ = make(history([message("1512085950.000216", "This message was deleted.", subtype="tombstone")]))
    [page] = await fetch_all(adapter, CONN, "message")
    assert page.records[0].deleted


async def test_an_unlisted_app_reads_15_messages_once_a_minute(make: Make) -> None:
    adapter, requests = make(history([message("1512085950.000216")], "next"), history([]))
    unlisted = connection(Provider.SLACK, base_url=None, channel="C1", slackAppDistribution="unlisted")
    pages = adapter.fetch(unlisted, "message")
    first = await anext(pages)
    assert requests[0].url.params["limit"] == "15"
    with pytest.raises(Deferred, match=r"rate limit \(operation\)"):
        await anext(pages)
    assert len(requests) == 1
    assert first.cursor is not None  # checkpointed: the deferred run resumes after the first page


async def test_an_unknown_app_distribution_is_a_config_error(make: Make) -> None:
    adapter, _ = make()
    odd = connection(Provider.SLACK, base_url=None, channel="C1", slackAppDistribution="public")
    with pytest.raises(
        ConfigError, match="slackAppDistribution 'public' is not one of: internal, marketplace, unlisted"
    ):
        await fetch_all(adapter, odd, "message")


@pytest.mark.parametrize(
    ("answers", "raised", "message"),
    [
        ([failure("ratelimited")], RateLimited, "HTTP 200 ratelimited"),
        (
            [json_response(429, {"ok": False, "error": "ratelimited"}, {"retry-after": "30"})],
            RateLimited,
            "ratelimited",
        ),
        ([failure("channel_not_found")], PermanentError, "channel_not_found"),
        (
            [failure("missing_scope", needed="channels:history", provided="chat:write")],
            PermanentError,
            "needed: channels:history",
        ),
        ([failure("not_authed")], PermanentError, "not_authed"),
        ([failure("account_inactive")], PermanentError, "account_inactive"),
        ([failure("invalid_auth")] * 2, PermanentError, "invalid_auth \\(still rejected"),
        ([failure("internal_error")] * 3, RetryableError, "internal_error"),
        (
            [json_response(503, {"ok": False, "error": "service_unavailable"})] * 3,
            RetryableError,
            "service_unavailable",
        ),
    ],
)
async def test_error_table(make: Make, answers: list[httpx.Response], raised: type[CastielError], message: str) -> None:
    adapter, _ = make(*answers)
    caught = await fetch_fails(adapter, CONN, "message", raised, message)
    if isinstance(caught, RateLimited) and answers[0].status_code == 429:
        assert caught.retry_after == 30


async def test_token_expired_in_a_200_asks_for_the_auth_again(make: Make) -> None:
    auth = StaticAuth()
    adapter, requests = make(failure("token_expired"), history([]), auth=auth)
    await fetch_all(adapter, CONN, "message")
    assert auth.asked == 2
    assert len(requests) == 2


async def test_a_401_is_refreshed_by_the_auth_flow(make: Make) -> None:
    flow = RefreshingAuth("xoxe.xoxp-old", "xoxe.xoxp-new")
    adapter, _ = make(
        json_response(401, {"ok": False, "error": "invalid_auth"}), history([]), auth=RefreshingConnectionAuth(flow)
    )
    await fetch_all(adapter, CONN, "message")
    assert flow.refreshes == 1


async def test_a_repeated_cursor_stops_the_fetch(make: Make) -> None:
    adapter, _ = make(history([], "c1"), history([], "c1"))
    with pytest.raises(PermanentError, match="pagination loop"):
        await fetch_all(adapter, CONN, "message")


async def test_push_posts_updates_and_deletes(make: Make) -> None:
    adapter, requests = make(
        json_response(
            200,
            {"ok": True, "channel": "C1234567890", "ts": "1503435956.000247", "message": message("1503435956.000247")},
        ),
        json_response(200, {"ok": True, "channel": "C1234567890", "ts": "1503435956.000247", "text": "Updated"}),
        json_response(200, {"ok": True, "channel": "C1234567890", "ts": "1503435956.000247"}),
        failure("message_not_found"),
        failure("cant_update_message"),
    )
    results = await adapter.push(
        CONN,
        [
            Change("message", Operation.CREATE, data={"text": "Hello", "ts": "ignored", "user": "ignored"}),
            Change("message", Operation.UPDATE, "1503435956.000247", {"text": "Updated"}),
            Change("message", Operation.DELETE, "1503435956.000247"),
            Change("message", Operation.DELETE, "1503435000.000001"),
            Change("message", Operation.UPDATE, "1503435000.000002", {"text": "x"}),
            Change("message", Operation.UPDATE, "not-a-ts", {"text": "x"}),
        ],
    )
    assert [(r.status, r.external_id) for r in results[:4]] == [
        (PushStatus.CREATED, "1503435956.000247"),
        (PushStatus.UPDATED, "1503435956.000247"),
        (PushStatus.DELETED, "1503435956.000247"),
        (PushStatus.DELETED, "1503435000.000001"),  # already gone
    ]
    assert "cant_update_message" in (results[4].reason or "")
    assert "is not a Slack ts" in (results[5].reason or "")
    assert [(r.url.path, orjson.loads(r.content)) for r in requests[:3]] == [
        ("/api/chat.postMessage", {"channel": "C1234567890", "text": "Hello"}),
        ("/api/chat.update", {"channel": "C1234567890", "ts": "1503435956.000247", "text": "Updated"}),
        ("/api/chat.delete", {"channel": "C1234567890", "ts": "1503435956.000247"}),
    ]


async def test_health_check_runs_outside_the_history_limit(make: Make) -> None:
    adapter, requests = make(
        json_response(200, {"ok": True, "url": "https://acme.slack.com/", "team": "Acme", "user_id": "U1"}),
        json_response(200, {"ok": True, "channel": {"id": "C1234567890", "name": "general"}}),
        history([]),
    )
    unlisted = CONN.model_copy(update={"settings": {"channel": "C1234567890", "slackAppDistribution": "unlisted"}})
    report = await adapter.health_check(unlisted)
    assert report.ok
    assert report.discovery is not None
    assert report.discovery.entities[0].label == "#general"
    # the one history call a minute is still there for the sync
    await fetch_all(adapter, unlisted, "message")
    assert [r.url.path for r in requests] == ["/api/auth.test", "/api/conversations.info", "/api/conversations.history"]
