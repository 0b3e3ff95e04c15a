"""Webhook verification: one scheme per provider, exactly as the provider signs, over the raw bytes (DESIGN §6).

Every verifier answers one question the same way: given the request headers, the raw body and the current time,
did the provider send this? ``Verified`` says yes, with the provider's delivery id and signed timestamp where the
scheme has them; ``SignatureError("<reason>")`` says no. Bad input never raises anything else.

* github: ``X-Hub-Signature-256: sha256=<hex HMAC(secret, body)>``; never the SHA-1 ``X-Hub-Signature``.
* slack: ``X-Slack-Signature: v0=<hex HMAC(secret, "v0:{ts}:{body}")>`` with ``X-Slack-Request-Timestamp``.
* notion: ``X-Notion-Signature: sha256=<hex HMAC(verification token, body)>``.
* standard (Standard Webhooks; also Salesforce signed callouts): ``webhook-signature: v1,<base64 HMAC(key,
  "{id}.{ts}.{body}")> …`` with ``webhook-id`` and ``webhook-timestamp``; ``whsec_`` base64 keys.
* salesforce_soap: no signature; the SOAP message's ``OrganizationId`` (``salesforce_soap.py``).
* google: ``Authorization: Bearer <OIDC JWT>`` signed by Google (``google_oidc.py``).

Policies shared by the HMAC schemes:

* Header names match case-insensitively.
* Several secrets may be configured (rotation); any one of them verifies. ``Verified.key_index`` says which, so an
  operator sees when the old secret falls out of use.
* Hex signatures must be exactly 64 hex digits; they are decoded and the digest *bytes* compared with
  ``hmac.compare_digest``, so uppercase hex (the same digest) is accepted.
* Timestamps must be ASCII digits only (no sign, fraction or space) and within ±300 s of ``now``, inclusive both ways.
* Secrets are decoded once (``whsec_`` base64 keys included) into keyed HMAC states, not per delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from castiel.errors import ConfigError, SignatureError
from castiel.models import Provider
from castiel.webhooks.google_oidc import GoogleSigningKeys, verify_push_token
from castiel.webhooks.salesforce_soap import normalize_organization_id, verify_organization

TOLERANCE_SECONDS = 300
"""How far a signed timestamp may lie from ``now``, either way, inclusive."""

AUDIENCE_SETTING = "audience"
SERVICE_ACCOUNT_SETTING = "serviceAccount"
ORGANIZATION_ID_SETTING = "organizationId"

Secret = str | bytes
"""A configured secret: text as the provider shows it, or raw key bytes."""

_DIGEST_SIZE = hashlib.sha256().digest_size
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_MAX_TIMESTAMP_DIGITS = 12
_WHSEC_PREFIX = "whsec_"
_SHOWN_REASONS = 3
_SHOWN_VERSION = 10


@dataclass(frozen=True, slots=True)
class Verified:
    """A delivery that verified: what the scheme vouches for."""

    scheme: str
    delivery_id: str | None = None
    timestamp: int | None = None
    key_index: int | None = None
    subject: str | None = None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (lowercase), matched case-insensitively."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


# ---------------------------------------------------------------- HMAC schemes


class HmacScheme(ABC):
    """A provider's HMAC-SHA256 signing scheme: ``verify`` what it sent, ``sign`` as it would (tests, CLI, sandbox)."""

    name: str

    def keys(self, secrets: Sequence[Secret]) -> tuple[hmac.HMAC, ...]:
        """The secrets decoded once into keyed HMAC states; ``ConfigError`` if there are none or one is unusable."""
        if not secrets:
            raise ConfigError(f"a {self.name} registration needs at least one secret")
        return tuple(hmac.new(self.key_bytes(secret), digestmod=hashlib.sha256) for secret in secrets)

    def key_bytes(self, secret: Secret) -> bytes:
        """The HMAC key a configured secret stands for: its UTF-8 bytes, or the bytes given."""
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if not key:
            raise ConfigError(f"an empty {self.name} secret")
        return key

    @abstractmethod
    def verify(self, headers: Mapping[str, str], body: bytes, keys: Sequence[hmac.HMAC], now: float) -> Verified:
        """Check the delivery against ``keys`` at time ``now``; ``SignatureError`` with the reason if it fails."""

    @abstractmethod
    def sign(self, body: bytes, secret: Secret, *, now: float, delivery_id: str | None = None) -> dict[str, str]:
        """The headers the provider would send with ``body``; ``delivery_id`` goes where the scheme carries one."""

    def _match(self, keys: Sequence[hmac.HMAC], candidates: Sequence[bytes], *parts: bytes) -> int:
        """The index of the key whose MAC over ``parts`` equals a candidate; ``SignatureError`` if none does."""
        for index, key in enumerate(keys):
            digest = _digest(key, parts)
            # Every candidate is compared, so the time taken says nothing about which one (if any) matched.
            if sum(hmac.compare_digest(digest, candidate) for candidate in candidates):
                return index
        raise SignatureError(f"the {self.name} signature matches none of the registration's secrets")

    def _mac(self, secret: Secret, *parts: bytes) -> bytes:
        return _digest(hmac.new(self.key_bytes(secret), digestmod=hashlib.sha256), parts)


