"""What differs between the five providers' OAuth token endpoints, and how their answers are read (PROVIDERS.md).

Each provider is a ``Dialect``: default endpoints, how the client authenticates (form fields or HTTP Basic), how the
body is encoded (form, or Notion's JSON), and an error table consulted before the RFC 6749 defaults — the defaults
are extended row by row, never replaced. ``read_grant`` turns any answer into a ``TokenGrant`` or an error of the
taxonomy: a dead grant is ``InvalidGrant`` (the connection needs re-authorisation), a misregistered client
``ConfigError``, and 5xx, 429 or a provider's "try later" code ``RetryableError``. Slack answers errors with HTTP 200
and ``ok: false``; GitHub with HTTP 200 and an ``error`` field, form-encoded unless JSON was asked for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
from pydantic import SecretStr

from castiel.credentials.types import is_sendable
from castiel.errors import ConfigError, InvalidGrant, PermanentError, RateLimited, RetryableError
from castiel.models import Provider


class ErrorAction(StrEnum):
    """What a token endpoint's error code means for the caller."""

    GRANT_DEAD = "grant_dead"
    CLIENT = "client"
    RETRY = "retry"


DEFAULT_ERRORS: Mapping[str, ErrorAction] = {
    "invalid_grant": ErrorAction.GRANT_DEAD,
    "invalid_client": ErrorAction.CLIENT,
    "unauthorized_client": ErrorAction.CLIENT,
    "unsupported_grant_type": ErrorAction.CLIENT,
    "invalid_request": ErrorAction.CLIENT,
    "invalid_scope": ErrorAction.CLIENT,
    "server_error": ErrorAction.RETRY,
    "temporarily_unavailable": ErrorAction.RETRY,
}
"""RFC 6749 §5.2 error codes; every dialect falls back to these."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """One provider's token endpoint conventions."""

    provider: Provider
    endpoint: str | None
    """The token endpoint."""
    authorize_url: str | None
    client_auth: Literal["body", "basic"] = "body"
    json_body: bool = False
    errors: Mapping[str, ErrorAction] = field(default_factory=dict)
    authorize_params: Mapping[str, str] = field(default_factory=dict)

    def action_for(self, code: str) -> ErrorAction | None:
        """The provider's row for ``code`` first, then the RFC default."""
        return self.errors.get(code) or DEFAULT_ERRORS.get(code)


_GRANT, _CLIENT, _RETRY = ErrorAction.GRANT_DEAD, ErrorAction.CLIENT, ErrorAction.RETRY

