"""Webhook verification bound to a registration (DESIGN §6): the verifier of each provider's scheme, built once from
the registration's secrets and settings and reused for every delivery.

Every verifier answers one question the same way: given the request headers, the raw body and the current time,
did the provider send this? ``Verified`` says yes, with the provider's delivery id and signed timestamp where the
scheme has them; ``SignatureError("<reason>")`` says no. Bad input never raises anything else.

* github, slack, notion, standard (Standard Webhooks; also Salesforce signed callouts): HMAC-SHA256, one scheme
  each in ``castiel.webhooks.schemes``, with several secrets accepted for rotation.
* salesforce_soap: no signature; the SOAP message's ``OrganizationId`` (``salesforce_soap.py``).
* google: ``Authorization: Bearer <OIDC JWT>`` signed by Google (``google_oidc.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from castiel.errors import ConfigError, SignatureError
from castiel.models import Provider
from castiel.webhooks.google_oidc import GoogleSigningKeys, verify_push_token
from castiel.webhooks.salesforce_soap import normalize_organization_id, verify_organization
from castiel.webhooks.schemes import GITHUB, NOTION, SLACK, STANDARD, HmacScheme, Secret, Verified, header

AUDIENCE_SETTING = "audience"
SERVICE_ACCOUNT_SETTING = "serviceAccount"
ORGANIZATION_ID_SETTING = "organizationId"


class Verifier(Protocol):
    """One registration's verification, built once (secrets decoded, settings checked) and reused per delivery."""

    @property
    def scheme(self) -> str:
        """The scheme's name, for audit lines and reasons."""
        ...

    async def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        """``Verified``, or ``SignatureError`` with the reason (``RetryableError`` only if Google is unreachable)."""
        ...


class HmacVerifier:
    """An HMAC scheme bound to a registration's secrets."""

    def __init__(self, scheme: HmacScheme, secrets: Sequence[Secret]) -> None:
        self._scheme = scheme
        self._keys = scheme.keys(secrets)

    @property
    def scheme(self) -> str:
        """The scheme's name."""
        return self._scheme.name

    async def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        """Verify with every configured secret."""
        return self._scheme.verify(headers, body, self._keys, now)


class OrganizationIdVerifier:
    """Salesforce Outbound Messages (SOAP), accepted from the registration's organization only."""

    scheme = "salesforce_soap"

    def __init__(self, organization_id: str) -> None:
        self._organization_id = normalize_organization_id(organization_id)

    async def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        """Parse the envelope and compare its OrganizationId."""
        message = verify_organization(body, self._organization_id)
        return Verified(self.scheme, subject=message.organization_id)


class GooglePushVerifier:
    """Google Pub/Sub push: the bearer OIDC token must be for this registration's audience and service account."""

    scheme = "google"

    def __init__(self, keys: GoogleSigningKeys, *, audience: str, service_account: str) -> None:
        self._keys = keys
        self._audience = audience
        self._service_account = service_account

    async def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        """Verify the ``Authorization: Bearer`` token."""
        authorization = header(headers, "authorization")
        if authorization is None:
            raise SignatureError("missing Authorization header")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise SignatureError("Authorization is not a Bearer token")
        identity = await verify_push_token(
            token.strip(), self._keys, audience=self._audience, service_account=self._service_account, now=now
        )
        return Verified(self.scheme, timestamp=identity.issued_at, subject=identity.email)


def build_verifier(
    provider: Provider,
    secrets: Sequence[Secret],
    settings: Mapping[str, Any],
    *,
    google_keys: GoogleSigningKeys | None = None,
) -> Verifier:
    """The verifier for a registration of ``provider``; ``ConfigError`` if its secrets or settings cannot verify.

    Salesforce registrations with ``organizationId`` in their settings take SOAP Outbound Messages; without it,
    Standard Webhooks signed callouts. Google registrations use ``audience`` and ``serviceAccount``.
    """
    if provider is Provider.GOOGLE:
        audience, service_account = google_identity(settings)
        if google_keys is None:
            raise ConfigError("Google push verification needs the shared Google signing-key cache")
        return GooglePushVerifier(google_keys, audience=audience, service_account=service_account)
    if provider is Provider.SALESFORCE:
        if settings.get(ORGANIZATION_ID_SETTING):
            return OrganizationIdVerifier(str(settings[ORGANIZATION_ID_SETTING]))
        if not secrets:
            raise ConfigError(
                "a salesforce registration needs a secret (its Apex callouts sign in the Standard Webhooks format) or"
                " an organization id (SOAP Outbound Messages)"
            )
    scheme = _HMAC_BY_PROVIDER.get(provider)
    if scheme is None:
        raise ConfigError(f"no webhook verification for provider {provider}")
    return HmacVerifier(scheme, secrets)


def check_verifiable(provider: Provider, secrets: Sequence[Secret], settings: Mapping[str, Any]) -> None:
    """``ConfigError`` saying why a registration of ``provider`` with these secrets and settings could never verify a
    delivery: an HMAC secret missing or undecodable (a ``whsec_`` key that is not base64), a Salesforce organization
    id that is not one, a Google registration without audience or service account — or secrets given to a scheme
    that takes none. The one check behind ``webhooks add``, ``rotate`` and ``verify``; no I/O."""
    if provider is Provider.GOOGLE:
        google_identity(settings)
        takes_secrets = False
    else:
        takes_secrets = isinstance(build_verifier(provider, secrets, settings), HmacVerifier)
    if secrets and not takes_secrets:
        raise ConfigError(f"this {provider.value} registration verifies without a secret: give none")


def google_identity(settings: Mapping[str, Any]) -> tuple[str, str]:
    """The audience and service account a Google registration checks push tokens against; ``ConfigError`` if one
    is missing."""
    audience, service_account = settings.get(AUDIENCE_SETTING), settings.get(SERVICE_ACCOUNT_SETTING)
    if not audience:
        raise ConfigError(
            "a Google registration needs an audience: without one any Google-signed token would be accepted"
        )
    if not service_account:
        raise ConfigError("a Google registration needs the push subscription's service account email")
    return str(audience), str(service_account)


_HMAC_BY_PROVIDER: Mapping[Provider, HmacScheme] = {
    Provider.GITHUB: GITHUB,
    Provider.SLACK: SLACK,
    Provider.NOTION: NOTION,
    Provider.STANDARD: STANDARD,
    Provider.SALESFORCE: STANDARD,
}