class BodyHexScheme(HmacScheme):
    """``sha256=<hex HMAC-SHA256(secret, body)>`` in one header (GitHub, Notion)."""

    def __init__(
        self, name: str, signature_header: str, *, delivery_header: str | None = None, missing_hint: str = ""
    ) -> None:
        self.name = name
        self.signature_header = signature_header
        self.delivery_header = delivery_header
        self._missing_hint = missing_hint

    def verify(self, headers: Mapping[str, str], body: bytes, keys: Sequence[hmac.HMAC], now: float) -> Verified:
        """Check the body's HMAC; the delivery id comes from ``delivery_header`` when the provider sends one."""
        value = header(headers, self.signature_header.lower())
        if value is None:
            raise SignatureError(f"missing {self.signature_header} header{self._missing_hint}")
        digest = _prefixed_hex(value, "sha256=", self.signature_header)
        index = self._match(keys, (digest,), body)
        delivery_id = header(headers, self.delivery_header.lower()) if self.delivery_header else None
        return Verified(self.name, delivery_id=delivery_id or None, key_index=index)

    def sign(self, body: bytes, secret: Secret, *, now: float, delivery_id: str | None = None) -> dict[str, str]:
        """The signature header, plus the delivery header (a fresh id if none is given) when the scheme has one."""
        signed = {self.signature_header: "sha256=" + self._mac(secret, body).hex()}
        if self.delivery_header:
            signed[self.delivery_header] = delivery_id or str(uuid.uuid4())
        return signed


class SlackScheme(HmacScheme):
    """Slack: ``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:{ts}:{body}")>`` within the replay window."""

    name = "slack"
    signature_header = "X-Slack-Signature"
    timestamp_header = "X-Slack-Request-Timestamp"

    def verify(self, headers: Mapping[str, str], body: bytes, keys: Sequence[hmac.HMAC], now: float) -> Verified:
        """Check the timestamp window, then the HMAC of the versioned base string."""
        timestamp, stamp = _timestamp(header(headers, self.timestamp_header.lower()), self.timestamp_header, now)
        value = header(headers, self.signature_header.lower())
        if value is None:
            raise SignatureError(f"missing {self.signature_header} header")
        digest = _prefixed_hex(value, "v0=", self.signature_header)
        index = self._match(keys, (digest,), b"v0:" + stamp.encode() + b":", body)
        return Verified(self.name, timestamp=timestamp, key_index=index)

    def sign(self, body: bytes, secret: Secret, *, now: float, delivery_id: str | None = None) -> dict[str, str]:
        """Slack's two headers for ``body`` sent at ``now`` (Slack has no delivery header)."""
        stamp = int(now)
        return {
            self.timestamp_header: str(stamp),
            self.signature_header: "v0=" + self._mac(secret, f"v0:{stamp}:".encode(), body).hex(),
        }


class StandardWebhooksScheme(HmacScheme):
    """Standard Webhooks (standardwebhooks.com): Salesforce signed callouts and the generic ``standard`` provider.

    Keys are ``whsec_<base64>`` as the spec serializes them (padding optional); any other text, or bytes, is used
    as the raw key. The signature header is a space-separated list of ``<version>,<base64>`` entries; ``v1``
    entries are HMAC-SHA256 and any one matching verifies, as in the reference library (standard-webhooks,
    ``libraries/python``). Entries it cannot use — another version (``v1a``), no comma, not base64, not 32 bytes —
    are skipped, never fatal (the reference raises on the last three): a sender may list signatures we do not know
    beside one we do. A refusal names what was skipped.
    """

    name = "standard"
    id_header = "webhook-id"
    timestamp_header = "webhook-timestamp"
    signature_header = "webhook-signature"

    def key_bytes(self, secret: Secret) -> bytes:
        """A ``whsec_`` key base64-decoded, any other secret as raw bytes."""
        if isinstance(secret, str) and secret.startswith(_WHSEC_PREFIX):
            encoded = secret.removeprefix(_WHSEC_PREFIX)
            try:
                secret = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
            except ValueError as exc:
                raise ConfigError("a whsec_ secret that is not valid base64") from exc
        return super().key_bytes(secret)

    def verify(self, headers: Mapping[str, str], body: bytes, keys: Sequence[hmac.HMAC], now: float) -> Verified:
        """Check id, timestamp window and the ``v1`` signatures over ``{id}.{ts}.{body}``."""
        delivery_id = header(headers, self.id_header)
        if not delivery_id:
            raise SignatureError(f"missing {self.id_header} header")
        if not (delivery_id.isascii() and delivery_id.isprintable()):
            raise SignatureError(f"{self.id_header} is not printable ASCII")
        timestamp, stamp = _timestamp(header(headers, self.timestamp_header), self.timestamp_header, now)
        value = header(headers, self.signature_header)
        if value is None:
            raise SignatureError(f"missing {self.signature_header} header")
        candidates, skipped = _v1_signatures(value)
        try:
            index = self._match(keys, candidates, f"{delivery_id}.{stamp}.".encode(), body)
        except SignatureError as exc:
            if not skipped:
                raise
            raise SignatureError(f"{exc} (skipped: {_listed(skipped)})") from None
        return Verified(self.name, delivery_id=delivery_id, timestamp=timestamp, key_index=index)

    def sign(self, body: bytes, secret: Secret, *, now: float, delivery_id: str | None = None) -> dict[str, str]:
        """The three headers, with a fresh ``msg_`` id when none is given."""
        delivery_id = delivery_id or f"msg_{uuid.uuid4().hex}"
        stamp = int(now)
        signature = self._mac(secret, f"{delivery_id}.{stamp}.".encode(), body)
        return {
            self.id_header: delivery_id,
            self.timestamp_header: str(stamp),
            self.signature_header: "v1," + base64.b64encode(signature).decode(),
        }


