"""Google Pub/Sub push authentication: the OIDC token Pub/Sub sends as ``Authorization: Bearer``.

A push subscription configured with a service account signs a Google ID token per request: RS256, issued by
``accounts.google.com``, addressed to the subscription's audience, naming the service account in ``email``. We accept
it only when every one of those matches the registration, the token's times fit the injected clock (with a small
leeway for skew) and the signature verifies against one of Google's published keys.

Google's keys (a JWKS) are fetched over a shared ``httpx.AsyncClient`` and kept as long as the response's
``Cache-Control: max-age`` (less its ``Age``) allows. A token naming a key we do not hold triggers a refetch, since
Google may have rotated, but at most once per ``refetch_interval``, so forged key ids cannot make us hammer Google.
If Google cannot be reached, keys already held keep working; with none held the delivery is retryable, not refused.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import jwt

from castiel.clock import Clock, system_clock
from castiel.errors import RetryableError, SignatureError

if TYPE_CHECKING:
    from jwt.types import Options

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
LEEWAY_SECONDS = 30
"""Clock skew tolerated on ``exp`` and ``iat``."""

_ALGORITHM = "RS256"
# Everything PyJWT would check against the wall clock, or with exceptions too coarse for an operator, is checked here.
_SIGNATURE_ONLY: Options = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
}

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GoogleIdentity:
    """Who a verified push token says sent the delivery."""

    email: str
    subject: str | None
    issued_at: int
    expires_at: int


class GoogleSigningKeys:
    """Google's token-signing keys, cached per the JWKS response's cache headers; share one per process."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        clock: Clock = system_clock,
        url: str = GOOGLE_CERTS_URL,
        refetch_interval: float = 30.0,
    ) -> None:
        self._http = http
        self._clock = clock
        self._url = url
        self._refetch_interval = refetch_interval
        self._keys: dict[str, jwt.PyJWK] = {}
        self._expires_at = -math.inf
        self._attempted_at = -math.inf
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> jwt.PyJWK:
        """The key ``kid``; ``SignatureError`` if Google does not publish it, ``RetryableError`` if Google is down."""
        now = self._clock()
        key = self._keys.get(kid)
        if key is not None and now < self._expires_at:
            return key
        if now - self._attempted_at >= self._refetch_interval:
            async with self._lock:
                # Whoever held the lock may have just fetched: then this one does not fetch again.
                if now - self._attempted_at >= self._refetch_interval:
                    await self._refresh(kid, now)
            key = self._keys.get(kid)
        if key is not None:
            return key
        if not self._keys:
            raise RetryableError("Google's token-signing keys are unavailable")
        raise SignatureError("the token's key id is not one of Google's signing keys")

    async def _refresh(self, kid: str, now: float) -> None:
        try:
            keys, max_age = await self._fetch()
        except RetryableError:
            if kid not in self._keys:
                raise
            _log.warning("could not refresh Google's signing keys; using the cached set past its max-age")
            return
        finally:
            # Stamped once the attempt is over, so callers queued on the lock meanwhile see it and do not repeat it.
            self._attempted_at = now
        self._keys = keys
        self._expires_at = now + max_age

    async def _fetch(self) -> tuple[dict[str, jwt.PyJWK], float]:
        try:
            response = await self._http.get(self._url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RetryableError(f"could not fetch Google's signing keys from {self._url}: {exc}") from exc
        keys = _parse_jwks(document)
        if not keys:
            raise RetryableError(f"{self._url} published no RS256 signing keys")
        return keys, _freshness(response.headers)


async def verify_push_token(
    token: str, keys: GoogleSigningKeys, *, audience: str, service_account: str, now: float
) -> GoogleIdentity:
    """Verify a Pub/Sub push token for the registration's audience and service account at time ``now``."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise SignatureError("the bearer token is not a JWT") from exc
    if header.get("alg") != _ALGORITHM:
        raise SignatureError("the token is not signed with RS256")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise SignatureError("the token header names no key id")
    key = await keys.get(kid)
    try:
        claims = jwt.decode(token, key, algorithms=[_ALGORITHM], options=_SIGNATURE_ONLY)
    except jwt.InvalidSignatureError as exc:
        raise SignatureError("the token signature does not verify") from exc
    except jwt.PyJWTError as exc:
        raise SignatureError("the token cannot be decoded") from exc
    return _check_claims(claims, audience=audience, service_account=service_account, now=now)


def _check_claims(claims: Mapping[str, Any], *, audience: str, service_account: str, now: float) -> GoogleIdentity:
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or issuer not in GOOGLE_ISSUERS:
        raise SignatureError("the token was not issued by accounts.google.com")
    token_audience = claims.get("aud")
    if not (token_audience == audience or (isinstance(token_audience, list) and audience in token_audience)):
        raise SignatureError("the token audience is not the registration's audience")
    email = claims.get("email")
    if email != service_account:
        raise SignatureError("the token email is not the registration's push service account")
    if claims.get("email_verified") is not True:
        raise SignatureError("the token email is not verified")
    expires_at = _epoch_claim(claims, "exp")
    issued_at = _epoch_claim(claims, "iat")
    if now > expires_at + LEEWAY_SECONDS:
        raise SignatureError(f"the token expired {now - expires_at:.0f} s ago")
    if issued_at > now + LEEWAY_SECONDS:
        raise SignatureError(f"the token is issued {issued_at - now:.0f} s in the future")
    subject = claims.get("sub")
    return GoogleIdentity(
        email=service_account,
        subject=subject if isinstance(subject, str) else None,
        issued_at=issued_at,
        expires_at=expires_at,
    )


def _epoch_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SignatureError(f"the token has no numeric {name} claim")
    return int(value)


def _parse_jwks(document: object) -> dict[str, jwt.PyJWK]:
    entries = document.get("keys") if isinstance(document, dict) else None
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("alg", _ALGORITHM) != _ALGORITHM:
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str):
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm=_ALGORITHM)
        except jwt.PyJWTError:
            _log.warning("skipping an unusable key in Google's JWKS (kid %s)", kid)
    return keys


def _freshness(headers: httpx.Headers) -> float:
    """Seconds the response stays fresh: ``max-age`` less ``Age``; 0 when uncacheable or unstated."""
    directives = [part.strip().lower() for part in headers.get("cache-control", "").split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    max_age = next((_seconds(d.removeprefix("max-age=")) for d in directives if d.startswith("max-age=")), 0)
    return float(max(0, max_age - _seconds(headers.get("age", "0"))))


def _seconds(value: str) -> int:
    value = value.strip().strip('"')
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 10 else 0
