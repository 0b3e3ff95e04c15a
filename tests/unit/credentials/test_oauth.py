"""Each provider's refresh request and response shape, and its documented error bodies, through httpx.MockTransport."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
import pytest

from castiel.credentials.oauth import JWT_BEARER_GRANT, TokenEndpoint, exchange_code, renew
from castiel.credentials.types import (
    Credential,
    JwtBearer,
    OAuth2AuthorizationCode,
    ServiceAccountKey,
    access_token,
    parse_credential,
)
from castiel.errors import ConfigError, InvalidGrant, PermanentError, RateLimited, RetryableError
from castiel.models import Provider
from tests.unit.credentials.keys import private_key_pem, public_key_pem

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport that answers with ``response`` and keeps every request it saw."""

    def __init__(self, response: httpx.Response | Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._response = response

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._response(request) if callable(self._response) else self._response

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.requests[-1].content.decode()))


async def refresh_with(
    provider: Provider, value: Credential, response: httpx.Response | Handler
) -> tuple[Credential, Recorder]:
    recorder = Recorder(response)
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as http:
        renewed = await renew(value, provider, TokenEndpoint(http), NOW)
    return renewed, recorder


USER_GRANT_REFRESH = {
    "grant_type": "refresh_token",
    "refresh_token": "old-rt",
    "client_id": "cid",
    "client_secret": "csecret",
}
"""The form a refresh of ``user_grant()`` posts (client id and secret in the body)."""


def user_grant(**extra: Any) -> OAuth2AuthorizationCode:
    fields = {"access_token": "old-at", "refresh_token": "old-rt", "client_id": "cid", "client_secret": "csecret"}
    value = parse_credential("oauth2_authorization_code", {**fields, **extra})
    assert isinstance(value, OAuth2AuthorizationCode)
    return value


def secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


async def test_salesforce_keeps_the_refresh_token_and_rereads_the_instance_url() -> None:
    body = {
        "access_token": "00D!new",
        "signature": "sig",
        "scope": "api refresh_token",
        "instance_url": "https://acme.my.salesforce.com",
        "id": "https://login.salesforce.com/id/00D/005",
        "token_type": "Bearer",
        "issued_at": "1700000000000",
    }
    renewed, recorder = await refresh_with(Provider.SALESFORCE, user_grant(), httpx.Response(200, json=body))
    request = recorder.requests[0]
    assert str(request.url) == "https://login.salesforce.com/services/oauth2/token"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert recorder.form == USER_GRANT_REFRESH
    assert isinstance(renewed, OAuth2AuthorizationCode)
    assert access_token(renewed) == "00D!new"
    assert secret(renewed.refresh_token) == "old-rt"
    assert renewed.expires_at is None  # no expires_in: unknown, the 401 path refreshes it
    assert renewed.instance_url == "https://acme.my.salesforce.com"


async def test_salesforce_with_rotation_on_replaces_the_refresh_token() -> None:
    body = {"access_token": "at-2", "refresh_token": "rt-2", "instance_url": "https://acme.my.salesforce.com"}
    renewed, _ = await refresh_with(Provider.SALESFORCE, user_grant(), httpx.Response(200, json=body))
    assert isinstance(renewed, OAuth2AuthorizationCode)
    assert secret(renewed.refresh_token) == "rt-2"


async def test_google_sends_no_new_refresh_token_so_the_old_one_is_kept() -> None:
    body = {"access_token": "ya29.new", "expires_in": 3599, "scope": "calendar", "token_type": "Bearer"}
    renewed, recorder = await refresh_with(Provider.GOOGLE, user_grant(), httpx.Response(200, json=body))
    assert str(recorder.requests[0].url) == "https://oauth2.googleapis.com/token"
    assert recorder.form["grant_type"] == "refresh_token"
    assert isinstance(renewed, OAuth2AuthorizationCode)
    assert secret(renewed.refresh_token) == "old-rt"
    assert renewed.expires_at == NOW + timedelta(seconds=3599)
    assert renewed.scope == "calendar"


