"""A stand-in OAuth provider for the five dialects: authorize and token endpoints on loopback (issue 11 item 11).

``oauth_routes(sandbox)`` returns Starlette routes under each provider's own paths
(``/github/login/oauth/access_token``, ``/slack/api/oauth.v2.access`` …), speaking that provider's request
encoding, response shape and error shape (PROVIDERS.md): Slack's ``ok:false`` on HTTP 200, GitHub's 200 errors and
form-encoded answers unless JSON is asked for, Salesforce's ``instance_url`` and missing ``expires_in``, Google's
refresh without a new refresh token, Notion's HTTP Basic and JSON body. The authorize endpoint approves at once and
redirects with ``code`` and ``state``; the code exchange checks the client, the redirect URI and the PKCE verifier
(S256).

``OAuthSandbox`` is the state behind them: clients, grants and codes, per-grant ``Behaviour`` (rotation on or off, a
missing refresh token, a refused grant, slow answers, 5xx on demand) and a count of token calls per grant. Tests drive
it directly; the combined sandbox app exposes the same controls at ``/_sandbox/oauth/controls`` and the counts at
``/_sandbox/oauth/calls``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

PATHS: dict[str, tuple[str, str]] = {
    "salesforce": ("/salesforce/services/oauth2/authorize", "/salesforce/services/oauth2/token"),
    "google": ("/google/o/oauth2/v2/auth", "/google/token"),
    "slack": ("/slack/oauth/v2/authorize", "/slack/api/oauth.v2.access"),
    "github": ("/github/login/oauth/authorize", "/github/login/oauth/access_token"),
    "notion": ("/notion/v1/oauth/authorize", "/notion/v1/oauth/token"),
}
"""Provider → (authorize path, token path), each the provider's own path under a ``/<provider>`` prefix."""

_ROTATES = {"salesforce": False, "google": False, "slack": True, "github": True, "notion": True}
_EXPIRES_IN = {"salesforce": None, "google": 3599, "slack": 43200, "github": 28800, "notion": None}
_ERROR_CODES = {
    ("slack", "invalid_grant"): "invalid_refresh_token",
    ("slack", "invalid_client"): "invalid_client_id",
    ("github", "invalid_grant"): "bad_refresh_token",
    ("github", "invalid_client"): "incorrect_client_credentials",
}


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How the token endpoint treats a grant; ``None`` fields mean the provider's own default."""

    rotate: bool | None = None
    omit_refresh_token: bool = False
    refuse: str | None = None
    """An error code to answer every refresh with (``invalid_grant`` …), in the provider's error shape."""
    delay_seconds: float = 0.0
    server_errors: int = 0
    """The next this many token calls answer 503."""
    expires_in: int | None = None


@dataclass(slots=True)
class Grant:
    """One authorisation: the tokens the stand-in issued for it and how often its token endpoint was called."""

    id: str
    provider: str
    client_id: str
    scope: str
    access_token: str
    refresh_token: str | None
    behaviour: Behaviour = field(default_factory=Behaviour)
    calls: int = 0


@dataclass(frozen=True, slots=True)
class _Code:
    provider: str
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str | None


