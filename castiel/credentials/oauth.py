"""Minting access tokens: refresh, client credentials, JWT bearer assertions and the authorization-code exchange.

``TokenEndpoint`` is the httpx boundary: it posts a grant in the provider's dialect; transport errors become the
taxonomy through the shared httpx table (``castiel.http_errors``). ``renew`` takes a stored credential and returns
the same credential with a new access token, keeping what the answer left out: Google never sends a new refresh token
and Salesforce sends it only when rotation is on, so the old one stays; a rotated one (Slack, GitHub, Notion)
replaces it. A response without ``expires_in`` (Salesforce) leaves the expiry unknown — the 401 path refreshes it
then.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
import jwt

from castiel.credentials.dialects import DIALECTS, Dialect, TokenGrant, read_grant
from castiel.credentials.types import (
    Credential,
    JwtBearer,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    ServiceAccountKey,
    scrub,
    secret_strings,
)
from castiel.errors import ConfigError, InvalidGrant
from castiel.http_errors import HTTPX_ERRORS
from castiel.models import Provider

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_TIMEOUT_SECONDS = 30.0
"""One token request's budget; the refresh lock outlives it (``lock.LOCK_TTL_SECONDS``)."""
_SALESFORCE_ASSERTION_SECONDS = 180  # "exp short (minutes)"
_GOOGLE_ASSERTION_SECONDS = 3600  # Google's maximum
_SECRET_FIELDS = ("refresh_token", "client_secret", "code", "code_verifier", "assertion")


