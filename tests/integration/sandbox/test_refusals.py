"""Each stand-in refuses, fails and counts as its provider does: missing tokens and version headers, injected 429s
and 5xx in the provider's own shape, and the rate-limit headers of every answer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from castiel.sandbox.notion import DATA_SOURCE_ID
from castiel.sandbox.state import Sandbox
from tests.integration.sandbox.conftest import AUTH

NOTION = {"Notion-Version": "2025-09-03"}
ISSUES = "/github/repos/acme/widgets/issues"
QUERY = f"/notion/v1/data_sources/{DATA_SOURCE_ID}/query"
HISTORY = "/slack/api/conversations.history?channel=C0SANDBOX1"
EVENTS = "/google/calendar/v3/calendars/primary/events"
ACCOUNTS = "/salesforce/services/data/v66.0/query?q=SELECT+Id+FROM+Account"


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "body"),
    [
        ("GET", ISSUES, {}, 401, {"message": "Requires authentication"}),
        ("GET", ISSUES, {"X-GitHub-Api-Version": "2020-01-01", **AUTH}, 400, None),
        ("POST", QUERY, AUTH, 400, {"object": "error", "status": 400, "code": "missing_version"}),
        ("POST", QUERY, {"Notion-Version": "2022-06-28", **AUTH}, 400, {"code": "validation_error"}),
        ("POST", QUERY, NOTION, 401, {"object": "error", "code": "unauthorized"}),
        ("GET", HISTORY, {}, 200, {"ok": False, "error": "not_authed"}),
        ("GET", EVENTS, {}, 401, None),
        ("GET", ACCOUNTS, {}, 401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
        ("GET", ACCOUNTS.replace("v66.0", "v10.0"), AUTH, 404, [{"errorCode": "NOT_FOUND"}]),
    ],
)
async def test_requests_are_refused_as_the_provider_would(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], status: int, body: Any
) -> None:
    answer = await client.request(method, path, headers=headers)
    assert answer.status_code == status
    if isinstance(body, dict):
        assert body.items() <= answer.json().items()
    elif isinstance(body, list):
        assert body[0].items() <= answer.json()[0].items()


async def test_the_salesforce_version_list_needs_no_session(client: httpx.AsyncClient) -> None:
    answer = await client.get("/salesforce/services/data/")
    assert answer.status_code == 200
    assert [item["version"] for item in answer.json()] == ["64.0", "65.0", "66.0"]


async def test_strict_tokens_accept_only_known_ones_and_never_a_revoked_one(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.tokens.strict = True
    sandbox.tokens.accepted.update({"good", "old"})
    sandbox.tokens.revoked.add("old")
    grant = sandbox.oauth.issue("github", "client-1")
    answers = [
        await client.get(ISSUES, headers={"Authorization": f"Bearer {token}"})
        for token in ("good", "unknown", "old", grant.access_token)
    ]
    assert [answer.status_code for answer in answers] == [200, 401, 401, 200]
    slack = await client.get(HISTORY, headers={"Authorization": "Bearer old"})
    assert slack.json() == {"ok": False, "error": "token_expired"}


FAULTS = [
    ("github", "GET", ISSUES, {}, 429, {"retry-after": "3"}, "secondary rate limit"),
    ("notion", "POST", QUERY, NOTION, 429, {"retry-after": "3"}, "rate_limited"),
    ("slack", "GET", HISTORY, {}, 429, {"retry-after": "3"}, "ratelimited"),
    ("google", "GET", EVENTS, {}, 429, {}, "rateLimitExceeded"),
    ("salesforce", "GET", ACCOUNTS, {}, 403, {"sforce-limit-info": "api-usage=15000/15000"}, "REQUEST_LIMIT_EXCEEDED"),
]


@pytest.mark.parametrize(("provider", "method", "path", "headers", "status", "expected", "text"), FAULTS)
async def test_an_injected_429_has_the_providers_shape(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    provider: str,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    expected: dict[str, str],
    text: str,
) -> None:
    sandbox.faults.configure(provider, retry_after=3, next_statuses=[429])
    answer = await client.request(method, path, headers={**AUTH, **headers})
    assert answer.status_code == status
    assert expected.items() <= dict(answer.headers).items()
    assert text in answer.text
    assert (await client.request(method, path, headers={**AUTH, **headers})).status_code == 200


@pytest.mark.parametrize(("provider", "method", "path", "headers"), [fault[:4] for fault in FAULTS])
async def test_injected_server_errors(
    client: httpx.AsyncClient, sandbox: Sandbox, provider: str, method: str, path: str, headers: dict[str, str]
) -> None:
    sandbox.faults.configure(provider, next_statuses=[500, 502, 503])
    statuses = [(await client.request(method, path, headers={**AUTH, **headers})).status_code for _ in range(4)]
    assert statuses == [500, 502, 503, 200]


async def test_github_counts_the_hours_requests(client: httpx.AsyncClient) -> None:
    first = await client.get(ISSUES, headers=AUTH)
    second = await client.get(ISSUES, headers=AUTH)
    assert int(first.headers["x-ratelimit-remaining"]) - int(second.headers["x-ratelimit-remaining"]) == 1
    assert first.headers["x-ratelimit-limit"] == "5000"
    assert int(first.headers["x-ratelimit-reset"]) % 3600 == 0


async def test_salesforce_counts_the_days_requests(client: httpx.AsyncClient) -> None:
    first = await client.get(ACCOUNTS, headers=AUTH)
    second = await client.get(ACCOUNTS, headers=AUTH)
    used = [
        int(answer.headers["sforce-limit-info"].removeprefix("api-usage=").split("/")[0]) for answer in (first, second)
    ]
    assert used[1] == used[0] + 1
