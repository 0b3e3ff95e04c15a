"""The webhook receiver end to end on real backends (DESIGN §6): every answer it gives, and what it stores for each.

Deliveries are the real-shaped samples of ``tests/unit/webhooks/payloads``, signed as each provider signs them
(``conftest.py``). Each test checks the HTTP answer, the messages on ``sync-outbound``, the ``webhook-audit`` line
and the registration's health counters.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import rsa

from castiel.backends.local_secrets import LocalSecretStore
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.clock import to_datetime
from castiel.credentials.webhook_secrets import ROTATION_GRACE
from castiel.errors import CastielError, RetryableError
from castiel.models import ChangeOrigin, Operation, VerificationState
from castiel.ports import OutgoingMessage, Query, QueryPage
from castiel.text import MAX_SHOWN, printable
from castiel.webhooks.ledger import PENDING_TTL_SECONDS
from castiel.webhooks.notion_verification import (
    MAX_CANDIDATES,
    MAX_TOKEN_LENGTH,
    VerificationCandidates,
    fingerprint,
)
from castiel.webhooks.receiver import MAX_BODY_BYTES, NO_REGISTRATION_REASON, WebhookResponse
from castiel.webhooks.salesforce_soap import ACK_CONTENT_TYPE, ACKNOWLEDGEMENT

from .conftest import (
    DELIVERY_ID,
    KINDS,
    NOW,
    QUEUE,
    SAMPLES,
    SCHEMES,
    SECRETS,
    TENANT,
    Build,
    Harness,
    Sample,
    auth_headers,
    google_token,
    unreachable,
)

PAST_QUEUE_DEDUP = 11 * 60
"""Past the queue's own 10-minute duplicate detection, so only the receiver's ledger can catch a repeat."""

DELIVERY_IDS: Mapping[str, str] = {
    "github": DELIVERY_ID,
    "slack": "Ev073G9K7Q2H",
    "notion": "367cba44-b6f3-4c92-81e7-6a2e9659efd4",
    "standard": DELIVERY_ID,
    "salesforce": DELIVERY_ID,
    "salesforce-soap": "04l5e00000HQ8PoAAL,04l5e00000HQ8PpAAL",
    "google": "8844100022003311",
}
"""The provider's delivery id of each kind's sample."""

RETRY_HEADERS: Mapping[str, Mapping[str, str]] = {
    "slack": {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
}
"""What a provider adds when it sends a delivery again."""

NOTION_TOKEN = orjson.loads(Sample("notion/verification.json").body)["verification_token"]
FORGED_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_WHSEC = "whsec_" + base64.b64encode(b"somebody-elses-key-0123456789abc").decode()


def error(response: WebhookResponse) -> str:
    reason = orjson.loads(response.body)["error"]
    assert isinstance(reason, str)
    return reason


def answered_json(response: WebhookResponse) -> Any:
    assert response.content_type == "application/json"
    return orjson.loads(response.body)


async def outcomes(harness: Harness, registration_id: str) -> list[tuple[str, int, str | None]]:
    return [(a.outcome, a.status_code, a.delivery_id) for a in await harness.audits(registration_id)]


async def counters(harness: Harness, registration_id: str) -> tuple[int, int, int]:
    health = await harness.health(registration_id)
    return health.accepted, health.rejected, health.failed


# ---------------------------------------------------------------- 404 and 413


@pytest.mark.parametrize("status", [None, "disabled"], ids=["unknown", "disabled"])
async def test_an_unknown_or_disabled_registration_is_a_404_with_only_an_audit_line(
    harness: Harness, status: str | None
) -> None:
    if status is not None:
        await harness.register("github", status=status)

    response = await harness.deliver("github")

    assert response.status == 404
    assert error(response) == "no active webhook registration 'reg-github'"
    assert await harness.queued() == []
    assert await outcomes(harness, "reg-github") == [("unknown_registration", 404, None)]


def assert_one_line_each(caplog: pytest.LogCaptureFixture, bound: int = 1000) -> None:
    """No log line carries a raw control character (a forged line, a NUL) or runs past ``bound`` characters."""
    for record in caplog.records:
        message = record.getMessage()
        assert message.isprintable(), message
        assert len(message) <= bound


FORGED_LINE = "x\n2026-12-01 00:00:00,000 ERROR forged line"


@pytest.mark.parametrize(
    "registration_id",
    [FORGED_LINE, "x\x00\ufffd", "x\x85y\u2028z", "x" * 3000, "Reg-GitHub", "reg--github"],
    ids=["newline", "nul", "c1-and-line-separator", "3000-chars", "upper-case", "double-hyphen"],
)
async def test_an_id_not_shaped_like_a_registration_id_is_a_404_that_never_echoes_it(
    harness: Harness, caplog: pytest.LogCaptureFixture, registration_id: str
) -> None:
    await harness.register("github")

    with caplog.at_level(logging.DEBUG):
        response = await harness.post(registration_id, SAMPLES["github"].body, SAMPLES["github"].headers())
        audits = await harness.audits(printable(registration_id))

    assert response.status == 404
    assert error(response) == NO_REGISTRATION_REASON
    assert [(a.outcome, a.status_code) for a in audits] == [("unknown_registration", 404)]
    assert audits[0].registration_id.isprintable()
    assert len(audits[0].registration_id) <= MAX_SHOWN + 20
    assert_one_line_each(caplog)
    assert await harness.queued() == []


async def test_a_delivery_id_and_a_source_address_reach_the_log_escaped(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.register("github")
    await harness.register("notion", with_secret=False)

    with caplog.at_level(logging.DEBUG):
        accepted = await harness.deliver("github", headers={"X-GitHub-Delivery": "d\x85e\u2028f" + "g" * 5000})
        offered = await offer(harness, PLANTED, source="203.0.113.66:1\x85forged")
        await harness.receiver.drain()

    assert (accepted.status, offered.status) == (202, 200)
    assert 'delivery_id="d\\x85e\\u2028f' in caplog.text
    assert "source=203.0.113.66:1\\x85forged" in caplog.text
    assert_one_line_each(caplog)


@pytest.mark.parametrize(
    ("size", "status", "outcome"), [(MAX_BODY_BYTES, 202, "accepted"), (MAX_BODY_BYTES + 1, 413, "too_large")]
)
async def test_a_body_over_one_mebibyte_is_a_413(harness: Harness, size: int, status: int, outcome: str) -> None:
    await harness.register("github")
    sample = SAMPLES["github"].body
    body = sample + b" " * (size - len(sample))  # still the same JSON document, at exactly `size` bytes

    response = await harness.deliver("github", body)

    assert response.status == status
    assert len(await harness.queued()) == (1 if status == 202 else 0)
    (audit,) = await harness.audits("reg-github")
    assert audit.outcome == outcome
    if status == 413:
        assert error(response) == f"body of {size} bytes exceeds {MAX_BODY_BYTES}"


# ---------------------------------------------------------------- 401


@dataclass(frozen=True)
class Forgery:
    """A delivery that must not verify: signed with ``auth`` changes, then ``headers`` set (None removes one)."""

    kind: str
    reason: str
    auth: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str | None] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)


def none_match(scheme: str) -> str:
    return f"the {scheme} signature matches none of the registration's secrets"


FORGERIES = [
    Forgery("github", none_match("github"), auth={"secret": "not-the-github-secret"}),
    Forgery(
        "github",
        "missing X-Hub-Signature-256 header (the SHA-1 X-Hub-Signature is never accepted)",
        headers={"X-Hub-Signature-256": None, "X-Hub-Signature": "sha1=" + "0" * 40},
    ),
    Forgery("github", "X-Hub-Signature-256 does not start with sha256=", headers={"X-Hub-Signature-256": "0" * 64}),
    Forgery("slack", none_match("slack"), auth={"secret": "not-the-slack-signing-secret"}),
    Forgery("slack", "missing X-Slack-Request-Timestamp header", headers={"X-Slack-Request-Timestamp": None}),
    Forgery("notion", none_match("notion"), auth={"secret": NOTION_TOKEN}),
    Forgery("standard", none_match("standard"), auth={"secret": OTHER_WHSEC}),
    Forgery(
        "standard",
        "webhook-signature has no usable v1 signature (entry 1 has no comma)",
        headers={"webhook-signature": "v1" + "A" * 44},
    ),
    Forgery(
        "standard",
        "webhook-timestamp is not whole Unix seconds (digits only)",
        headers={"webhook-timestamp": f"{NOW:.1f}"},
    ),
    Forgery("salesforce", none_match("standard"), auth={"secret": OTHER_WHSEC}),
    Forgery(
        "salesforce-soap",
        "OrganizationId is not the registration's organization",
        settings={"organizationId": "00D000000000001"},
    ),
    Forgery(
        "google",
        "the token audience is not the registration's audience",
        auth={"aud": "https://attacker.example/push"},
    ),
    Forgery(
        "google",
        "the token email is not the registration's push service account",
        auth={"email": "intruder@evil-project.iam.gserviceaccount.com"},
    ),
    Forgery("google", "the token signature does not verify", auth={"key": FORGED_KEY}),
    Forgery("google", "the token expired 31 s ago", auth={"exp": int(NOW) - 31}),
]


@pytest.mark.parametrize("forgery", FORGERIES, ids=lambda f: f"{f.kind}: {f.reason}")
async def test_a_delivery_that_does_not_verify_is_a_401_audited_and_counted(harness: Harness, forgery: Forgery) -> None:
    registration = await harness.register(forgery.kind, **forgery.settings)
    body = SAMPLES[forgery.kind].body
    headers = {**SAMPLES[forgery.kind].headers(), **auth_headers(forgery.kind, body, now=NOW, **forgery.auth)}
    sent = {name.lower(): value for name, value in headers.items()}
    for name, value in forgery.headers.items():
        if value is None:
            del sent[name.lower()]
        else:
            sent[name.lower()] = value

    response = await harness.post(registration.id, body, sent)

    assert response.status == 401
    assert error(response) == f"signature rejected: {forgery.reason}"
    assert await harness.queued() == []
    (audit,) = await harness.audits(registration.id)
    assert (audit.outcome, audit.status_code, audit.reason) == ("bad_signature", 401, error(response))
    assert await counters(harness, registration.id) == (0, 1, 0)
    assert (await harness.health(registration.id)).status == "failing"


@pytest.mark.parametrize(
    ("skew", "status", "reason"),
    [
        (-300, 200, None),
        (300, 200, None),
        (-301, 401, "X-Slack-Request-Timestamp is 301 s old, outside the 300 s window (stale or replayed)"),
        (301, 401, "X-Slack-Request-Timestamp is 301 s in the future, outside the 300 s window"),
    ],
)
async def test_a_slack_timestamp_outside_five_minutes_is_a_401(
    harness: Harness, skew: int, status: int, reason: str | None
) -> None:
    await harness.register("slack")

    response = await harness.deliver("slack", signed_at=NOW + skew)

    assert response.status == status
    assert len(await harness.queued()) == (1 if status == 200 else 0)
    if reason is not None:
        assert error(response) == f"signature rejected: {reason}"


# ---------------------------------------------------------------- accepted

ACCEPTED = [
    ("github", 202, [("issue", "2296011723", Operation.CREATE)]),
    ("slack", 200, [("message", "1715680212.004519", Operation.CREATE)]),
    ("notion", 200, [("page", "153104cd-477e-809d-8dc4-ff2d96ae3090", Operation.CREATE)]),
    ("standard", 202, [("contact", "ct_01HXYZ9F3W2M7Q8R", Operation.CREATE)]),
    (
        "salesforce",
        200,
        [
            ("Lead", "00Q5e000006mYkWEAU", Operation.UPDATE),
            ("Lead", "00Q5e000006mYkXEAU", Operation.UPDATE),
            ("Opportunity", "0065e00000Bq7ZcAAJ", Operation.DELETE),
        ],
    ),
    (
        "salesforce-soap",
        200,
        [("Contact", "0035e00000QxLbBAAV", Operation.UPDATE), ("Contact", "0035e00000QxLbAAAV", Operation.UPDATE)],
    ),
    ("google", 202, [("contact", "people/c7712029921", Operation.DELETE)]),
]


@pytest.mark.parametrize(("kind", "status", "expected"), ACCEPTED, ids=[row[0] for row in ACCEPTED])
async def test_a_signed_delivery_queues_one_message_per_change(
    harness: Harness, kind: str, status: int, expected: Sequence[tuple[str, str, Operation]]
) -> None:
    registration = await harness.register(kind)

    response = await harness.deliver(kind)

    assert response.status == status
    if kind == "salesforce-soap":
        assert (response.body, response.content_type) == (ACKNOWLEDGEMENT, ACK_CONTENT_TYPE)
    else:
        assert answered_json(response) == {"accepted": len(expected)}
    queued = await harness.queued()
    assert [(change.entity_type, change.external_id, change.operation) for change in queued] == list(expected)
    assert {(c.tenant_id, c.connection_id, c.integration_id, c.origin) for c in queued} == {
        (TENANT, f"conn-{kind}", registration.integration_id, ChangeOrigin.WEBHOOK)
    }
    messages = await harness.queue.peek(QUEUE, max_messages=100)
    assert len({message.message_id for message in messages}) == len(expected)
    assert await outcomes(harness, registration.id) == [("accepted", status, DELIVERY_IDS[kind])]
    health = await harness.health(registration.id)
    assert (health.accepted, health.rejected, health.failed, health.status) == (1, 0, 0, "healthy")
    assert health.last_received_at == to_datetime(NOW)


@pytest.mark.parametrize("organization_id", ["00D5e000000ABCDEAZ", "00D5e000000ABCD"], ids=["18-char", "15-char"])
async def test_a_salesforce_outbound_message_is_acknowledged_in_soap(harness: Harness, organization_id: str) -> None:
    await harness.register("salesforce-soap", organizationId=organization_id)

    response = await harness.deliver("salesforce-soap")

    assert (response.status, response.content_type) == (200, ACK_CONTENT_TYPE)
    assert response.content_type.startswith("text/xml")
    assert b"<Ack>true</Ack>" in response.body
    assert len(await harness.queued()) == 2


# ---------------------------------------------------------------- idempotency


@pytest.mark.parametrize("kind", KINDS)
async def test_a_redelivery_is_a_200_duplicate_and_queues_nothing_again(harness: Harness, kind: str) -> None:
    registration = await harness.register(kind)
    first = await harness.deliver(kind)
    queued = await harness.queued()
    harness.clock.advance(PAST_QUEUE_DEDUP)

    # Re-signed now, as a provider's retry is; the delivery id is the same.
    again = await harness.deliver(kind, headers=RETRY_HEADERS.get(kind))

    assert first.status in (200, 202)
    assert again.status == 200
    if kind == "salesforce-soap":
        assert again.body == ACKNOWLEDGEMENT
    else:
        assert answered_json(again) == {"duplicate": True}
    assert await harness.queued() == queued
    audits = await harness.audits(registration.id)
    assert [(a.outcome, a.delivery_id) for a in audits] == [
        ("accepted", DELIVERY_IDS[kind]),
        ("duplicate", DELIVERY_IDS[kind]),
    ]


# ---------------------------------------------------------------- handshakes

HANDSHAKES = [
    ("github", "github/ping.json", {"X-GitHub-Event": "ping"}, b'{"ok":true}', "application/json"),
    ("slack", "slack/url_verification.json", {}, b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "text/plain"),
]


@pytest.mark.parametrize(("kind", "file", "headers", "body", "content_type"), HANDSHAKES, ids=["github-ping", "slack"])
async def test_a_signed_handshake_is_answered_and_queues_nothing(
    harness: Harness, kind: str, file: str, headers: dict[str, str], body: bytes, content_type: str
) -> None:
    registration = await harness.register(kind)

    response = await harness.deliver(kind, Sample(file).body, headers=headers)

    assert (response.status, response.body, response.content_type) == (200, body, content_type)
    assert await harness.queued() == []
    (audit,) = await harness.audits(registration.id)
    assert (audit.outcome, audit.status_code) == ("handshake", 200)


# ---------------------------------------------------------------- Notion's verification token

NOTION_FROM = "198.51.100.7:53211"
ATTACKER_FROM = "203.0.113.66:40022"
PLANTED = "secret_plantedByAnAttackerQ8w7e6r5t4y3u2i1o0pZ"


async def offer(harness: Harness, token: object, source: str | None = ATTACKER_FROM) -> WebhookResponse:
    """An unsigned POST of Notion's verification request carrying ``token``."""
    return await harness.post("reg-notion", orjson.dumps({"verification_token": token}), {}, source=source)


