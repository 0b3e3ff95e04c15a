"""The ``/_sandbox`` controls over HTTP: changes on demand, faults, recorded pushes, tokens, reset, webhooks — and bad
input answered with a 400 or 404 and a reason, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from castiel.sandbox.server import SandboxServer
from castiel.sandbox.state import Sandbox
from tests.integration.sandbox.conftest import AUTH, RECORDS


async def test_the_summary_names_each_providers_base_url(client: httpx.AsyncClient, server: SandboxServer) -> None:
    summary = (await client.get("/_sandbox")).json()
    assert summary["baseUrls"] == {
        "salesforce": f"{server.url}/salesforce",
        "notion": f"{server.url}/notion",
        "slack": f"{server.url}/slack/api",
        "github": f"{server.url}/github",
        "google": f"{server.url}/google",
    }
    assert summary["records"]["salesforce"] == {"Account": RECORDS, "Contact": RECORDS}


async def test_changes_on_demand(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    edited = (await client.post("/_sandbox/github/edit", json={"count": 2})).json()["edited"]
    assert [issue["title"].endswith("(edited)") for issue in edited] == [True, True]
    deleted = (await client.post("/_sandbox/salesforce/delete", json={"count": 1, "entityType": "Contact"})).json()
    assert deleted["deleted"][0].startswith("003")
    created = (await client.post("/_sandbox/notion/create", json={"count": 3})).json()["created"]
    assert len(created) == 3
    assert len(sandbox.notion.pages) == RECORDS + 3
    by_id = (await client.post("/_sandbox/slack/edit", json={"ids": [sandbox.slack.ids("message", 1)[0]]})).json()
    assert by_id["edited"][0]["edited"]


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        ("/_sandbox/jira/edit", {}, 404, "no sandbox provider 'jira'"),
        ("/_sandbox/github/edit", {"ids": ["42"]}, 404, "no record '42'"),
        ("/_sandbox/github/explode", {}, 404, "no sandbox change 'explode'"),
        ("/_sandbox/github/edit", {"ids": "1"}, 400, "ids must be a list"),
        ("/_sandbox/github/edit", {"entityType": "repo"}, 404, "has no 'repo'"),
        ("/_sandbox/faults", {"provider": "github", "rate429": 2}, 400, "rate429 must be between 0 and 1"),
        ("/_sandbox/faults", {"provider": "nope"}, 404, "no sandbox provider"),
        ("/_sandbox/faults", [1, 2], 400, "must be a JSON object"),
        ("/_sandbox/webhooks", {"provider": "github", "url": "ftp://x"}, 400, "url must be an http(s) URL"),
        ("/_sandbox/webhooks", {"provider": "github", "url": "http://x", "operation": "purge"}, 400, "purge"),
    ],
)
async def test_bad_input_is_a_clear_refusal(
    client: httpx.AsyncClient, path: str, body: Any, status: int, reason: str
) -> None:
    answer = await client.post(path, json=body)
    assert answer.status_code == status
    assert reason in answer.json()["error"]


async def test_faults_pushes_and_tokens(client: httpx.AsyncClient) -> None:
    plan = await client.post("/_sandbox/faults", json={"provider": "slack", "next": [429], "retryAfter": 9})
    assert plan.json() == {"provider": "slack", "rate429": 0.0, "rate5xx": 0.0, "retryAfter": 9, "next": [429]}
    limited = await client.post(
        "/slack/api/chat.postMessage", json={"channel": "C0SANDBOX1", "text": "x"}, headers=AUTH
    )
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "9")
    posted = await client.post(
        "/slack/api/chat.postMessage", json={"channel": "C0SANDBOX1", "text": "hi"}, headers=AUTH
    )
    assert posted.json()["ok"] is True
    pushes = (await client.get("/_sandbox/pushes", params={"provider": "slack"})).json()
    assert [(push["method"], push["path"], push["body"]["text"]) for push in pushes] == [
        ("POST", "/slack/api/chat.postMessage", "hi")
    ]
    assert (await client.delete("/_sandbox/faults")).status_code == 204
    tokens = await client.post("/_sandbox/tokens", json={"strict": True, "accept": ["only-this"]})
    assert tokens.json() == {"strict": True, "accepted": 1, "revoked": 0}
    refused = await client.get("/slack/api/auth.test", headers=AUTH)
    assert refused.json() == {"ok": False, "error": "invalid_auth"}


async def test_reset_brings_back_the_seeded_state(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    await client.post("/_sandbox/google/delete", json={"count": 5})
    await client.post("/_sandbox/tokens", json={"strict": True})
    assert (await client.post("/_sandbox/reset")).status_code == 204
    assert len(sandbox.google.events) == RECORDS
    assert sandbox.tokens.strict is False


async def test_a_webhook_is_sent_and_the_receivers_answer_relayed(
    client: httpx.AsyncClient, server: SandboxServer
) -> None:
    issue_id = server.sandbox.github.ids("issue", 1)[0]
    body = {"provider": "github", "url": f"{server.url}/_sandbox", "id": issue_id, "secret": "s", "operation": "update"}
    relayed = (await client.post("/_sandbox/webhooks", json=body)).json()
    assert relayed["status"] == 405  # the sandbox's own summary only answers GET: the event reached it
    missing = await client.post("/_sandbox/webhooks", json={**body, "id": "404"})
    assert missing.status_code == 404


async def test_the_google_push_keys_are_published(client: httpx.AsyncClient) -> None:
    keys = (await client.get("/google/oauth2/v3/certs")).json()["keys"]
    assert [(key["kid"], key["alg"], key["kty"]) for key in keys] == [("castiel-sandbox-1", "RS256", "RSA")]
