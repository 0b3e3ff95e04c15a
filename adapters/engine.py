"""The one HTTP loop every adapter's requests go through.

For each attempt of a request: the rate limiter admits it first (``RateLimiter.check``: operation fetch, create,
update or delete; a refusal is ``Deferred`` or ``RateLimited``), the adapter's ``before_request`` hook sees it, the
process-wide ``httpx.AsyncClient`` sends it under the connection's ``httpx.Auth`` flow, every response's headers go to
the limiter's adaptive part (``observe_response``), the ``after_response`` hook sees it, and the adapter's
resolution table (``resolution.py``) decides what happens next; a request that raised is retried or not as the
shared httpx table (``castiel.http_errors``) classes its error. Errors leave only as the taxonomy of
``castiel.errors``, through the adapter's ``on_error`` hook; no ``httpx`` exception escapes.

Authentication and the instance URL come from a ``ConnectionAuth`` (``castiel/credentials`` implements it); the
engine never stores or refreshes a credential itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from adapters.backoff import ExponentialBackoff, WaitRule, first_answer, retry_after_header
from adapters.cursors import CursorExpired
from adapters.resolution import Action, ResolutionTable
from adapters.wire import Reply, RequestSpec
from castiel.clock import Clock, system_clock
from castiel.credentials.auth import RefreshingAuth
from castiel.errors import CastielError, ConfigError, Deferred, NotFound, PermanentError, RateLimited, RetryableError
from castiel.http_errors import HTTPX_ERRORS, httpx_error
from castiel.models import Connection, RateLimitCheck
from castiel.ratelimit.limiter import raise_for_check
from castiel.ratelimit.policy import LimitedOperation
from castiel.telemetry import log_event

MAX_INLINE_WAIT_SECONDS = 10.0
"""A retry the provider asks to wait longer for is not slept on in-process: it becomes ``RateLimited`` so the queue
re-sends the work then."""

_SHOWN_MESSAGE_CHARS = 300
# Failures that prove a request never reached the provider.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class ConnectionAuth(Protocol):
    """How a connection authenticates (``castiel/credentials`` implements it; tests use a static token)."""

    async def auth_for_connection(self, connection: Connection) -> httpx.Auth:
        """The ``httpx.Auth`` flow for the connection's credential; it refreshes and re-sends once on a 401."""
        ...

    async def api_root_for_connection(self, connection: Connection) -> str | None:
        """The API root the credential names (Salesforce's ``instance_url``), None when it names none."""
        ...


class Admission(Protocol):
    """The rate limiter as the engine uses it (``castiel.ratelimit.limiter.RateLimiter``)."""

    async def check(
        self,
        *,
        tenant_id: str,
        connection_id: str,
        provider: str,
        operation: LimitedOperation,
        profile: str | None = None,
    ) -> RateLimitCheck:
        """Admit and record one call, or refuse it."""
        ...

    async def observe_response(
        self, *, tenant_id: str, connection_id: str, provider: str, status_code: int, headers: Mapping[str, str]
    ) -> None:
        """Tighten or pause the connection's limit as the response asks."""
        ...


@dataclass(slots=True)
class Session:
    """One connection opened for work: where its API is, how it authenticates, and values resolved on connect
    (Salesforce's API version, Notion's data source)."""

    connection: Connection
    api_root: str
    auth: httpx.Auth
    rate_profile: str | None = None
    values: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``<provider> connection <id>``, the prefix of every error about it."""
        return f"{self.connection.provider.value} connection {self.connection.id}"

    def setting(self, name: str, default: str | None = None) -> str:
        """A connection setting as text; ``ConfigError`` naming it when absent and no default is given."""
        value = self.connection.settings.get(name, default)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ConfigError(f"{self.where}: the setting '{name}' is required")
        if not isinstance(value, str | int):
            raise ConfigError(f"{self.where}: the setting '{name}' must be text, not {type(value).__name__}")
        return str(value).strip()


class Hooks(Protocol):
    """What the engine asks of an adapter: its table, its waits, and its lifecycle hooks."""

    @property
    def resolution(self) -> ResolutionTable:
        """The adapter's rows, then the defaults."""
        ...

    @property
    def rate_limit_rules(self) -> tuple[WaitRule, ...]:
        """Where a rate-limited reply says when to come back, first answer wins."""
        ...

    @property
    def default_rate_limit_pause(self) -> float:
        """Seconds to wait on a rate limit that does not say."""
        ...

    def before_request(self, session: Session, request: httpx.Request) -> None:
        """Adjust an outgoing request (version headers)."""
        ...

    def after_response(self, session: Session, reply: Reply) -> None:
        """See every response before it is resolved."""
        ...

    def on_error(self, session: Session, error: CastielError, reply: Reply | None) -> CastielError:
        """The error to raise for a request that failed (the one given, or a more precise one)."""
        ...

    def error_message(self, reply: Reply) -> str:
        """The provider's own error message in ``reply``."""
        ...


