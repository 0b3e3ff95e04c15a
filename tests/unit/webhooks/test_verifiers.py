"""A registration's verifier: built for its provider from its secrets and settings, refused with the reason when
they could never verify a delivery."""

from __future__ import annotations

import httpx
import pytest

from castiel.errors import ConfigError
from castiel.models import Provider
from castiel.webhooks.google_oidc import GoogleSigningKeys
from castiel.webhooks.schemes import STANDARD
from castiel.webhooks.verifiers import build_verifier

NOW = 1_700_000_000
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ORG_ID = "00D5g000004CzIuEAK"


@pytest.mark.parametrize(
    ("provider", "registration_settings", "scheme"),
    [
        (Provider.GITHUB, {}, "github"),
        (Provider.SLACK, {}, "slack"),
        (Provider.NOTION, {}, "notion"),
        (Provider.STANDARD, {}, "standard"),
        (Provider.SALESFORCE, {}, "standard"),
        (Provider.SALESFORCE, {"organizationId": ORG_ID}, "salesforce_soap"),
        (
            Provider.GOOGLE,
            {"audience": "https://castiel.example/hooks", "serviceAccount": "push@p.iam.gserviceaccount.com"},
            "google",
        ),
    ],
)
async def test_build_verifier_dispatches_by_provider(
    provider: Provider, registration_settings: dict[str, str], scheme: str
) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(500))) as http:
        verifier = build_verifier(provider, ["s3cret"], registration_settings, google_keys=GoogleSigningKeys(http))
        assert verifier.scheme == scheme


async def test_a_salesforce_signed_callout_verifies_through_the_registry() -> None:
    body = b'{"ChangeEventHeader": {"entityName": "Account"}}'
    verifier = build_verifier(Provider.SALESFORCE, [STANDARD_SECRET], {})
    headers = STANDARD.sign(body, STANDARD_SECRET, now=NOW, delivery_id="0001-account")
    assert (await verifier.verify(headers, body, NOW)).delivery_id == "0001-account"


@pytest.mark.parametrize(
    ("provider", "registration_settings", "reason"),
    [
        (Provider.GOOGLE, {"serviceAccount": "push@p.iam.gserviceaccount.com"}, "needs an audience"),
        (
            Provider.GOOGLE,
            {"audience": "https://castiel.example/hooks"},
            "needs the push subscription's service account",
        ),
        (Provider.SALESFORCE, {"organizationId": "not-an-org"}, "not a Salesforce organization id"),
        (Provider.GITHUB, {}, "needs at least one secret"),
    ],
)
async def test_registrations_that_cannot_verify_are_refused(
    provider: Provider, registration_settings: dict[str, str], reason: str
) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(500))) as http:
        with pytest.raises(ConfigError, match=reason):
            build_verifier(provider, [], registration_settings, google_keys=GoogleSigningKeys(http))


def test_google_needs_the_shared_key_cache() -> None:
    with pytest.raises(ConfigError, match="signing-key cache"):
        build_verifier(Provider.GOOGLE, [], {"audience": "a", "serviceAccount": "b"})