async def test_slack_rotates_twelve_hour_tokens_and_the_new_refresh_token_replaces_the_old() -> None:
    body = {
        "ok": True,
        "access_token": "xoxe.xoxb-new",
        "refresh_token": "xoxe-1-new",
        "expires_in": 43200,
        "token_type": "bot",
        "scope": "channels:history",
    }
    renewed, recorder = await refresh_with(Provider.SLACK, user_grant(), httpx.Response(200, json=body))
    assert str(recorder.requests[0].url) == "https://slack.com/api/oauth.v2.access"
    assert recorder.form == USER_GRANT_REFRESH
    assert isinstance(renewed, OAuth2AuthorizationCode)
    assert secret(renewed.refresh_token) == "xoxe-1-new"
    assert renewed.expires_at == NOW + timedelta(hours=12)


@pytest.mark.parametrize("as_form", [False, True])
async def test_github_rotates_user_tokens_and_reads_json_or_form_answers(as_form: bool) -> None:
    fields = {
        "access_token": "ghu_new",
        "expires_in": "28800",  # older docs showed it as a string
        "refresh_token": "ghr_new",
        "refresh_token_expires_in": "15811200",
        "scope": "",
        "token_type": "bearer",
    }
    response = (
        httpx.Response(
            200,
            content="&".join(f"{k}={v}" for k, v in fields.items()).encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        if as_form
        else httpx.Response(200, json=fields)
    )
    renewed, recorder = await refresh_with(Provider.GITHUB, user_grant(), response)
    request = recorder.requests[0]
    assert str(request.url) == "https://github.com/login/oauth/access_token"
    assert request.headers["accept"] == "application/json"
    assert recorder.form["grant_type"] == "refresh_token"
    assert isinstance(renewed, OAuth2AuthorizationCode)
    assert access_token(renewed) == "ghu_new"
    assert secret(renewed.refresh_token) == "ghr_new"
    assert renewed.expires_at == NOW + timedelta(hours=8)
    assert renewed.refresh_token_expires_at == NOW + timedelta(seconds=15811200)


async def test_notion_authenticates_the_client_with_basic_and_sends_json() -> None:
    body = {
        "access_token": "ntn_new",
        "token_type": "bearer",
        "refresh_token": "nrt_new",
        "bot_id": "b",
        "workspace_id": "w",
        "workspace_name": "W",
        "workspace_icon": None,
        "owner": {"type": "user"},
        "duplicated_template_id": None,
        "request_id": "r",
    }
    renewed, recorder = await refresh_with(Provider.NOTION, user_grant(), httpx.Response(200, json=body))
    request = recorder.requests[0]
    assert str(request.url) == "https://api.notion.com/v1/oauth/token"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"cid:csecret").decode()
    assert json.loads(request.content) == {"grant_type": "refresh_token", "refresh_token": "old-rt"}
    assert isinstance(renewed, OAuth2AuthorizationCode)
    assert secret(renewed.refresh_token) == "nrt_new"
    assert renewed.expires_at is None


async def test_a_credential_token_url_overrides_the_providers_endpoint() -> None:
    value = user_grant(token_url="http://127.0.0.1:9/github/login/oauth/access_token")
    body = {"access_token": "a", "refresh_token": "r"}
    _, recorder = await refresh_with(Provider.GITHUB, value, httpx.Response(200, json=body))
    assert str(recorder.requests[0].url) == "http://127.0.0.1:9/github/login/oauth/access_token"


