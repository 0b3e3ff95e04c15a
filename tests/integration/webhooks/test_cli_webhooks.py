"""``castiel webhooks`` on the embedded backends, and what a receiver on the same data directory then accepts.

Each ``receiver()`` is a fresh receiver (fresh registration and verifier caches) on the data directory the CLI
writes, so it sees exactly what the CLI stored: a delivery's answer is the proof that a secret was (or was not)
kept, replaced or deleted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.backends.local_secrets import LocalSecretStore
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.cli import app
from castiel.clock import ManualClock
from castiel.errors import NotFound
from castiel.models import Provider, WebhookRegistration
from castiel.settings import load_settings
from castiel.webhooks.registrations import REVALIDATE_SECONDS
from castiel.webhooks.schemes import GITHUB, NOTION, STANDARD

from .conftest import SAMPLES, Harness, assemble, serve_jwks

runner = CliRunner()

Receiver = Callable[[], Awaitable[Harness]]


def castiel(*args: str) -> str:
    """Run a command (in a worker thread when called from a test's event loop: the CLI runs its own loop)."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


async def cli(*args: str) -> str:
    """``castiel`` from async code."""
    return await asyncio.to_thread(castiel, *args)


async def cli_json(*args: str) -> Any:
    return json.loads(await cli(*args))


async def cli_fails(*args: str, expect: int | None = None) -> str:
    """The one-line error of a command that must fail with exit code ``expect`` (by default 1 or 2)."""
    result = await asyncio.to_thread(runner.invoke, app, list(args))
    assert result.exit_code in ((1, 2) if expect is None else (expect,)), result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    return result.output


@pytest.fixture
async def receiver(data_dir: Path, redis_client: aioredis.Redis) -> AsyncIterator[Receiver]:
    """``await receiver()``: a new receiver on the CLI's data directory, its clock at the wall clock's now."""
    async with AsyncExitStack() as stack:

        async def make() -> Harness:
            settings = load_settings()
            clock = ManualClock(time.time())
            store = SqliteDocumentStore.from_settings(settings, clock=clock)
            stack.push_async_callback(store.close)
            queue = SqliteMessageQueue.from_settings(settings, clock=clock)
            stack.push_async_callback(queue.close)
            http = await stack.enter_async_context(httpx.AsyncClient(transport=httpx.MockTransport(serve_jwks)))
            secrets = LocalSecretStore(settings.data_dir, clock=clock)
            harness = assemble(store=store, queue=queue, secrets=secrets, redis=redis_client, http=http, clock=clock)
            stack.push_async_callback(harness.receiver.drain)
            return harness

        yield make


async def github_delivery(harness: Harness, registration_id: str, secret: str, delivery_id: str) -> int:
    """The status of a GitHub sample delivery to ``registration_id`` signed with ``secret``."""
    sample = SAMPLES["github"]
    headers = {**sample.headers(), **GITHUB.sign(sample.body, secret, now=harness.clock(), delivery_id=delivery_id)}
    return (await harness.post(registration_id, sample.body, headers)).status


async def add_github(secret: str) -> dict[str, Any]:
    return await cli_json(  # type: ignore[no-any-return]
        "webhooks", "add", "--tenant", "acme", "--connection", "gh", "--provider", "github", "--secret", secret
    )


@pytest.fixture
def connection(data_dir: Path, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections ``gh`` (GitHub) and ``nt`` (Notion) of tenant ``acme``; commands take the credential service's
    locks on the session's Redis."""
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    castiel("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh")
    castiel("connections", "add", "--tenant", "acme", "--provider", "notion", "--id", "nt")


# ---------------------------------------------------------------- one secret per registration


async def test_two_registrations_on_one_connection_each_verify_only_with_their_own_secret(
    connection: None, receiver: Receiver
) -> None:
    first, second = await add_github("first-secret-Xq81"), await add_github("second-secret-Lm27")

    harness = await receiver()
    assert await github_delivery(harness, first["id"], "first-secret-Xq81", "d1") == 202
    assert await github_delivery(harness, second["id"], "second-secret-Lm27", "d2") == 202
    assert await github_delivery(harness, first["id"], "second-secret-Lm27", "d3") == 401
    assert await github_delivery(harness, second["id"], "first-secret-Xq81", "d4") == 401

    await cli("webhooks", "remove", first["id"])

    harness = await receiver()
    assert await github_delivery(harness, second["id"], "second-secret-Lm27", "d5") == 202
    assert await github_delivery(harness, first["id"], "first-secret-Xq81", "d6") == 404
    assert [c["id"] for c in await cli_json("credentials", "list", "--json")] == [second["credentialId"]]
    assert [r.id for r in await harness.registrations.list()] == [second["id"]]


def test_add_makes_the_secret_a_webhook_secret_credential_whose_value_is_only_in_the_secret_store(
    connection: None, data_dir: Path
) -> None:
    registration = json.loads(
        castiel("webhooks", "add", "--tenant", "acme", "--connection", "gh", "--provider", "github", "--secret",
                "a-secret-Pw30")
    )  # fmt: skip

    shown = json.loads(castiel("credentials", "show", registration["credentialId"], "--json"))
    assert registration["credentialId"] == registration["id"]
    assert (shown["credentialType"], shown["connectionId"], shown["provider"]) == ("webhook_secret", "gh", "github")
    assert re.fullmatch(r"[0-9A-Za-z-]{1,127}", shown["secretName"])  # what Key Vault allows
    assert "a-secret-Pw30" not in json.dumps([registration, shown])
    stored = [path for path in data_dir.iterdir() if path.is_file() and path.name != "secrets.json"]
    assert any(path.name.startswith("castiel.db") for path in stored)
    assert all(b"a-secret-Pw30" not in path.read_bytes() for path in stored)
    assert "a-secret-Pw30" in (data_dir / "secrets.json").read_text()


async def test_rotation_keeps_the_old_secret_verifying_and_touches_no_other_registration(
    connection: None, receiver: Receiver
) -> None:
    first, second = await add_github("first-secret-Xq81"), await add_github("second-secret-Lm27")

    await cli("webhooks", "rotate", first["id"], "--secret", "first-rotated-Vb55")

    harness = await receiver()
    assert await github_delivery(harness, first["id"], "first-rotated-Vb55", "d1") == 202
    assert await github_delivery(harness, first["id"], "first-secret-Xq81", "d2") == 202  # within the grace
    assert await github_delivery(harness, second["id"], "second-secret-Lm27", "d3") == 202
    assert await github_delivery(harness, second["id"], "first-rotated-Vb55", "d4") == 401


async def test_adding_to_an_unknown_connection_names_it(connection: None) -> None:
    output = await cli_fails(
        "webhooks", "add", "--tenant", "acme", "--connection", "nope", "--provider", "github", "--secret", "s", expect=1
    )
    assert "connection 'nope' of tenant 'acme' not found" in output


async def test_rotating_an_unknown_registration_is_a_one_line_error(connection: None) -> None:
    output = await cli_fails("webhooks", "rotate", "nope", "--secret", "s")
    assert "nope" in output


async def test_credentials_rotate_on_a_webhook_secret_reaches_a_running_receiver_within_its_revalidation(
    connection: None, receiver: Receiver
) -> None:
    registration = await add_github("first-secret-Xq81")
    harness = await receiver()
    assert await github_delivery(harness, registration["id"], "first-secret-Xq81", "d1") == 202

    await cli("credentials", "rotate", registration["credentialId"], "--value", "rotated-by-credentials-Jd40")

    # The receiver's verifier is cached: a rotation reaches it through its registration cache's revalidation.
    assert await github_delivery(harness, registration["id"], "rotated-by-credentials-Jd40", "d2") == 401
    harness.clock.advance(REVALIDATE_SECONDS)
    await harness.registrations.find(registration["id"])
    await harness.registrations.drain()
    assert await github_delivery(harness, registration["id"], "rotated-by-credentials-Jd40", "d3") == 202
    assert await github_delivery(harness, registration["id"], "first-secret-Xq81", "d4") == 202  # within the grace
    shown = await cli_json("credentials", "show", registration["credentialId"], "--json")
    assert shown["version"] == 2

    output = await cli("webhooks", "rotate", registration["id"], "--secret", "rotated-by-webhooks-Ux93")
    assert f"(credential {registration['credentialId']}, version 3)" in output


async def test_a_credential_that_signs_a_registration_goes_with_it_and_not_before(
    connection: None, data_dir: Path
) -> None:
    registration = await add_github("a-secret-Pw30")
    secret_name = (await cli_json("credentials", "show", registration["credentialId"], "--json"))["secretName"]

    refused = await cli_fails("credentials", "remove", registration["credentialId"], expect=1)
    assert f"signs webhook registration(s) {registration['id']}" in refused
    await cli("webhooks", "remove", registration["id"])

    assert await cli_json("credentials", "list", "--json") == []
    assert secret_name not in (data_dir / "secrets.json").read_text()


async def test_a_rotation_policy_given_at_add_is_the_credentials(connection: None) -> None:
    added = await cli_json(
        "webhooks", "add", "--tenant", "acme", "--connection", "gh", "--provider", "github", "--secret", "s-Kq28",
        "--rotation-days", "30", "--warn-before-days", "7",
    )  # fmt: skip

    shown = await cli_json("credentials", "show", added["credentialId"], "--json")
    assert shown["rotation"] == {"intervalDays": 30, "warnBeforeDays": 7}
    for flags in (("--provider", "github", "--secret", "s", "--warn-before-days", "7"),
                  ("--provider", "notion", "--rotation-days", "30")):  # fmt: skip
        await cli_fails("webhooks", "add", "--tenant", "acme", "--connection", "gh", *flags, expect=2)


# ---------------------------------------------------------------- stores from before: one secret per connection

LEGACY_NAME = "acme--gh--webhook-secret"
"""The name every registration of connection ``gh`` shared before each registration owned its secret."""


async def legacy_registrations(harness: Harness, secret: str) -> list[str]:
    """Two GitHub registrations sharing the connection's secret, as ``webhooks add`` stored them before."""
    await harness.secrets.set_secret(LEGACY_NAME, secret)
    ids = []
    for registration_id in ("legacy-1", "legacy-2"):
        registration = WebhookRegistration(
            id=registration_id,
            tenant_id="acme",
            provider=Provider.GITHUB,
            connection_id="gh",
            integration_id="github",
            secret_name=LEGACY_NAME,
        )
        ids.append((await harness.registrations.add(registration)).id)
    return ids


async def test_a_shared_secret_of_an_older_store_is_kept_while_a_registration_still_uses_it(
    connection: None, receiver: Receiver
) -> None:
    first, second = await legacy_registrations(await receiver(), "shared-secret-Hh12")

    await cli("webhooks", "remove", first)

    harness = await receiver()
    assert await github_delivery(harness, second, "shared-secret-Hh12", "d1") == 202

    await cli("webhooks", "remove", second)

    with pytest.raises(NotFound):
        await (await receiver()).secrets.get_secret(LEGACY_NAME)


async def test_rotating_a_registration_that_shares_its_secret_moves_it_onto_its_own(
    connection: None, receiver: Receiver
) -> None:
    first, second = await legacy_registrations(await receiver(), "shared-secret-Hh12")

    await cli("webhooks", "rotate", first, "--secret", "first-own-secret-Tt77")

    harness = await receiver()
    migrated = await harness.registrations.get(first)
    assert (migrated.credential_id, migrated.secret_name) == (first, None)
    assert await github_delivery(harness, first, "first-own-secret-Tt77", "d1") == 202
    assert await github_delivery(harness, first, "shared-secret-Hh12", "d2") == 202  # within the grace
    assert await github_delivery(harness, second, "shared-secret-Hh12", "d3") == 202
    assert await github_delivery(harness, second, "first-own-secret-Tt77", "d4") == 401


# ---------------------------------------------------------------- settings that could never verify

WHSEC_NOT_BASE64 = "whsec_not*base64!"

NEVER_VERIFY = [
    (("--provider", "standard", "--secret", WHSEC_NOT_BASE64), "a whsec_ secret that is not valid base64"),
    (("--provider", "salesforce", "--secret", WHSEC_NOT_BASE64), "a whsec_ secret that is not valid base64"),
    (("--provider", "salesforce", "--organization-id", "00D5e000000AB"), "not a Salesforce organization id"),
    (("--provider", "salesforce", "--organization-id", "00D5e000000ABCDEAZX"), "not a Salesforce organization id"),
    (("--provider", "google", "--service-account", "push@p.iam.gserviceaccount.com"), "needs an audience"),
    (("--provider", "google", "--audience", "https://castiel.example/push"), "service account"),
    (
        (
            "--provider",
            "github",
        ),
        "needs at least one secret",
    ),
    (
        (
            "--provider",
            "google",
            "--audience",
            "a",
            "--service-account",
            "s@p.iam.gserviceaccount.com",
            "--secret",
            "x",
        ),
        "verifies without a secret",
    ),
]


@pytest.mark.parametrize(("flags", "reason"), NEVER_VERIFY, ids=[reason for _, reason in NEVER_VERIFY])
async def test_settings_that_could_never_verify_are_refused_when_added_and_nothing_is_stored(
    connection: None, data_dir: Path, receiver: Receiver, flags: tuple[str, ...], reason: str
) -> None:
    output = await cli_fails("webhooks", "add", "--tenant", "acme", "--connection", "gh", *flags, expect=2)

    assert reason in output
    assert await (await receiver()).registrations.list() == []
    assert not (data_dir / "secrets.json").exists()


async def test_a_rotation_to_a_secret_that_could_never_verify_is_refused_and_changes_nothing(
    connection: None, receiver: Receiver
) -> None:
    secret = "whsec_" + base64.b64encode(b"standard-webhooks-key-0123456789").decode()
    registration = await cli_json(
        "webhooks", "add", "--tenant", "acme", "--connection", "gh", "--provider", "standard", "--secret", secret
    )

    output = await cli_fails("webhooks", "rotate", registration["id"], "--secret", WHSEC_NOT_BASE64, expect=2)

    assert "a whsec_ secret that is not valid base64" in output
    output = await cli_fails("credentials", "rotate", registration["credentialId"], "--value", WHSEC_NOT_BASE64)
    assert f"webhook registration {registration['id']} could not verify with it" in output
    assert "a whsec_ secret that is not valid base64" in output
    assert (await cli_json("credentials", "show", registration["credentialId"], "--json"))["version"] == 1
    harness = await receiver()
    sample = SAMPLES["standard"]
    headers = {**sample.headers(), **STANDARD.sign(sample.body, secret, now=harness.clock())}
    assert (await harness.post(registration["id"], sample.body, headers)).status == 202


async def test_verify_calls_settings_that_could_never_verify_a_usage_error_not_an_invalid_signature(
    data_dir: Path, tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b"{}")

    output = await cli_fails(
        "webhooks", "verify", "--provider", "standard", "--secret", WHSEC_NOT_BASE64, "--body-file", str(body), expect=2
    )

    assert "a whsec_ secret that is not valid base64" in output


# ---------------------------------------------------------------- Notion's verification token

NOTION_TOKEN = "secret_tokenNotionShowsInItsSettings7Hq2Lp9Zx"
PLANTED = "secret_plantedByAnAttackerQ8w7e6r5t4y3u2i1o0pZ"
NOTION_FROM = "198.51.100.7:53211"
ATTACKER_FROM = "203.0.113.66:40022"


async def add_notion() -> dict[str, Any]:
    return await cli_json(  # type: ignore[no-any-return]
        "webhooks", "add", "--tenant", "acme", "--connection", "nt", "--provider", "notion"
    )


async def offer(harness: Harness, registration_id: str, token: str, source: str) -> int:
    body = json.dumps({"verification_token": token}).encode()
    return (await harness.post(registration_id, body, {"Content-Type": "application/json"}, source=source)).status


async def notion_event(harness: Harness, registration_id: str, token: str) -> int:
    body = SAMPLES["notion"].body
    headers = {**SAMPLES["notion"].headers(), **NOTION.sign(body, token, now=harness.clock())}
    return (await harness.post(registration_id, body, headers)).status


def fingerprint_of(token: str) -> str:
    """As the README tells an operator to compute it: ``printf %s "$TOKEN" | sha256sum | cut -c1-12``."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


async def test_notion_registrations_take_no_secret_at_add(connection: None, receiver: Receiver) -> None:
    output = await cli_fails(
        "webhooks", "add", "--tenant", "acme", "--connection", "nt", "--provider", "notion", "--secret", "x", expect=2
    )
    assert "takes no secret" in output
    assert await (await receiver()).registrations.list() == []

    registration = await add_notion()
    assert registration["verification"] == "open"
    assert "credentialId" not in registration  # until an operator confirms the token Notion sends


async def test_the_operator_lists_every_token_reveals_and_promotes_the_one_notion_sent(
    connection: None, receiver: Receiver
) -> None:
    registration = await add_notion()
    harness = await receiver()
    assert await offer(harness, registration["id"], PLANTED, ATTACKER_FROM) == 200
    assert await offer(harness, registration["id"], NOTION_TOKEN, NOTION_FROM) == 200

    listed = await cli_json("webhooks", "confirm", registration["id"], "--json")
    lines = await cli("webhooks", "confirm", registration["id"])

    assert [(c["fingerprint"], c["source"]) for c in listed] == [
        (fingerprint_of(PLANTED), ATTACKER_FROM),
        (fingerprint_of(NOTION_TOKEN), NOTION_FROM),
    ]
    assert all(c["receivedAt"].endswith("Z") for c in listed)
    assert f"{fingerprint_of(NOTION_TOKEN)}  {listed[1]['receivedAt']}  from {NOTION_FROM}" in lines
    for output in (json.dumps(listed), lines):
        assert PLANTED not in output
        assert NOTION_TOKEN not in output

    # Notion's Verify dialog takes the token itself: the operator reveals the candidate to paste it there.
    revealed = await cli("webhooks", "confirm", registration["id"], "--reveal", fingerprint_of(NOTION_TOKEN))
    assert revealed == NOTION_TOKEN + "\n"
    assert await notion_event(await receiver(), registration["id"], NOTION_TOKEN) == 503  # revealing confirms nothing

    await cli("webhooks", "confirm", registration["id"], "--fingerprint", fingerprint_of(NOTION_TOKEN).upper())

    harness = await receiver()
    assert await notion_event(harness, registration["id"], NOTION_TOKEN) == 200
    assert await notion_event(harness, registration["id"], PLANTED) == 401
    # Verification is closed: a token arriving now is refused, and nothing waits any more.
    assert await offer(harness, registration["id"], PLANTED, ATTACKER_FROM) == 409
    assert await cli_json("webhooks", "confirm", registration["id"], "--json") == []


async def test_a_fingerprint_nobody_sent_promotes_nothing(connection: None, receiver: Receiver) -> None:
    registration = await add_notion()
    assert await offer(await receiver(), registration["id"], PLANTED, ATTACKER_FROM) == 200

    output = await cli_fails(
        "webhooks", "confirm", registration["id"], "--fingerprint", fingerprint_of(NOTION_TOKEN), expect=1
    )

    assert fingerprint_of(NOTION_TOKEN) in output
    assert "12 hex digits" in await cli_fails(
        "webhooks", "confirm", registration["id"], "--fingerprint", "xyz", expect=2
    )
    harness = await receiver()
    assert await notion_event(harness, registration["id"], PLANTED) == 503  # still nothing confirmed
    assert len(await cli_json("webhooks", "confirm", registration["id"], "--json")) == 1


async def test_reopening_takes_a_new_token_and_the_old_one_verifies_through_the_grace(
    connection: None, receiver: Receiver
) -> None:
    registration = await add_notion()
    assert await offer(await receiver(), registration["id"], NOTION_TOKEN, NOTION_FROM) == 200
    await cli("webhooks", "confirm", registration["id"], "--fingerprint", fingerprint_of(NOTION_TOKEN))
    refused = await cli_fails(
        "webhooks", "confirm", registration["id"], "--fingerprint", fingerprint_of(NOTION_TOKEN), expect=1
    )
    assert "reopen" in refused

    await cli("webhooks", "reopen", registration["id"])
    renewed = "secret_renewedTokenAfterResubscribing4Kd8Ws1"
    assert await offer(await receiver(), registration["id"], renewed, NOTION_FROM) == 200
    await cli("webhooks", "confirm", registration["id"], "--fingerprint", fingerprint_of(renewed))

    harness = await receiver()
    assert await notion_event(harness, registration["id"], renewed) == 200
    assert await notion_event(harness, registration["id"], NOTION_TOKEN) == 200


async def test_confirm_and_reopen_are_for_notion_registrations_only(connection: None) -> None:
    github = await add_github("a-secret-Pw30")
    for command in (("confirm", github["id"]), ("reopen", github["id"])):
        assert "only Notion" in await cli_fails("webhooks", *command, expect=2)


# ---------------------------------------------------------------- deliveries, health, list


async def github_deliveries(harness: Harness, registration_id: str) -> None:
    """One delivery of each kind a second apart: accepted, duplicate, forged, malformed (its audit, newest last)."""
    sample = SAMPLES["github"]
    for delivery_id, secret, body in (
        ("d1", "a-secret-Pw30", sample.body),
        ("d1", "a-secret-Pw30", sample.body),
        ("d2", "not-the-secret", sample.body),
        ("d3", "a-secret-Pw30", b"[1, 2]"),
    ):
        headers = {**sample.headers(), **GITHUB.sign(body, secret, now=harness.clock(), delivery_id=delivery_id)}
        await harness.post(registration_id, body, headers)
        harness.clock.advance(1)
    await harness.receiver.drain()


async def test_deliveries_lists_the_audit_newest_first_with_outcome_and_reason(
    connection: None, receiver: Receiver
) -> None:
    registration = await add_github("a-secret-Pw30")
    await github_deliveries(await receiver(), registration["id"])

    listed = await cli_json("webhooks", "deliveries", registration["id"], "--json")

    assert [(d["outcome"], d["statusCode"], d.get("deliveryId"), d.get("reason")) for d in listed] == [
        ("malformed", 400, "d3", "body: expected a JSON object, got list"),
        (
            "bad_signature",
            401,
            None,
            "signature rejected: the github signature matches none of the registration's secrets",
        ),
        ("duplicate", 200, "d1", None),
        ("accepted", 202, "d1", None),
    ]
    assert all(set(d) >= {"id", "registrationId", "receivedAt", "latencyMs"} and "_etag" not in d for d in listed)
    lines = (await cli("webhooks", "deliveries", registration["id"])).splitlines()
    assert len(lines) == 4
    assert lines[0] == f"{listed[0]['receivedAt']}  malformed  400  d3  body: expected a JSON object, got list"
    assert lines[2] == f"{listed[2]['receivedAt']}  duplicate  200  d1"


@pytest.mark.parametrize(
    ("flags", "outcomes"),
    [
        (("--outcome", "rejected"), ["malformed", "bad_signature"]),
        (("--outcome", "accepted"), ["accepted"]),
        (("--outcome", "duplicate"), ["duplicate"]),
        (("--outcome", "failed"), []),
        (("--outcome", "bad_signature"), ["bad_signature"]),
        (("--limit", "2"), ["malformed", "bad_signature"]),
        (("--outcome", "rejected", "--limit", "1"), ["malformed"]),
    ],
)
async def test_deliveries_filter_by_health_group_or_outcome_and_limit(
    connection: None, receiver: Receiver, flags: tuple[str, ...], outcomes: list[str]
) -> None:
    registration = await add_github("a-secret-Pw30")
    await github_deliveries(await receiver(), registration["id"])

    listed = await cli_json("webhooks", "deliveries", registration["id"], "--json", *flags)

    assert [d["outcome"] for d in listed] == outcomes


async def test_deliveries_refuses_an_unknown_outcome_naming_the_ones_it_takes(connection: None) -> None:
    registration = await add_github("a-secret-Pw30")

    output = await cli_fails("webhooks", "deliveries", registration["id"], "--outcome", "nope", expect=2)

    assert "accepted, duplicate, rejected, failed" in output
    assert "bad_signature" in output


async def test_deliveries_refuses_a_limit_below_one(connection: None) -> None:
    registration = await add_github("a-secret-Pw30")
    await cli_fails("webhooks", "deliveries", registration["id"], "--limit", "0", expect=2)


async def test_deliveries_of_an_id_nobody_registered_or_delivered_to_is_not_found(connection: None) -> None:
    assert "nope" in await cli_fails("webhooks", "deliveries", "nope", expect=1)


async def test_health_counts_duplicates_apart_and_shows_the_last_outcome_and_reason(
    connection: None, receiver: Receiver
) -> None:
    registration = await add_github("a-secret-Pw30")
    await github_deliveries(await receiver(), registration["id"])

    health = await cli_json("webhooks", "health", registration["id"])

    assert {key: health[key] for key in ("accepted", "duplicates", "rejected", "failed")} == {
        "accepted": 1,
        "duplicates": 1,
        "rejected": 2,
        "failed": 0,
    }
    assert (health["lastOutcome"], health["lastReason"]) == ("malformed", "body: expected a JSON object, got list")
    assert health["status"] == "failing"


async def test_list_prints_one_line_each_or_the_json_add_printed(connection: None) -> None:
    github = await add_github("a-secret-Pw30")
    notion = await add_notion()

    listed = await cli_json("webhooks", "list", "--json")
    lines = (await cli("webhooks", "list")).splitlines()

    assert {item["id"]: item for item in listed} == {item["id"]: item for item in (github, notion)}
    assert sorted(lines) == sorted(
        [
            f"{github['id']}  github  acme/gh  active",
            f"{notion['id']}  notion  acme/nt  active  verification open",
        ]
    )


# ---------------------------------------------------------------- who may sign a connection's events


@pytest.mark.parametrize("provider", ["slack", "notion", "google", "salesforce"])
async def test_a_registration_of_another_provider_than_its_connections_is_refused(
    connection: None, data_dir: Path, receiver: Receiver, provider: str
) -> None:
    flags = {"notion": (), "google": ("--audience", "a", "--service-account", "s@p.iam.gserviceaccount.com")}
    secret = () if provider in flags else ("--secret", "abc")
    output = await cli_fails(
        "webhooks", "add", "--tenant", "acme", "--connection", "gh", "--provider", provider,
        *flags.get(provider, ()), *secret, expect=2,
    )  # fmt: skip

    assert "connection gh is a github connection: its registrations are github, or standard" in output
    assert await (await receiver()).registrations.list() == []
    assert not (data_dir / "secrets.json").exists()


async def test_a_standard_registration_delivers_its_events_as_the_connections(
    connection: None, receiver: Receiver
) -> None:
    secret = "whsec_" + base64.b64encode(b"standard-webhooks-key-0123456789").decode()
    registration = await cli_json(
        "webhooks", "add", "--tenant", "acme", "--connection", "gh", "--provider", "standard", "--secret", secret
    )
    harness = await receiver()
    sample = SAMPLES["standard"]

    response = await harness.post(
        registration["id"], sample.body, {**sample.headers(), **STANDARD.sign(sample.body, secret, now=harness.clock())}
    )

    assert response.status == 202
    (change,) = await harness.queued()
    assert (change.tenant_id, change.connection_id, change.integration_id) == ("acme", "gh", "github")


@pytest.mark.parametrize("provider", ["standard", "github"])
async def test_no_registration_on_a_connection_no_adapter_reads(
    connection: None, receiver: Receiver, provider: str
) -> None:
    await cli("connections", "add", "--tenant", "acme", "--provider", "standard", "--id", "relay")
    secret = "whsec_" + base64.b64encode(b"standard-webhooks-key-0123456789").decode()

    output = await cli_fails(
        "webhooks", "add", "--tenant", "acme", "--connection", "relay", "--provider", provider, "--secret", secret,
        expect=2,
    )  # fmt: skip

    assert "connection relay is a standard connection: no adapter reads its records" in output
    assert await (await receiver()).registrations.list() == []


# ---------------------------------------------------------------- flags that do not apply


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (("--provider", "salesforce"), "a salesforce registration needs a secret"),
        (("--provider", "github", "--secret", "x", "--audience", "foo"), "--audience and --service-account are for"),
        (("--provider", "github", "--secret", "x", "--service-account", "s@p.iam"), "--audience and --service-account"),
        (("--provider", "github", "--secret", "x", "--organization-id", "00D5e000000ABCD"), "--organization-id is for"),
    ],
)
async def test_add_refuses_what_does_not_apply_to_the_provider_naming_it(
    connection: None, receiver: Receiver, flags: tuple[str, ...], reason: str
) -> None:
    output = await cli_fails("webhooks", "add", "--tenant", "acme", "--connection", "gh", *flags, expect=2)

    assert reason in output
    assert await (await receiver()).registrations.list() == []


@pytest.mark.parametrize("now", ["nan", "inf", "-inf"])
async def test_verify_refuses_a_now_that_is_not_a_time(data_dir: Path, tmp_path: Path, now: str) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b"{}")
    header = "X-Slack-Request-Timestamp: 1000"

    output = await cli_fails(
        "webhooks", "verify", "--provider", "slack", "--secret", "s", "--header", header, "--body-file", str(body),
        "--now", now, expect=2,
    )  # fmt: skip

    assert "is not a time" in output


async def test_deliveries_to_an_id_of_another_shape_are_listed_one_line_each_escaped(
    connection: None, receiver: Receiver
) -> None:
    forged = "x\n2026-12-01 00:00:00,000 ERROR forged line"
    harness = await receiver()
    assert (await harness.post(forged, b"{}", {})).status == 404
    await harness.receiver.drain()

    lines = (await cli("webhooks", "deliveries", forged)).splitlines()
    missing = await cli_fails("webhooks", "deliveries", "y\x85" + "z" * 3000, expect=1)

    assert len(lines) == 1
    assert lines[0].endswith("  unknown_registration  404  -  no active webhook registration at this URL")
    assert "y\\x85zzz" in missing
    assert len(missing) < 400