Sleep = Callable[[float], Awaitable[None]]


class HttpEngine:
    """Sends adapters' requests: admission, auth, observation, resolution, retries; shared by every adapter."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        limiter: Admission,
        credentials: ConnectionAuth,
        *,
        clock: Clock = system_clock,
        sleep: Sleep = asyncio.sleep,
        max_attempts: int = 3,
        backoff: ExponentialBackoff | None = None,
    ) -> None:
        self._http = http
        self._limiter = limiter
        self._credentials = credentials
        self._clock = clock
        self._sleep = sleep
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff or ExponentialBackoff()

    @property
    def clock(self) -> Clock:
        """The engine's clock (epoch seconds), for adapters that reason about a cursor's age."""
        return self._clock

    async def open(self, connection: Connection, default_api_root: str | None, rate_profile: str | None) -> Session:
        """The connection's session: its ``baseUrl``, else the credential's API root, else the provider's."""
        api_root = connection.base_url or await self._credentials.api_root_for_connection(connection)
        api_root = api_root or default_api_root
        where = f"{connection.provider.value} connection {connection.id}"
        if not api_root:
            raise ConfigError(f"{where}: no API root: set its baseUrl or use a credential that names one")
        parts = urlsplit(api_root)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{where}: API root {api_root!r} is not an http(s) URL")
        auth = await self._credentials.auth_for_connection(connection)
        return Session(connection, api_root.rstrip("/"), auth, rate_profile)

    async def send(self, session: Session, hooks: Hooks, operation: LimitedOperation, spec: RequestSpec) -> Reply:
        """Send ``spec`` until the table says success; raises the taxonomy error it says otherwise."""
        attempt, reauthenticated = 0, False
        while True:
            attempt += 1
            await self._admit(session, operation)
            request = self._build(session, hooks, spec)
            target = f"{session.where}: {spec.method} {urlsplit(str(request.url)).path}"
            reply: Reply | None = None
            failure: BaseException | None = None
            try:
                response = await self._http.send(request, auth=session.auth)
            except httpx.HTTPError as exc:
                failure = exc
                translated = httpx_error(exc, target)
                action = Action.RETRY if isinstance(translated, RetryableError) else Action.FAIL
                message = str(translated)
            else:
                reply = Reply(response)
                await self._observe(session, response)
                hooks.after_response(session, reply)
                rule = hooks.resolution.resolve(reply)
                if rule.action is Action.SUCCESS:
                    return reply
                action = rule.action
                detail = f"HTTP {reply.status} {hooks.error_message(reply)}".strip()
                if len(detail) > _SHOWN_MESSAGE_CHARS:
                    detail = detail[:_SHOWN_MESSAGE_CHARS] + "…"
                message = f"{target}: {detail}"
            retry = action is Action.RETRY and attempt < self._max_attempts
            if retry and _may_resend(operation, failure, reply):
                wait = first_answer((retry_after_header,), reply, self._clock())
                if wait is None or wait <= MAX_INLINE_WAIT_SECONDS:
                    delay = self._backoff.delay(attempt) if wait is None else wait
                    log_event(
                        "adapter.retry", level=logging.WARNING, reason=message, attempt=attempt, wait=round(delay, 3)
                    )
                    await self._sleep(delay)
                    continue
            if action is Action.REFRESH_TOKEN_THEN_RETRY and not reauthenticated:
                reauthenticated = True
                session.auth = await self._credentials.auth_for_connection(session.connection)
                continue
            error = hooks.on_error(session, self._error(action, message, hooks, reply, attempt, session), reply)
            raise error from failure

    def _error(
        self, action: Action, message: str, hooks: Hooks, reply: Reply | None, attempt: int, session: Session
    ) -> CastielError:
        if action is Action.RATE_LIMITED or action is Action.RETRY:
            wait = first_answer(hooks.rate_limit_rules, reply, self._clock())
            if action is Action.RATE_LIMITED:
                return RateLimited(message, hooks.default_rate_limit_pause if wait is None else wait, "provider")
            if wait is not None and wait > MAX_INLINE_WAIT_SECONDS:
                return RateLimited(message, wait, "provider")
            return RetryableError(f"{message} (after {attempt} attempts)")
        if action is Action.REFRESH_TOKEN_THEN_RETRY:
            if isinstance(session.auth, RefreshingAuth):
                return PermanentError(f"{message} (still rejected after the token was refreshed)")
            # An API key, basic auth or certificate has nothing to refresh: the retry only read the credential again.
            return PermanentError(
                f"{message} (still rejected with the credential read again; it cannot be refreshed: give it a new"
                " value with `castiel credentials rotate`)"
            )
        if action is Action.NOT_FOUND:
            return NotFound(message)
        if action is Action.RESYNC:
            return CursorExpired(message)
        return PermanentError(message)

    def _build(self, session: Session, hooks: Hooks, spec: RequestSpec) -> httpx.Request:
        url = self._url(session, spec.url)
        headers = dict(spec.headers or {})
        content = None
        if spec.json is not None:
            content = orjson.dumps(spec.json)
            headers.setdefault("Content-Type", "application/json")
        with HTTPX_ERRORS.translating(session.where):
            request = self._http.build_request(spec.method, url, params=spec.params, content=content, headers=headers)
        hooks.before_request(session, request)
        return request

    @staticmethod
    def _url(session: Session, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            return session.api_root + (url if url.startswith("/") else "/" + url)
        # A provider-given URL carries our credentials with it: it must stay on the connection's own origin.
        root, target = urlsplit(session.api_root), urlsplit(url)
        if (target.scheme, target.netloc) != (root.scheme, root.netloc):
            raise PermanentError(
                f"{session.where}: refusing to follow a provider link to {target.scheme}://{target.netloc}, "
                f"outside the API root {root.scheme}://{root.netloc}"
            )
        return url

    async def _admit(self, session: Session, operation: LimitedOperation) -> None:
        connection = session.connection
        check = await self._limiter.check(
            tenant_id=connection.tenant_id,
            connection_id=connection.id,
            provider=connection.provider.value,
            operation=operation,
            profile=session.rate_profile,
        )
        try:
            raise_for_check(check)
        except Deferred as exc:
            raise Deferred(f"{session.where}: {exc}", exc.retry_after) from None
        except RateLimited as exc:
            raise RateLimited(f"{session.where}: {exc}", exc.retry_after, exc.level) from None

    async def _observe(self, session: Session, response: httpx.Response) -> None:
        connection = session.connection
        await self._limiter.observe_response(
            tenant_id=connection.tenant_id,
            connection_id=connection.id,
            provider=connection.provider.value,
            status_code=response.status_code,
            headers=response.headers,
        )


def _may_resend(operation: LimitedOperation, failure: BaseException | None, reply: Reply | None) -> bool:
    """Whether a retryable failure may be retried inline: a create the provider may have applied (a 5xx, a read
    timeout) is not, since a second POST makes a second record; the sync engine decides, knowing what landed."""
    if operation != "create":
        return True
    if reply is not None:
        return reply.status == 429
    return isinstance(failure, _UNSENT)