DOCUMENTED_ERRORS = [
    (
        Provider.SALESFORCE,
        400,
        {"error": "invalid_grant", "error_description": "expired access/refresh token"},
        InvalidGrant,
    ),
    (Provider.SALESFORCE, 400, {"error": "inactive_user", "error_description": "user is inactive"}, InvalidGrant),
    (
        Provider.SALESFORCE,
        400,
        {"error": "invalid_client_id", "error_description": "client identifier invalid"},
        ConfigError,
    ),
    (
        Provider.GOOGLE,
        400,
        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
        InvalidGrant,
    ),
    (
        Provider.GOOGLE,
        401,
        {"error": "invalid_client", "error_description": "The OAuth client was not found."},
        ConfigError,
    ),
    (Provider.SLACK, 200, {"ok": False, "error": "invalid_refresh_token"}, InvalidGrant),
    (Provider.SLACK, 200, {"ok": False, "error": "token_revoked"}, InvalidGrant),
    (Provider.SLACK, 200, {"ok": False, "error": "token_expired"}, InvalidGrant),
    (Provider.SLACK, 200, {"ok": False, "error": "bad_client_secret"}, ConfigError),
    (Provider.SLACK, 200, {"ok": False, "error": "ratelimited"}, RetryableError),
    (Provider.SLACK, 200, {"ok": False, "error": "internal_error"}, RetryableError),
    (
        Provider.GITHUB,
        200,
        {
            "error": "bad_refresh_token",
            "error_description": "The refresh token passed is incorrect or expired.",
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps",
        },
        InvalidGrant,
    ),
    (
        Provider.GITHUB,
        200,
        {
            "error": "incorrect_client_credentials",
            "error_description": "The client_id and/or client_secret passed are incorrect.",
        },
        ConfigError,
    ),
    (Provider.NOTION, 400, {"error": "invalid_grant", "error_description": "Invalid refresh token."}, InvalidGrant),
    (
        Provider.NOTION,
        400,
        {"object": "error", "status": 400, "code": "validation_error", "message": "bad body"},
        ConfigError,
    ),
    (Provider.GITHUB, 503, {"message": "unavailable"}, RetryableError),
    (Provider.GOOGLE, 200, {"token_type": "Bearer"}, PermanentError),
]


@pytest.mark.parametrize(("provider", "status", "body", "error"), DOCUMENTED_ERRORS)
async def test_documented_error_bodies_map_into_the_taxonomy(
    provider: Provider, status: int, body: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error) as caught:
        await refresh_with(provider, user_grant(), httpx.Response(status, json=body))
    code = body.get("error") or body.get("code")
    if isinstance(code, str) and status < 500:
        assert code in str(caught.value)
    assert provider.value in str(caught.value)


async def test_a_429_is_rate_limited_for_the_retry_after_it_names() -> None:
    response = httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "ratelimited"})
    with pytest.raises(RateLimited) as caught:
        await refresh_with(Provider.SLACK, user_grant(), response)
    assert caught.value.retry_after == 7