class OAuthSandbox:
    """Clients, grants, codes and controls of the stand-in provider (one event loop; no locking needed)."""

    def __init__(self, *, prefix: str = "sbx", instance_url: str = "http://127.0.0.1/salesforce") -> None:
        self.prefix = prefix
        """Starts every token issued (tests make it distinctive to search for it)."""
        self.instance_url = instance_url
        self.clients: dict[str, str | None] = {}
        self.jwt_issuers: dict[str, str] = {}
        self.grants: dict[str, Grant] = {}
        self.default_behaviour = Behaviour()
        self._codes: dict[str, _Code] = {}

    def register_client(self, client_id: str, client_secret: str | None = None) -> None:
        """Accept ``client_id`` (and check ``client_secret`` when given)."""
        self.clients[client_id] = client_secret

    def register_jwt_issuer(self, issuer: str, public_key_pem: str) -> None:
        """Accept JWT bearer assertions from ``issuer`` signed by the key's private half (RS256)."""
        self.jwt_issuers[issuer] = public_key_pem

    def issue(self, provider: str, client_id: str, *, scope: str = "", refresh: bool = True) -> Grant:
        """A grant as if a user had just authorised ``client_id`` (tests seed credentials from it)."""
        grant = Grant(
            id=secrets.token_hex(8),
            provider=provider,
            client_id=client_id,
            scope=scope,
            access_token=self._token(provider, "at"),
            refresh_token=self._token(provider, "rt") if refresh else None,
        )
        self.grants[grant.id] = grant
        return grant

    def control(self, grant_id: str | None = None, **changes: Any) -> None:
        """Change the behaviour of one grant, or the default of grants issued from now on."""
        if grant_id is None:
            self.default_behaviour = replace(self.default_behaviour, **changes)
        else:
            grant = self.grants[grant_id]
            grant.behaviour = replace(grant.behaviour, **changes)

    def calls(self) -> dict[str, int]:
        """Token endpoint calls per grant id."""
        return {grant_id: grant.calls for grant_id, grant in self.grants.items()}

    def _token(self, provider: str, kind: str) -> str:
        return f"{self.prefix}-{provider}-{kind}-{secrets.token_urlsafe(18)}"

    def _by_refresh_token(self, provider: str, token: str) -> Grant | None:
        for grant in self.grants.values():
            if grant.provider == provider and grant.refresh_token == token:
                return grant
        return None

    # ------------------------------------------------------------ endpoints

    async def authorize(self, request: Request) -> Response:
        """Approve at once: redirect to ``redirect_uri`` with a code and the caller's ``state``."""
        provider = request.path_params["provider"]
        params = request.query_params
        client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
        if client_id not in self.clients or not redirect_uri:
            return JSONResponse({"error": "invalid_request", "error_description": "unknown client"}, 400)
        code = secrets.token_urlsafe(16)
        self._codes[code] = _Code(
            provider, client_id, redirect_uri, params.get("scope", ""), params.get("code_challenge")
        )
        query = urlencode({"code": code, **({"state": params["state"]} if "state" in params else {})})
        return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)

    async def token(self, request: Request) -> Response:
        """The token endpoint: authorization_code, refresh_token, client_credentials and JWT bearer grants."""
        provider = request.path_params["provider"]
        form = await _read_form(request, provider)
        client_id, client_secret = _client(request, form)
        grant_type = form.get("grant_type", "")
        if grant_type == JWT_BEARER_GRANT:
            return self._jwt_bearer(request, provider, form)
        if not self._client_ok(client_id, client_secret):
            return _error(request, provider, "invalid_client")
        if grant_type == "authorization_code":
            return self._exchange(request, provider, client_id, form)
        if grant_type == "client_credentials":
            grant = self.issue(provider, client_id, scope=form.get("scope", ""), refresh=False)
            grant.calls += 1
            return _success(request, self, grant, refresh_token=None, expires_in=3600)
        if grant_type == "refresh_token":
            return await self._refresh(request, provider, form.get("refresh_token", ""))
        return _error(request, provider, "unsupported_grant_type")

    def _client_ok(self, client_id: str, client_secret: str | None) -> bool:
        if client_id not in self.clients:
            return False
        expected = self.clients[client_id]
        return expected is None or client_secret == expected

    def _exchange(self, request: Request, provider: str, client_id: str, form: dict[str, str]) -> Response:
        code = self._codes.pop(form.get("code", ""), None)
        if code is None or code.client_id != client_id or code.redirect_uri != form.get("redirect_uri"):
            return _error(request, provider, "invalid_grant")
        if code.challenge is not None and _s256(form.get("code_verifier", "")) != code.challenge:
            return _error(request, provider, "invalid_grant")
        grant = self.issue(provider, client_id, scope=code.scope)
        grant.behaviour = self.default_behaviour
        grant.calls += 1
        return _success(request, self, grant, refresh_token=grant.refresh_token, expires_in=_expires_in(grant))

    async def _refresh(self, request: Request, provider: str, refresh_token: str) -> Response:
        grant = self._by_refresh_token(provider, refresh_token)
        if grant is None:
            return _error(request, provider, "invalid_grant")
        grant.calls += 1
        behaviour = grant.behaviour
        if behaviour.delay_seconds:
            await asyncio.sleep(behaviour.delay_seconds)
        if behaviour.server_errors:
            grant.behaviour = replace(behaviour, server_errors=behaviour.server_errors - 1)
            return JSONResponse({"error": "server_error", "error_description": "sandbox: 503 on demand"}, 503)
        if behaviour.refuse:
            return _error(request, provider, behaviour.refuse)
        grant.access_token = self._token(provider, "at")
        rotate = behaviour.rotate if behaviour.rotate is not None else _ROTATES[provider]
        if rotate and not behaviour.omit_refresh_token:
            grant.refresh_token = self._token(provider, "rt")  # the old one is dead from now on
        sent = None if behaviour.omit_refresh_token or not rotate else grant.refresh_token
        return _success(request, self, grant, refresh_token=sent, expires_in=_expires_in(grant))

    def _jwt_bearer(self, request: Request, provider: str, form: dict[str, str]) -> Response:
        assertion = form.get("assertion", "")
        try:
            issuer = str(jwt.decode(assertion, options={"verify_signature": False})["iss"])
            key = self.jwt_issuers[issuer]
            claims = jwt.decode(assertion, key, algorithms=["RS256"], options={"verify_aud": False})
        except (jwt.PyJWTError, KeyError):
            return _error(request, provider, "invalid_grant")
        grant = self.issue(provider, issuer, scope=str(claims.get("scope", "")), refresh=False)
        grant.calls += 1
        return _success(request, self, grant, refresh_token=None, expires_in=_expires_in(grant))

    # ------------------------------------------------------------ controls

    async def set_controls(self, request: Request) -> Response:
        """POST ``{"grant": id?, "rotate": …, "refuse": …, …}``: change a grant's (or the default) behaviour."""
        body = await request.json()
        known = {item.name for item in fields(Behaviour)}
        changes = {name: value for name, value in body.items() if name in known}
        grant_id = body.get("grant")
        if grant_id is not None and grant_id not in self.grants:
            return JSONResponse({"error": f"no grant {grant_id}"}, 404)
        self.control(grant_id, **changes)
        return JSONResponse({"grant": grant_id, **changes})

    async def get_calls(self, request: Request) -> Response:
        """Token endpoint calls per grant id."""
        return JSONResponse(self.calls())