DIALECTS: Mapping[Provider, Dialect] = {
    Provider.SALESFORCE: Dialect(
        Provider.SALESFORCE,
        endpoint="https://login.salesforce.com/services/oauth2/token",
        authorize_url="https://login.salesforce.com/services/oauth2/authorize",
        errors={"inactive_user": _GRANT, "inactive_org": _GRANT, "invalid_client_id": _CLIENT},
    ),
    Provider.GOOGLE: Dialect(
        Provider.GOOGLE,
        endpoint="https://oauth2.googleapis.com/token",
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        # Without offline access and a fresh consent Google issues no refresh token.
        authorize_params={"access_type": "offline", "prompt": "consent"},
    ),
    Provider.SLACK: Dialect(
        Provider.SLACK,
        endpoint="https://slack.com/api/oauth.v2.access",
        authorize_url="https://slack.com/oauth/v2/authorize",
        errors={
            "invalid_refresh_token": _GRANT,
            "token_revoked": _GRANT,
            "token_expired": _GRANT,
            "invalid_code": _GRANT,
            "code_already_used": _GRANT,
            "account_inactive": _GRANT,
            "invalid_client_id": _CLIENT,
            "bad_client_secret": _CLIENT,
            "bad_redirect_uri": _CLIENT,
            "invalid_grant_type": _CLIENT,
            "ratelimited": _RETRY,
            "internal_error": _RETRY,
            "fatal_error": _RETRY,
            "service_unavailable": _RETRY,
            "request_timeout": _RETRY,
        },
    ),
    Provider.GITHUB: Dialect(
        Provider.GITHUB,
        endpoint="https://github.com/login/oauth/access_token",
        authorize_url="https://github.com/login/oauth/authorize",
        errors={
            "bad_refresh_token": _GRANT,
            "bad_verification_code": _GRANT,
            "incorrect_client_credentials": _CLIENT,
            "redirect_uri_mismatch": _CLIENT,
            "unverified_user_email": _CLIENT,
        },
    ),
    Provider.NOTION: Dialect(
        Provider.NOTION,
        endpoint="https://api.notion.com/v1/oauth/token",
        authorize_url="https://api.notion.com/v1/oauth/authorize",
        client_auth="basic",
        json_body=True,
        authorize_params={"owner": "user"},
    ),
    Provider.STANDARD: Dialect(Provider.STANDARD, endpoint=None, authorize_url=None, client_auth="basic"),
}


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a token endpoint granted. Absent fields are None: the caller keeps what it had."""

    access_token: SecretStr
    refresh_token: SecretStr | None = None
    expires_in: float | None = None
    refresh_token_expires_in: float | None = None
    scope: str | None = None
    instance_url: str | None = None


def read_grant(dialect: Dialect, response: httpx.Response, scrub: Callable[[str], str]) -> TokenGrant:
    """The grant in ``response``, or the taxonomy error its status or error code means.

    ``scrub`` removes the credential's own secrets from any text the provider sent back before it reaches an
    exception message.
    """
    name = dialect.provider.value
    if response.status_code == 429:
        retry_after = _number(response.headers.get("retry-after")) or 60.0
        raise RateLimited(f"{name} token endpoint: rate limited (429)", retry_after)
    if response.status_code >= 500:
        raise RetryableError(f"{name} token endpoint answered HTTP {response.status_code}")
    body = _decode(response)
    code = _error_code(body)
    if code is not None or response.status_code >= 400:
        _raise_for(dialect, code, response.status_code, body, scrub)
    # Slack puts a user token (user scopes only) under ``authed_user`` on the first exchange.
    authed_user = body.get("authed_user")
    if not body.get("access_token") and isinstance(authed_user, dict) and authed_user.get("access_token"):
        body = authed_user
    access_token = _text(body.get("access_token"))
    if access_token is None:
        raise PermanentError(f"{name} token endpoint answered without an access_token")
    if not is_sendable(access_token):
        # Stored, it would fail every request with the token in httpx's error: refused here, never quoted.
        raise PermanentError(
            f"{name} token endpoint answered an access_token that cannot go into a header (control or non-ASCII"
            " characters); not stored"
        )
    refresh_token = _text(body.get("refresh_token"))
    return TokenGrant(
        access_token=SecretStr(access_token),
        refresh_token=SecretStr(refresh_token) if refresh_token else None,
        expires_in=_number(body.get("expires_in")),
        refresh_token_expires_in=_number(body.get("refresh_token_expires_in")),
        scope=_text(body.get("scope")),
        instance_url=_text(body.get("instance_url")),
    )


def _raise_for(
    dialect: Dialect, code: str | None, status: int, body: Mapping[str, Any], scrub: Callable[[str], str]
) -> None:
    description = _text(body.get("error_description")) or _text(body.get("message"))
    detail = f": {scrub(description)[:200]}" if description else ""
    message = f"{dialect.provider.value} token endpoint: {code or f'HTTP {status}'}{detail}"
    action = dialect.action_for(code) if code is not None else None
    if action is ErrorAction.GRANT_DEAD:
        raise InvalidGrant(message)
    if action is ErrorAction.RETRY:
        raise RetryableError(message)
    if action is ErrorAction.CLIENT or status in (400, 401, 403):
        raise ConfigError(f"{message} (check the client id, secret and token URL)")
    raise PermanentError(message)


def _decode(response: httpx.Response) -> dict[str, Any]:
    text = response.text
    if "application/x-www-form-urlencoded" in response.headers.get("content-type", ""):
        return dict(parse_qsl(text))
    try:
        body = json.loads(text)
    except ValueError:
        # GitHub answers form-encoded when the Accept header was lost on the way.
        return dict(parse_qsl(text)) if "=" in text else {}
    return body if isinstance(body, dict) else {}


def _error_code(body: Mapping[str, Any]) -> str | None:
    if body.get("ok") is False:
        return _text(body.get("error")) or "unknown_error"
    code = _text(body.get("error"))
    if code is None and body.get("object") == "error":
        code = _text(body.get("code"))
    return code


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: object) -> float | None:
    """Seconds as a number; GitHub has sent ``expires_in`` as a string."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