@pytest.mark.parametrize("failure", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
async def test_network_failures_are_retryable(failure: httpx.HTTPError) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure

    with pytest.raises(RetryableError, match="github token endpoint"):
        await refresh_with(Provider.GITHUB, user_grant(), fail)


async def test_an_error_description_quoting_a_secret_is_scrubbed() -> None:
    body = {"error": "invalid_grant", "error_description": "refresh token old-rt was revoked (client csecret)"}
    with pytest.raises(InvalidGrant) as caught:
        await refresh_with(Provider.GOOGLE, user_grant(), httpx.Response(400, json=body))
    assert "old-rt" not in str(caught.value)
    assert "csecret" not in str(caught.value)
    assert "refresh token *** was revoked" in str(caught.value)


async def test_an_access_token_that_cannot_go_into_a_header_is_refused_and_never_quoted() -> None:
    body = {"access_token": "new-at\r\n", "expires_in": 3600, "token_type": "bearer"}
    with pytest.raises(PermanentError, match="cannot go into a header") as caught:
        await refresh_with(Provider.GOOGLE, user_grant(), httpx.Response(200, json=body))
    assert "new-at" not in str(caught.value)


async def test_without_a_refresh_token_there_is_nothing_to_refresh_with() -> None:
    value = parse_credential("oauth2_authorization_code", {"access_token": "a"})
    with pytest.raises(InvalidGrant, match="no refresh token"):
        await refresh_with(Provider.NOTION, value, httpx.Response(200, json={}))


async def test_static_types_cannot_be_refreshed() -> None:
    value = parse_credential("api_key", {"api_key": "k"})
    with pytest.raises(ConfigError, match="cannot be refreshed"):
        await refresh_with(Provider.GITHUB, value, httpx.Response(200, json={}))


async def test_client_credentials_ask_for_a_new_token_with_the_client_itself() -> None:
    value = parse_credential(
        "oauth2_client_credentials",
        {"client_id": "app", "client_secret": "s3", "scope": "api", "token_url": "https://idp.test/token"},
    )
    body = {"access_token": "cc-1", "expires_in": 600}
    renewed, recorder = await refresh_with(Provider.STANDARD, value, httpx.Response(200, json=body))
    assert recorder.form == {"grant_type": "client_credentials", "scope": "api"}
    assert recorder.requests[0].headers["authorization"] == "Basic " + base64.b64encode(b"app:s3").decode()
    assert access_token(renewed) == "cc-1"
    assert renewed.expires_at == NOW + timedelta(minutes=10)


async def test_salesforce_jwt_bearer_signs_a_short_assertion_for_the_user() -> None:
    value = parse_credential(
        "jwt_bearer", {"client_id": "3MVG9consumer", "username": "ops@acme.com", "private_key": private_key_pem()}
    )
    body = {"access_token": "00D!jwt", "instance_url": "https://acme.my.salesforce.com", "token_type": "Bearer"}
    renewed, recorder = await refresh_with(Provider.SALESFORCE, value, httpx.Response(200, json=body))
    assert recorder.form["grant_type"] == JWT_BEARER_GRANT
    claims = jwt.decode(
        recorder.form["assertion"],
        public_key_pem(),
        algorithms=["RS256"],
        audience="https://login.salesforce.com",
        options={"verify_exp": False},
    )
    assert claims["iss"] == "3MVG9consumer"
    assert claims["sub"] == "ops@acme.com"
    assert claims["exp"] == int(NOW.timestamp()) + 180
    assert "client_secret" not in recorder.form
    assert isinstance(renewed, JwtBearer)
    assert renewed.instance_url == "https://acme.my.salesforce.com"
    assert renewed.expires_at is None


async def test_a_google_service_account_grant_follows_the_key_file() -> None:
    value = parse_credential(
        "service_account_key",
        {
            "client_email": "sa@p.iam.gserviceaccount.com",
            "private_key": private_key_pem(),
            "private_key_id": "kid-7",
            "token_uri": "https://oauth2.googleapis.com/token",
            "scope": "https://www.googleapis.com/auth/calendar",
            "subject": "user@acme.com",
        },
    )
    body = {"access_token": "ya29.sa", "expires_in": 3599, "token_type": "Bearer"}
    renewed, recorder = await refresh_with(Provider.GOOGLE, value, httpx.Response(200, json=body))
    assertion = recorder.form["assertion"]
    assert jwt.get_unverified_header(assertion)["kid"] == "kid-7"
    claims = jwt.decode(
        assertion,
        public_key_pem(),
        algorithms=["RS256"],
        audience="https://oauth2.googleapis.com/token",
        options={"verify_exp": False},
    )
    assert claims["iss"] == "sa@p.iam.gserviceaccount.com"
    assert claims["scope"] == "https://www.googleapis.com/auth/calendar"
    assert claims["sub"] == "user@acme.com"
    assert claims["exp"] - claims["iat"] == 3600
    assert isinstance(renewed, ServiceAccountKey)
    assert renewed.expires_at == NOW + timedelta(seconds=3599)


async def test_a_service_account_without_a_scope_is_a_config_error() -> None:
    # Stored before `credentials add` asked for the scope: parse_credential refuses such a value now.
    value = ServiceAccountKey.model_validate({"client_email": "sa@x", "private_key": private_key_pem()})
    with pytest.raises(ConfigError, match="needs a scope"):
        await refresh_with(Provider.GOOGLE, value, httpx.Response(200, json={}))


async def test_the_code_exchange_sends_the_pkce_verifier_and_reads_slacks_user_token() -> None:
    body = {
        "ok": True,
        "access_token": "",
        "authed_user": {"access_token": "xoxp-u", "refresh_token": "xoxe-r", "expires_in": 43200},
    }
    recorder = Recorder(httpx.Response(200, json=body))
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as http:
        value = await exchange_code(
            Provider.SLACK,
            TokenEndpoint(http),
            code="the-code",
            redirect_uri="http://127.0.0.1:5000/callback",
            code_verifier="v" * 64,
            client_id="cid",
            client_secret="csecret",
            token_url_override=None,
            now=NOW,
        )
    assert recorder.form == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "http://127.0.0.1:5000/callback",
        "code_verifier": "v" * 64,
        "client_id": "cid",
        "client_secret": "csecret",
    }
    assert access_token(value) == "xoxp-u"
    assert secret(value.refresh_token) == "xoxe-r"
    assert value.expires_at == NOW + timedelta(hours=12)