GITHUB = BodyHexScheme(
    "github",
    "X-Hub-Signature-256",
    delivery_header="X-GitHub-Delivery",
    missing_hint=" (the SHA-1 X-Hub-Signature is never accepted)",
)
SLACK = SlackScheme()
NOTION = BodyHexScheme("notion", "X-Notion-Signature")
STANDARD = StandardWebhooksScheme()

HMAC_SCHEMES: Mapping[str, HmacScheme] = {scheme.name: scheme for scheme in (GITHUB, SLACK, NOTION, STANDARD)}
"""Every HMAC scheme by name."""


def _digest(key: hmac.HMAC, parts: Sequence[bytes]) -> bytes:
    # A copy of the keyed state skips re-deriving the padded key on every delivery.
    mac = key.copy()
    for part in parts:
        mac.update(part)
    return mac.digest()


def _prefixed_hex(value: str, prefix: str, name: str) -> bytes:
    if not value.startswith(prefix):
        raise SignatureError(f"{name} does not start with {prefix}")
    digits = value[len(prefix) :]
    if len(digits) != 2 * _DIGEST_SIZE or not _HEX_DIGITS.issuperset(digits):
        raise SignatureError(f"{name} is not {prefix} followed by {2 * _DIGEST_SIZE} hex digits")
    return bytes.fromhex(digits)


def _timestamp(value: str | None, name: str, now: float) -> tuple[int, str]:
    """The timestamp as seconds and as sent: the signed content uses the header text, leading zeros and all."""
    if value is None:
        raise SignatureError(f"missing {name} header")
    if not (0 < len(value) <= _MAX_TIMESTAMP_DIGITS and value.isascii() and value.isdigit()):
        raise SignatureError(f"{name} is not whole Unix seconds (digits only)")
    timestamp = int(value)
    age = now - timestamp
    if age > TOLERANCE_SECONDS:
        raise SignatureError(f"{name} is {age:.0f} s old, outside the {TOLERANCE_SECONDS} s window (stale or replayed)")
    if -age > TOLERANCE_SECONDS:
        raise SignatureError(f"{name} is {-age:.0f} s in the future, outside the {TOLERANCE_SECONDS} s window")
    return timestamp, value


def _v1_signatures(value: str) -> tuple[list[bytes], list[str]]:
    """The ``v1`` signatures of a ``webhook-signature`` header, and why each other entry was skipped."""
    entries = [entry for entry in value.split(" ") if entry]
    if not entries:
        raise SignatureError("webhook-signature is empty")
    signatures: list[bytes] = []
    skipped: list[str] = []
    for position, entry in enumerate(entries, start=1):
        version, comma, encoded = entry.partition(",")
        if not comma:
            skipped.append(f"entry {position} has no comma")
        elif version != "v1":
            skipped.append(f"entry {position} is version {version[:_SHOWN_VERSION]}")
        else:
            try:
                signature = base64.b64decode(encoded, validate=True)
            except ValueError:
                skipped.append(f"entry {position} is not valid base64")
                continue
            if len(signature) == _DIGEST_SIZE:
                signatures.append(signature)
            else:
                skipped.append(f"entry {position} is not a {_DIGEST_SIZE}-byte HMAC-SHA256")
    if not signatures:
        raise SignatureError(f"webhook-signature has no usable v1 signature ({_listed(skipped)})")
    return signatures, skipped


def _listed(reasons: Sequence[str]) -> str:
    """Reasons joined for a refusal, at most ``_SHOWN_REASONS`` of them (a header may carry thousands of entries)."""
    shown = "; ".join(reasons[:_SHOWN_REASONS])
    more = len(reasons) - _SHOWN_REASONS
    return f"{shown}; {more} more" if more > 0 else shown


# ---------------------------------------------------------------- verifiers bound to a registration


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
    if provider is Provider.SALESFORCE and settings.get(ORGANIZATION_ID_SETTING):
        return OrganizationIdVerifier(str(settings[ORGANIZATION_ID_SETTING]))
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
