"""GitHub issues through ``httpx.MockTransport``, with bodies and headers shaped as GitHub documents them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from adapters.github import API_VERSION, GitHubAdapter
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

ROOT = "https://api.github.com"
ISSUES = f"{ROOT}/repos/octo-org/octo-repo/issues"
CONN = connection(Provider.GITHUB, base_url=None, repository="octo-org/octo-repo")


def issue(
    number: int, updated: str, *, title: str = "Found a bug", state: str = "open", pr: bool = False
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": 1000 + number,
        "node_id": f"MDU6SXNzdWUx{number}",
        "url": f"{ROOT}/repos/octo-org/octo-repo/issues/{number}",
        "html_url": f"https://github.com/octo-org/octo-repo/issues/{number}",
        "number": number,
        "state": state,
        "title": title,
        "body": "I'm having a problem with this.",
        "user": {"login": "octocat", "id": 1},
        "labels": [{"id": 208045946, "name": "bug", "color": "f29513"}],
        "assignees": [],
        "milestone": None,
        "locked": False,
        "comments": 0,
        "created_at": "2011-04-22T13:33:48Z",
        "updated_at": updated,
        "closed_at": None,
        "author_association": "COLLABORATOR",
        "state_reason": None,
    }
    if pr:
        body["pull_request"] = {"url": f"{ROOT}/repos/octo-org/octo-repo/pulls/{number}", "merged_at": None}
    return body


def page(items: list[dict[str, Any]], next_page: int | None = None) -> httpx.Response:
    headers = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4990", "x-ratelimit-reset": "1700003600"}
    if next_page is not None:
        headers["link"] = (
            f'<{ISSUES}?state=all&sort=updated&direction=asc&per_page=100&page={next_page}>; rel="next", '
            f'<{ISSUES}?state=all&sort=updated&direction=asc&per_page=100&page=9>; rel="last"'
        )
    return json_response(200, items, headers)


Make = Maker[GitHubAdapter]


@pytest.fixture
def make(redis_client: aioredis.Redis) -> Make:
    return maker(GitHubAdapter, redis_client)


async def test_the_next_page_is_asked_for_since_the_last_second_listed_and_pull_requests_are_left_out(
    make: Make,
) -> None:
    adapter, requests = make(
        page([issue(1, "2026-01-05T12:00:01Z"), issue(2, "2026-01-05T12:00:02Z", pr=True)], next_page=2),
        page([issue(3, "2026-01-05T12:00:03Z", state="closed")]),
    )
    pages = await fetch_all(adapter, CONN, "issue")
    assert [[r.external_id for r in p.records] for p in pages] == [["1001"], ["1003"]]
    first = requests[0]
    assert str(first.url) == f"{ISSUES}?state=all&sort=updated&direction=asc&per_page=100"
    assert first.headers["accept"] == "application/vnd.github+json"
    assert first.headers["x-github-api-version"] == API_VERSION
    assert first.headers["authorization"] == "Bearer test-token"
    # Since the second of the last item listed (a pull request's: it holds its place in the list), not page 2.
    assert (
        str(requests[1].url)
        == f"{ISSUES}?state=all&sort=updated&direction=asc&per_page=100&since=2026-01-05T12%3A00%3A02Z"
    )
    closed = pages[1].records[0]
    assert closed.to_json()["updatedAt"] == "2026-01-05T12:00:03.000000Z"
    assert closed.deleted is False  # closed is a state; GitHub lists no deletions
    assert closed.data["number"] == 3
    assert '"since":"2026-01-05T12:00:03.000000Z"' in (pages[1].cursor or "")


async def test_the_boundary_second_is_read_again_and_only_what_changed_there_is_emitted(make: Make) -> None:
    adapter, requests = make(
        page([issue(1, "2026-01-05T12:00:04Z"), issue(2, "2026-01-05T12:00:05Z"), issue(3, "2026-01-05T12:00:05Z")]),
        page(
            [
                issue(2, "2026-01-05T12:00:05Z"),  # unchanged: already emitted
                issue(3, "2026-01-05T12:00:05Z", title="edited in the same second"),
                issue(4, "2026-01-05T12:00:05Z"),  # new, same second
                issue(5, "2026-01-05T12:00:06Z"),
            ]
        ),
    )
    [first] = await fetch_all(adapter, CONN, "issue")
    [second] = await fetch_all(adapter, CONN, "issue", first.cursor)
    assert requests[1].url.params["since"] == "2026-01-05T12:00:05Z"
    assert [r.external_id for r in second.records] == ["1003", "1004", "1005"]
    assert second.records[0].data["title"] == "edited in the same second"


async def test_a_page_of_only_pull_requests_keeps_the_cursor(make: Make) -> None:
    adapter, _ = make(page([issue(9, "2026-01-05T12:00:09Z", pr=True)]))
    [only] = await fetch_all(adapter, CONN, "issue", '{"since":"2026-01-05T12:00:00.000000Z"}')
    assert only.records == []
    assert only.cursor == '{"seen":{},"since":"2026-01-05T12:00:00.000000Z"}'


@pytest.mark.parametrize(
    ("answer", "error", "retry_after", "message"),
    [
        (
            json_response(
                403,
                {"message": "API rate limit exceeded for user ID 1."},
                {"x-ratelimit-remaining": "0", "x-ratelimit-limit": "5000", "x-ratelimit-reset": "1700000900"},
            ),
            RateLimited,
            900.0,
            "API rate limit exceeded",
        ),
        (
            json_response(
                429,
                {"message": "API rate limit exceeded"},
                {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1700000060"},
            ),
            RateLimited,
            60.0,
            "API rate limit exceeded",
        ),
        (
            json_response(
                403,
                {"message": "You have exceeded a secondary rate limit."},
                {"retry-after": "30", "x-ratelimit-remaining": "4000"},
            ),
            RateLimited,
            30.0,
            "secondary rate limit",
        ),
        (
            json_response(
                403,
                {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."},
                {"x-ratelimit-remaining": "4000"},
            ),
            RateLimited,
            60.0,
            "secondary rate limit",
        ),
        (
            json_response(
                403, {"message": "Resource not accessible by integration"}, {"x-ratelimit-remaining": "4000"}
            ),
            PermanentError,
            None,
            "HTTP 403 Resource not accessible by integration",
        ),
        (
            json_response(404, {"message": "Not Found"}),
            PermanentError,
            None,
            "GET /repos/octo-org/octo-repo/issues: HTTP 404 Not Found",
        ),
        (
            json_response(422, {"message": "Validation Failed", "errors": [{"code": "invalid", "field": "since"}]}),
            PermanentError,
            None,
            "Validation Failed: invalid since",
        ),
    ],
)
async def test_error_table(
    make: Make, answer: httpx.Response, error: type[CastielError], retry_after: float | None, message: str
) -> None:
    adapter, _ = make(answer)
    raised = await fetch_fails(adapter, CONN, "issue", error, message)
    if retry_after is not None:
        assert isinstance(raised, RateLimited)
        assert raised.retry_after == retry_after


async def test_server_errors_are_retried_then_retryable(make: Make) -> None:
    adapter, requests = make(*[json_response(502, {"message": "Server Error"})] * 3)
    with pytest.raises(RetryableError, match="HTTP 502 Server Error"):
        await fetch_all(adapter, CONN, "issue")
    assert len(requests) == 3


async def test_a_401_is_refreshed_by_the_auth_flow_and_retried_once(make: Make) -> None:
    flow = RefreshingAuth("ghu_old", "ghu_new")
    adapter, requests = make(
        json_response(401, {"message": "Bad credentials"}),
        page([issue(1, "2026-01-05T12:00:01Z")]),
        auth=RefreshingConnectionAuth(flow),
    )
    pages = await fetch_all(adapter, CONN, "issue")
    assert [r.external_id for r in pages[0].records] == ["1001"]
    assert flow.refreshes == 1
    assert len(requests) == 2
    assert requests[-1].headers["authorization"] == "Bearer ghu_new"


async def test_a_link_that_repeats_stops_the_fetch(make: Make) -> None:
    adapter, _ = make(page([], next_page=2), page([], next_page=2))
    with pytest.raises(PermanentError, match="pagination loop"):
        await fetch_all(adapter, CONN, "issue")


async def test_push_creates_updates_and_closes(make: Make) -> None:
    adapter, requests = make(
        json_response(201, issue(7, "2026-01-05T12:00:00Z")),
        json_response(200, issue(3, "2026-01-05T12:00:00Z")),
        json_response(200, issue(3, "2026-01-05T12:00:00Z", state="closed")),
        json_response(
            422,
            {
                "message": "Validation Failed",
                "errors": [{"resource": "Issue", "code": "missing_field", "field": "title"}],
            },
        ),
    )
    results = await adapter.push(
        CONN,
        [
            Change(
                "issue", Operation.CREATE, data={"title": "New", "body": "b", "html_url": "ignored", "labels": ["bug"]}
            ),
            Change("issue", Operation.UPDATE, "1003", {"number": 3, "title": "Renamed"}),
            Change("issue", Operation.DELETE, "1003", {"number": 3}),
            Change("issue", Operation.CREATE, data={}),
            Change("issue", Operation.UPDATE, "1003", {"title": "no number"}),
        ],
    )
    assert [(r.status, r.external_id) for r in results[:3]] == [
        (PushStatus.CREATED, "1007"),
        (PushStatus.UPDATED, "1003"),
        (PushStatus.DELETED, "1003"),
    ]
    assert [(r.method, r.url.path, r.content) for r in requests[:3]] == [
        ("POST", "/repos/octo-org/octo-repo/issues", b'{"title":"New","body":"b","labels":["bug"]}'),
        ("PATCH", "/repos/octo-org/octo-repo/issues/3", b'{"title":"Renamed"}'),
        ("PATCH", "/repos/octo-org/octo-repo/issues/3", b'{"state":"closed"}'),
    ]
    assert results[3].status is PushStatus.FAILED
    assert "missing_field title" in (results[3].reason or "")
    assert "needs its number" in (results[4].reason or "")
    assert len(requests) == 4


async def test_health_check_and_discovery(make: Make) -> None:
    adapter, requests = make(
        json_response(200, {"resources": {"core": {"limit": 5000}}}),
        json_response(200, {"id": 1296269, "full_name": "octo-org/octo-repo"}),
    )
    report = await adapter.health_check(CONN)
    assert report.ok
    assert [r.url.path for r in requests] == ["/rate_limit", "/repos/octo-org/octo-repo"]
    assert report.discovery is not None
    entity = report.discovery.entities[0]
    assert (entity.name, entity.shard_type, entity.label) == ("issue", "issue", "octo-org/octo-repo")


@pytest.mark.parametrize("repository", [None, "no-slash", "a/b/c", "a b/c"])
async def test_the_repository_setting_is_checked(make: Make, repository: str | None) -> None:
    adapter, requests = make()
    settings = {} if repository is None else {"repository": repository}
    with pytest.raises(ConfigError, match="repository"):
        await fetch_all(adapter, connection(Provider.GITHUB, **settings), "issue")
    assert requests == []
