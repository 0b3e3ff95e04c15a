"""Webhooks end to end: the CLI registers an endpoint, the dev host receives signed deliveries over loopback.

Only ``webhook_receiver`` runs, so what it queued stays on ``sync-outbound`` to be counted.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import httpx

from castiel.webhooks.schemes import GITHUB, SLACK
from tests.e2e.conftest import REPO, DevHost, StartHost, castiel

PAYLOADS = REPO / "tests/unit/webhooks/payloads"
GITHUB_SECRET = "e2e-github-secret"
SLACK_SECRET = "e2e-slack-signing-secret"


def register(host: DevHost, provider: str, secret: str) -> dict[str, Any]:
    castiel(host.data_dir, "connections", "add", "--tenant", "acme", "--provider", provider, "--id", provider)
    return castiel(  # type: ignore[no-any-return]
        host.data_dir,
        "webhooks", "add", "--tenant", "acme", "--connection", provider, "--provider", provider, "--secret", secret,
    )  # fmt: skip


async def outbound_depth(host: DevHost) -> int:
    queue = host.queue()
    try:
        return (await queue.stats("sync-outbound")).active
    finally:
        await queue.close()


async def post(host: DevHost, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=host.url, timeout=10.0) as client:
        return await client.post(path, content=body, headers=headers)


async def test_signed_deliveries_are_queued_once_and_redeliveries_are_not(start_host: StartHost) -> None:
    host = await start_host("--only", "webhook_receiver")
    registration = register(host, "github", GITHUB_SECRET)
    path = registration["path"]
    assert path == f"/webhooks/{registration['id']}/events"

    opened = (PAYLOADS / "github/issues_opened.json").read_bytes()
    headers = {
        **GITHUB.sign(opened, GITHUB_SECRET, now=time.time(), delivery_id="delivery-1"),
        "X-GitHub-Event": "issues",
        "Content-Type": "application/json",
    }
    first = await post(host, path, opened, headers)
    assert first.status_code == 202, first.text
    assert await outbound_depth(host) == 1

    again = await post(host, path, opened, headers)
    assert again.status_code == 200
    assert again.json() == {"duplicate": True}
    assert await outbound_depth(host) == 1

    comment = (PAYLOADS / "github/issue_comment_created.json").read_bytes()
    comment_headers = {
        **GITHUB.sign(comment, GITHUB_SECRET, now=time.time(), delivery_id="delivery-2"),
        "X-GitHub-Event": "issue_comment",
    }
    assert (await post(host, path, comment, comment_headers)).status_code == 202
    assert await outbound_depth(host) == 2

    forged = await post(host, path, opened, {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert forged.status_code == 401
    assert "signature" in forged.json()["error"]
    assert await outbound_depth(host) == 2

    health = castiel(host.data_dir, "webhooks", "health", registration["id"])
    assert (health["accepted"], health["duplicates"], health["rejected"]) == (2, 1, 1)
    assert (health["lastOutcome"], health["lastReason"]) == (
        "bad_signature",
        "signature rejected: the github signature matches none of the registration's secrets",
    )


async def test_slack_url_verification_is_answered_with_the_challenge(start_host: StartHost) -> None:
    host = await start_host("--only", "webhook_receiver")
    registration = register(host, "slack", SLACK_SECRET)
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = json.dumps({"token": "t", "challenge": challenge, "type": "url_verification"}).encode()
    headers = {**SLACK.sign(body, SLACK_SECRET, now=time.time()), "Content-Type": "application/json"}

    response = await post(host, registration["path"], body, headers)

    assert response.status_code == 200
    assert challenge in response.text
    assert await outbound_depth(host) == 0


async def test_notion_verification_tokens_are_listed_with_the_address_they_came_from(start_host: StartHost) -> None:
    host = await start_host("--only", "webhook_receiver")
    castiel(host.data_dir, "connections", "add", "--tenant", "acme", "--provider", "notion", "--id", "notion")
    registration = castiel(
        host.data_dir, "webhooks", "add", "--tenant", "acme", "--connection", "notion", "--provider", "notion"
    )
    body = (PAYLOADS / "notion/verification.json").read_bytes()

    response = await post(host, registration["path"], body, {"Content-Type": "application/json"})

    assert response.status_code == 200
    (candidate,) = castiel(host.data_dir, "webhooks", "confirm", registration["id"], "--json")
    assert candidate["source"].startswith("127.0.0.1:")
    token = json.loads(body)["verification_token"]
    assert candidate["fingerprint"] == hashlib.sha256(token.encode()).hexdigest()[:12]