class TokenEndpoint:
    """Posts grants to token endpoints over one shared ``httpx.AsyncClient``."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def post(
        self,
        dialect: Dialect,
        url: str,
        fields: dict[str, str],
        *,
        client_id: str | None,
        client_secret: str | None,
        hide: Sequence[str] = (),
    ) -> TokenGrant:
        """Send one grant; the answer as a ``TokenGrant`` or a taxonomy error (see ``dialects.read_grant``).

        ``hide`` lists the secrets of this exchange: provider text quoting one is scrubbed before it reaches an error.
        """
        body = dict(fields)
        payload: dict[str, Any] = {"json": body} if dialect.json_body else {"data": body}
        if client_id is not None:
            if dialect.client_auth == "basic" and client_secret is not None:
                payload["auth"] = httpx.BasicAuth(client_id, client_secret)
            else:
                body["client_id"] = client_id
                if client_secret is not None:
                    body["client_secret"] = client_secret
        with HTTPX_ERRORS.translating(f"{dialect.provider.value} token endpoint"):
            response = await self._http.post(
                url, headers={"Accept": "application/json"}, timeout=TOKEN_TIMEOUT_SECONDS, **payload
            )
        sent_secrets = [body[key] for key in _SECRET_FIELDS if key in body]
        return read_grant(dialect, response, partial(scrub, secrets=(*hide, *sent_secrets)))


def token_url(value: Credential, provider: Provider) -> str:
    """The credential's own ``token_url``, else the provider's default; ``ConfigError`` when there is neither."""
    url = getattr(value, "token_url", None) or DIALECTS[provider].endpoint
    if not url:
        raise ConfigError(f"a {value.credential_type} credential for {provider.value} needs a token_url")
    return str(url)


async def renew(value: Credential, provider: Provider, endpoint: TokenEndpoint, now: datetime) -> Credential:
    """``value`` with a freshly minted access token (and whatever else the answer renewed)."""
    dialect = DIALECTS[provider]
    url = token_url(value, provider)
    if isinstance(value, OAuth2AuthorizationCode):
        if value.refresh_token is None:
            raise InvalidGrant("no refresh token to renew the access token with")
        fields = {"grant_type": "refresh_token", "refresh_token": value.refresh_token.get_secret_value()}
        secret = value.client_secret.get_secret_value() if value.client_secret else None
        grant = await endpoint.post(
            dialect, url, fields, client_id=value.client_id, client_secret=secret, hide=secret_strings(value)
        )
    elif isinstance(value, OAuth2ClientCredentials):
        fields = {"grant_type": "client_credentials", **({"scope": value.scope} if value.scope else {})}
        grant = await endpoint.post(
            dialect,
            url,
            fields,
            client_id=value.client_id,
            client_secret=value.client_secret.get_secret_value(),
            hide=secret_strings(value),
        )
    elif isinstance(value, JwtBearer | ServiceAccountKey):
        assertion = _assertion(value, url, now)
        fields = {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
        grant = await endpoint.post(
            dialect, url, fields, client_id=None, client_secret=None, hide=secret_strings(value)
        )
    else:
        raise ConfigError(
            f"a {value.credential_type} cannot be refreshed: replace it with `castiel credentials rotate`"
        )
    return merge(value, grant, now)


def merge(value: Credential, grant: TokenGrant, now: datetime) -> Credential:
    """``value`` updated by ``grant``; what the grant leaves out is kept (never a lost refresh token)."""
    updates: dict[str, Any] = {
        "access_token": grant.access_token,
        "expires_at": _after(now, grant.expires_in),
    }
    if isinstance(value, OAuth2AuthorizationCode):
        if grant.refresh_token is not None:
            updates["refresh_token"] = grant.refresh_token
            updates["refresh_token_expires_at"] = _after(now, grant.refresh_token_expires_in)
        if grant.scope:
            updates["scope"] = grant.scope
    if grant.instance_url and isinstance(value, OAuth2AuthorizationCode | JwtBearer):
        updates["instance_url"] = grant.instance_url
    return value.model_copy(update=updates)


async def exchange_code(
    provider: Provider,
    endpoint: TokenEndpoint,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    client_id: str,
    client_secret: str | None,
    token_url_override: str | None,
    now: datetime,
) -> OAuth2AuthorizationCode:
    """The authorization-code grant (RFC 6749 §4.1.3 with PKCE, RFC 7636): the new credential's value."""
    dialect = DIALECTS[provider]
    url = token_url_override or dialect.endpoint
    if not url:
        raise ConfigError(f"{provider.value} has no default token endpoint: pass --token-url")
    fields = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    grant = await endpoint.post(dialect, url, fields, client_id=client_id, client_secret=client_secret)
    return OAuth2AuthorizationCode(
        access_token=grant.access_token,
        refresh_token=grant.refresh_token,
        expires_at=_after(now, grant.expires_in),
        refresh_token_expires_at=_after(now, grant.refresh_token_expires_in),
        client_id=client_id,
        client_secret=client_secret,
        scope=grant.scope,
        token_url=token_url_override,
        instance_url=grant.instance_url,
    )


def _assertion(value: JwtBearer | ServiceAccountKey, url: str, now: datetime) -> str:
    """The RS256 assertion of the JWT bearer grant (RFC 7523), as Salesforce or Google expect it."""
    issued = int(now.timestamp())
    headers: dict[str, Any] | None = None
    if isinstance(value, JwtBearer):
        claims: dict[str, Any] = {
            "iss": value.client_id,
            "sub": value.username,
            "aud": value.audience,
            "exp": issued + _SALESFORCE_ASSERTION_SECONDS,
        }
    else:
        if not value.scope:
            raise ConfigError("a service_account_key credential needs a scope (space-separated)")
        claims = {
            "iss": value.client_email,
            "scope": value.scope,
            "aud": url,
            "iat": issued,
            "exp": issued + _GOOGLE_ASSERTION_SECONDS,
            **({"sub": value.subject} if value.subject else {}),
        }
        headers = {"kid": value.private_key_id} if value.private_key_id else None
    try:
        return jwt.encode(claims, value.private_key.get_secret_value(), algorithm="RS256", headers=headers)
    except (ValueError, TypeError, jwt.PyJWTError):
        raise ConfigError(f"the private_key of this {value.credential_type} cannot sign (RS256)") from None


def _after(now: datetime, seconds: float | None) -> datetime | None:
    return now + timedelta(seconds=seconds) if seconds is not None else None
