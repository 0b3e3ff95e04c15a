"""The sandbox's signed webhooks verify and parse with the receiver's own code: each provider's scheme, and Google's
push token against the sandbox's published keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from castiel.errors import ConfigError, SignatureError
from castiel.models import Operation, Provider, WebhookRegistration
from castiel.sandbox.server import SandboxServer
from castiel.sandbox.state import Sandbox
from castiel.sandbox.webhooks import PUSH_SERVICE_ACCOUNT, WebhookSender
from castiel.webhooks.events import parse_delivery
from castiel.webhooks.google_oidc import GoogleSigningKeys
from castiel.webhooks.verifiers import build_verifier

RECEIVER = "https://receiver.test/webhooks/reg-1/events"
SECRETS = {
    "github": "gh-secret",
    "slack": "8f742231b10e8888abcd99yyyzzz85a5",
    "notion": "secret_notion_verification",
    "salesforce": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "google": None,
}
EXPECTED = {
    "github": ("issue", lambda body: str(body["id"])),
    "slack": ("message", lambda body: body["ts"]),
    "notion": ("page", lambda body: body["id"]),
    "salesforce": ("Account", lambda body: body["Id"]),
    "google": ("event", lambda body: body["id"]),
}


async def deliver(sandbox: Sandbox, provider: str, operation: Operation, record: dict[str, Any]) -> httpx.Request:
    captured: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(202)

    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as http:
        sender = WebhookSender(http, sandbox.signing_key, clock=sandbox.shared.clock)
        answer = await sender.send(provider, RECEIVER, operation, record, secret=SECRETS[provider])
    assert answer.status_code == 202
    return captured[0]


@pytest.mark.parametrize("provider", list(SECRETS))
@pytest.mark.parametrize("operation", list(Operation))
async def test_each_providers_event_verifies_and_parses(
    server: SandboxServer, sandbox: Sandbox, provider: str, operation: Operation
) -> None:
    api = sandbox.api(provider)
    record = next(api.datasets[next(iter(api.datasets))].after(None)).body
    request = await deliver(sandbox, provider, operation, record)

    settings = {"audience": RECEIVER, "serviceAccount": PUSH_SERVICE_ACCOUNT} if provider == "google" else {}
    secrets = [] if SECRETS[provider] is None else [SECRETS[provider]]
    async with httpx.AsyncClient() as http:
        keys = GoogleSigningKeys(http, clock=sandbox.shared.clock, url=f"{server.url}/google/oauth2/v3/certs")
        verifier = build_verifier(Provider(provider), secrets, settings, google_keys=keys)
        await verifier.verify(request.headers, request.content, sandbox.shared.clock())

    registration = WebhookRegistration(
        id="reg-1", tenant_id="t", provider=Provider(provider), connection_id="c", integration_id=provider
    )
    parsed = parse_delivery(
        registration, request.headers, request.content, correlation_id="corr", received_at=datetime.now(UTC)
    )
    [change] = parsed.changes
    entity_type, external_id = EXPECTED[provider]
    assert (change.entity_type, change.external_id, change.operation) == (entity_type, external_id(record), operation)


async def test_a_wrong_secret_does_not_verify(sandbox: Sandbox) -> None:
    record = next(sandbox.github.issues.after(None)).body
    request = await deliver(sandbox, "github", Operation.UPDATE, record)
    verifier = build_verifier(Provider.GITHUB, ["another-secret"], {})
    with pytest.raises(SignatureError, match=r"matches none of the registration.s secrets"):
        await verifier.verify(request.headers, request.content, sandbox.shared.clock())


async def test_an_hmac_provider_needs_a_secret(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient() as http:
        sender = WebhookSender(http, sandbox.signing_key)
        with pytest.raises(ConfigError, match="needs the registration's secret"):
            await sender.send("slack", RECEIVER, Operation.CREATE, {"ts": "1.000001"})