def oauth_routes(sandbox: OAuthSandbox) -> list[Route]:
    """The stand-in's routes: authorize and token per provider, and the controls."""
    routes = [Route("/_sandbox/oauth/controls", sandbox.set_controls, methods=["POST"])]
    routes.append(Route("/_sandbox/oauth/calls", sandbox.get_calls, methods=["GET"]))
    for provider, (authorize_path, token_path) in PATHS.items():
        prefix = f"/{provider}"
        routes.append(Route(_templated(authorize_path, prefix), sandbox.authorize, methods=["GET"]))
        routes.append(Route(_templated(token_path, prefix), sandbox.token, methods=["POST"]))
    return routes


def oauth_app(sandbox: OAuthSandbox) -> Starlette:
    """The stand-in alone, as an ASGI app."""
    return Starlette(routes=oauth_routes(sandbox))


def _templated(path: str, prefix: str) -> str:
    return "/{provider:str}" + path.removeprefix(prefix)


async def _read_form(request: Request, provider: str) -> dict[str, str]:
    raw = (await request.body()).decode()
    if provider == "notion" or request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(raw)
        except ValueError:
            return {}
        return {str(key): str(value) for key, value in body.items()} if isinstance(body, dict) else {}
    return dict(parse_qsl(raw))


def _client(request: Request, form: dict[str, str]) -> tuple[str, str | None]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
        return client_id, client_secret
    return form.get("client_id", ""), form.get("client_secret")


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _expires_in(grant: Grant) -> int | None:
    return grant.behaviour.expires_in if grant.behaviour.expires_in is not None else _EXPIRES_IN[grant.provider]


def _success(
    request: Request, sandbox: OAuthSandbox, grant: Grant, *, refresh_token: str | None, expires_in: int | None
) -> Response:
    provider = grant.provider
    bearer = "Bearer" if provider == "salesforce" else "bearer"
    body: dict[str, Any] = {"access_token": grant.access_token, "token_type": bearer, "scope": grant.scope}
    if expires_in is not None:
        body["expires_in"] = expires_in
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    if provider == "salesforce":
        body.update(
            instance_url=sandbox.instance_url, id=f"{sandbox.instance_url}/id/{grant.id}", issued_at="1700000000000"
        )
    elif provider == "slack":
        body = {"ok": True, "app_id": "A0SANDBOX", "token_type": "bot", **body}
    elif provider == "github":
        body.update(scope="", refresh_token_expires_in=15811200 if refresh_token else None)
        body = {key: value for key, value in body.items() if value is not None}
        if "application/json" not in request.headers.get("accept", ""):
            return Response(urlencode(body), media_type="application/x-www-form-urlencoded")
    elif provider == "notion":
        body.update(bot_id=f"bot-{grant.id}", workspace_id=f"ws-{grant.id}", workspace_name="Sandbox", owner={})
    return JSONResponse(body)


def _error(request: Request, provider: str, code: str) -> Response:
    code = _ERROR_CODES.get((provider, code), code)
    description = "sandbox: the grant is expired, revoked or unknown"
    if provider == "slack":
        return JSONResponse({"ok": False, "error": code})
    if provider == "github":
        return JSONResponse({"error": code, "error_description": description, "error_uri": "https://docs.github.com"})
    status = 401 if code == "invalid_client" else 400
    return JSONResponse({"error": code, "error_description": description}, status)