async def waiting(harness: Harness) -> list[tuple[str, datetime, str | None]]:
    registration = await harness.registrations.get("reg-notion")
    return [
        (c.fingerprint, c.received_at, c.source)
        for c in await VerificationCandidates(harness.secrets).waiting(registration)
    ]


async def stored_documents(harness: Harness) -> str:
    """Every document of the store, as one text."""
    await harness.receiver.drain()
    pages = [await harness.store.query(container, Query()) for container in ("webhooks", "webhook-audit")]
    return orjson.dumps([page.items for page in pages]).decode()


async def test_every_verification_token_before_confirmation_is_kept_hidden_with_its_arrival_and_source(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registration = await harness.register("notion", with_secret=False)

    planted = await offer(harness, PLANTED, ATTACKER_FROM)
    harness.clock.advance(30)
    sent = await harness.post(registration.id, Sample("notion/verification.json").body, {}, source=NOTION_FROM)

    assert [(r.status, answered_json(r)) for r in (planted, sent)] == [(200, {"ok": True})] * 2
    assert await waiting(harness) == [
        (fingerprint(PLANTED), to_datetime(NOW), ATTACKER_FROM),
        (fingerprint(NOTION_TOKEN), to_datetime(NOW + 30), NOTION_FROM),
    ]
    assert fingerprint(NOTION_TOKEN) == hashlib.sha256(NOTION_TOKEN.encode()).hexdigest()[:12]
    documents = await stored_documents(harness)
    for token in (PLANTED, NOTION_TOKEN):
        assert token not in caplog.text
        assert token not in documents
    assert await outcomes(harness, registration.id) == [("handshake", 200, None)] * 2
    # Until an operator confirms one, a delivery signed with either proves nothing: the registration cannot verify
    # yet (our side), so the sender is asked to retry later.
    for token in (PLANTED, NOTION_TOKEN):
        assert (await harness.deliver("notion", secret=token)).status == 503
    assert await harness.queued() == []


@pytest.mark.parametrize("state", [VerificationState.CONFIRMED, None], ids=["confirmed", "from-an-older-store"])
async def test_once_verification_is_closed_a_new_token_is_refused_and_audited(
    harness: Harness, state: VerificationState | None
) -> None:
    registration = await harness.register("notion")
    await harness.registrations.save(registration.model_copy(update={"verification": state}))

    response = await offer(harness, PLANTED)

    assert response.status == 409
    assert error(response) == (
        "verification is closed for this registration (a token is confirmed); an operator can re-open it"
    )
    assert await waiting(harness) == []
    assert await outcomes(harness, registration.id) == [("verification_refused", 409, None)]
    assert await counters(harness, registration.id) == (0, 1, 0)
    (confirmed,) = await harness.secrets.list_versions("webhook-notion")
    assert (await harness.secrets.get_secret("webhook-notion", confirmed.version)).reveal() == SECRETS["notion"]
    assert (await harness.deliver("notion")).status == 200


async def test_no_more_than_the_limit_of_tokens_wait_for_confirmation(harness: Harness) -> None:
    await harness.register("notion", with_secret=False)
    for number in range(MAX_CANDIDATES):
        assert (await offer(harness, f"secret_candidate{number:03d}Aaaaaaaaaaaaaaaaaaaa")).status == 200

    response = await offer(harness, PLANTED)

    assert response.status == 429
    assert error(response) == f"{MAX_CANDIDATES} verification tokens already wait for an operator's confirmation"
    assert len(await waiting(harness)) == MAX_CANDIDATES


@pytest.mark.parametrize(
    "token", ["", "x" * (MAX_TOKEN_LENGTH + 1), "secret_with space", "secret_\u00e9t\u00e9", "secret_line\n"]
)
async def test_an_implausible_verification_token_is_a_400_and_is_not_kept(harness: Harness, token: str) -> None:
    registration = await harness.register("notion", with_secret=False)

    response = await offer(harness, token)

    assert response.status == 400
    assert error(response).startswith("verification_token is ")
    assert await waiting(harness) == []
    assert [a.outcome for a in await harness.audits(registration.id)] == ["malformed"]


# ---------------------------------------------------------------- Google


async def test_google_keys_out_of_reach_is_a_503_so_pubsub_retries(build: Build) -> None:
    harness = await build(certs=unreachable)
    registration = await harness.register("google")

    response = await harness.deliver("google")

    assert (response.status, error(response)) == (503, UNAVAILABLE)
    assert await harness.queued() == []
    assert [a.outcome for a in await harness.audits(registration.id)] == ["verify_unavailable"]
    assert await counters(harness, registration.id) == (0, 0, 1)


# ---------------------------------------------------------------- 400

TRUNCATED = b'{"action": "opened", "issue": {"id": '

MALFORMED = [
    *[(kind, TRUNCATED, "body is not valid JSON") for kind in ("github", "slack", "notion", "standard", "salesforce")],
    ("google", TRUNCATED, "body is not valid JSON"),
    ("github", b"[1, 2]", "body: expected a JSON object, got list"),
    ("github", b'{"action": "opened"}', "issue is missing"),
    (
        "slack",
        b'{"type": "event_callback", "event_id": "Ev1", "event": {"type": "message"}}',
        "event.channel is missing",
    ),
    ("google", b'{"message": {"data": "!!", "messageId": "1"}}', "message.data is not valid base64"),
]


@pytest.mark.parametrize(("kind", "body", "reason"), MALFORMED)
async def test_a_verified_body_that_cannot_be_parsed_is_a_400_with_a_reason(
    harness: Harness, kind: str, body: bytes, reason: str
) -> None:
    registration = await harness.register(kind)

    response = await harness.deliver(kind, body)

    assert response.status == 400
    assert error(response).startswith(reason)
    assert await harness.queued() == []
    (audit,) = await harness.audits(registration.id)
    assert (audit.outcome, audit.reason) == ("malformed", error(response))
    assert await counters(harness, registration.id) == (0, 1, 0)


# ---------------------------------------------------------------- infrastructure failures


class FailingQueue(SqliteMessageQueue):
    """The real queue, whose sends fail while ``failing`` is set (a Service Bus outage)."""

    failing = True

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        if self.failing:
            raise RetryableError("the queue is unavailable")
        await super().send(queue, messages)


async def test_an_enqueue_failure_is_a_503_and_the_retry_is_accepted_once(build: Build) -> None:
    harness = await build(queue_class=FailingQueue)
    registration = await harness.register("github")

    response = await harness.deliver("github")

    assert (response.status, error(response)) == (503, UNAVAILABLE)
    assert await harness.queued() == []
    assert await counters(harness, registration.id) == (0, 0, 1)

    assert isinstance(harness.queue, FailingQueue)
    harness.queue.failing = False
    harness.clock.advance(1)
    retried = await harness.deliver("github")

    assert retried.status == 202
    assert len(await harness.queued()) == 1
    assert [a.outcome for a in await harness.audits(registration.id)] == ["enqueue_failed", "accepted"]
    assert await counters(harness, registration.id) == (1, 0, 1)


async def test_an_audit_write_failure_is_logged_and_changes_no_answer(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    registration = await harness.register("github")

    async def store_down(container: str, docs: Sequence[Mapping[str, Any]]) -> list[CastielError | None]:
        raise RetryableError("the store is unavailable")

    monkeypatch.setattr(harness.store, "create_many", store_down)
    with caplog.at_level(logging.INFO):
        response = await harness.deliver("github")
        await harness.receiver.drain()

    assert response.status == 202
    assert len(await harness.queued()) == 1
    assert f'webhook.audit_failed registration_id={registration.id} error="the store is unavailable"' in caplog.text


@pytest.mark.parametrize("kind", ["github", "slack", "standard"])
async def test_with_redis_unreachable_deliveries_are_accepted_and_deduplicated_in_the_store(
    build: Build, dead_redis: aioredis.Redis, kind: str
) -> None:
    harness = await build(redis=dead_redis)
    await harness.register(kind)

    first = await harness.deliver(kind)
    harness.clock.advance(PAST_QUEUE_DEDUP)
    again = await harness.deliver(kind, headers=RETRY_HEADERS.get(kind))
    forged = await harness.deliver(kind, secret=OTHER_WHSEC)

    assert first.status in (200, 202)
    assert (again.status, answered_json(again)) == (200, {"duplicate": True})
    assert forged.status == 401
    assert len(await harness.queued()) == 1


UNAVAILABLE = "temporarily unable to process the delivery; retry"
"""The one reason of every 503: the fault is ours, the sender should retry, and no internal detail is shown."""


def corrupt_secrets_file(harness: Harness) -> str:
    """Overwrite the secrets file with garbage; returns its path, which must appear in no response."""
    assert isinstance(harness.secrets, LocalSecretStore)
    harness.secrets.path.write_bytes(b'{"format": 1, "secrets": {"x": ')
    return str(harness.secrets.path)


async def secret_store_down(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> str:
    """Secret store calls fail as an unreachable Key Vault's do; returns the internal detail."""
    detail = "secret store at https://kv-castiel.vault.azure.net unreachable: connection reset"

    async def unreachable(name: str) -> list[Any]:
        raise RetryableError(detail)

    monkeypatch.setattr(harness.secrets, "list_versions", unreachable)
    return detail


async def delivers_unavailable(harness: Harness, caplog: pytest.LogCaptureFixture, detail: str) -> None:
    """A GitHub delivery is answered 503 with the generic reason, nothing is queued, and one error line logs
    ``detail``."""
    with caplog.at_level(logging.INFO):
        response = await harness.deliver("github")

    assert (response.status, answered_json(response)) == (503, {"error": UNAVAILABLE})
    assert await harness.queued() == []
    (line,) = [record for record in caplog.records if record.getMessage().startswith("webhook.unavailable")]
    assert line.levelno == logging.ERROR
    assert detail in line.getMessage()


@pytest.mark.parametrize("fault", ["corrupt secrets file", "secret store unreachable"])
async def test_a_secret_store_fault_is_a_503_with_a_generic_reason_and_an_error_log_line(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    registration = await harness.register("github")
    if fault == "corrupt secrets file":
        detail = corrupt_secrets_file(harness)
    else:
        detail = await secret_store_down(harness, monkeypatch)

    await delivers_unavailable(harness, caplog, detail)
    (audit,) = await harness.audits(registration.id)
    assert audit.status_code == 503
    assert audit.reason is not None
    assert detail in audit.reason  # the operator's record (``webhooks deliveries``) keeps what the sender is not told
    assert await counters(harness, registration.id) == (0, 0, 1)


async def test_a_document_store_that_cannot_look_the_registration_up_is_a_503(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.register("github")
    detail = "Cosmos DB request timed out after 3 retries (activity 1f0c)"

    async def store_down(container: str, query: Query) -> QueryPage:
        raise RetryableError(detail)

    monkeypatch.setattr(harness.store, "query", store_down)
    await delivers_unavailable(harness, caplog, detail)


async def test_a_registration_whose_secret_is_missing_is_a_503_not_the_senders_fault(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    registration = await harness.register("github", with_secret=False)

    with caplog.at_level(logging.INFO):
        response = await harness.deliver("github")

    assert (response.status, answered_json(response)) == (503, {"error": UNAVAILABLE})
    assert [a.outcome for a in await harness.audits(registration.id)] == ["misconfigured"]
    assert "needs at least one secret" in caplog.text


# ---------------------------------------------------------------- secrets


@pytest.mark.parametrize("rotated_after", [0, 86_400], ids=["same-tick", "a-day-later"])
async def test_the_previous_secret_verifies_only_within_the_rotation_grace(
    harness: Harness, rotated_after: int
) -> None:
    registration = await harness.register("github")
    old, new = SECRETS["github"], "gh-hook-secret-rotated-7Yp2Lq"
    assert registration.secret_name is not None
    harness.clock.advance(rotated_after)
    rotated_at = harness.clock()
    await harness.secrets.set_secret(registration.secret_name, new)
    harness.verifiers.forget(registration.id)
    grace = ROTATION_GRACE.total_seconds()

    # No forget() once the grace ends: the cached verifier must drop the old secret by itself.
    for since_rotation, old_status in ((0, 202), (grace - 1, 202), (grace + 1, 401)):
        harness.clock.value = rotated_at + since_rotation
        with_old = await harness.deliver("github", secret=old, delivery_id=uuid.uuid4().hex)
        with_new = await harness.deliver("github", secret=new, delivery_id=uuid.uuid4().hex)
        assert (with_old.status, with_new.status) == (old_status, 202), f"{since_rotation} s after the rotation"


async def test_no_secret_reaches_a_log_line(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rotated = "gh-hook-secret-rotated-Zr8Kx1"
    for kind in SCHEMES:
        await harness.register(kind)
        await harness.deliver(kind)
        await harness.deliver(kind, secret=OTHER_WHSEC, delivery_id=uuid.uuid4().hex)
    await harness.register("google")
    token = google_token(NOW)
    await harness.post("reg-google", SAMPLES["google"].body, {"Authorization": f"Bearer {token}"})
    notion = await harness.registrations.get("reg-notion")
    await harness.registrations.save(notion.model_copy(update={"verification": VerificationState.OPEN}))
    await harness.post("reg-notion", Sample("notion/verification.json").body, {})
    await harness.secrets.set_secret("webhook-github", rotated)
    harness.verifiers.forget("reg-github")
    await harness.deliver("github", secret=rotated, delivery_id=uuid.uuid4().hex)
    await harness.receiver.drain()

    logged = caplog.text
    assert "webhook.delivery" in logged
    assert "webhook.verification_candidate" in logged
    secrets = [*SECRETS.values(), NOTION_TOKEN, rotated, token]
    keys = [base64.b64decode(s.removeprefix("whsec_")).decode() for s in SECRETS.values() if s.startswith("whsec_")]
    for value in [*secrets, *keys, *(s.removeprefix("whsec_") for s in secrets)]:
        assert value not in logged


async def test_a_delivery_is_remembered_for_24_hours_only_once_its_changes_are_stored(
    build: Build, redis_client: aioredis.Redis
) -> None:
    harness = await build(queue_class=FailingQueue)
    await harness.register("github")

    assert (await harness.deliver("github")).status == 503
    await harness.receiver.drain()
    assert [key async for key in redis_client.scan_iter(match="castiel:webhook:seen:*")] == []

    assert isinstance(harness.queue, FailingQueue)
    harness.queue.failing = False
    assert (await harness.deliver("github")).status == 202
    await harness.receiver.drain()
    (key,) = [key async for key in redis_client.scan_iter(match="castiel:webhook:seen:*")]
    assert await redis_client.ttl(key) > PENDING_TTL_SECONDS
