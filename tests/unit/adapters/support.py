"""What adapter tests share: a static-token ``ConnectionAuth``, one that refreshes on a 401 the way the credentials'
``httpx.Auth`` flow does, a recording sleep, an engine over an ``httpx.MockTransport`` and the real limiter, and a
builder of an adapter whose provider answers with scripted responses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterable
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from adapters.base import BaseAdapter
from adapters.engine import HttpEngine
from adapters.records import Page
from castiel.clock import ManualClock
from castiel.errors import CastielError
from castiel.models import Connection, Provider
from castiel.ratelimit.limiter import RateLimiter
from castiel.ratelimit.policy import RateLimitPolicy

Handler = Callable[[httpx.Request], httpx.Response]
AdapterT = TypeVar("AdapterT", bound=BaseAdapter)


class StaticAuth:
    """A ``ConnectionAuth`` with one bearer token for every connection; counts how often it was asked."""

    def __init__(self, token: str = "test-token", api_root: str | None = None) -> None:  # noqa: S107
        self.token = token
        self.api_root = api_root
        self.asked = 0

    async def auth_for_connection(self, connection: Connection) -> httpx.Auth:
        self.asked += 1
        return BearerAuth(self.token)

    async def api_root_for_connection(self, connection: Connection) -> str | None:
        return self.api_root


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class RefreshingAuth(httpx.Auth):
    """The credentials' flow in miniature: on a 401, swap in the refreshed token and re-send once."""

    def __init__(self, token: str, refreshed: str) -> None:
        self.token = token
        self.refreshed = refreshed
        self.refreshes = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401:
            self.refreshes += 1
            self.token = self.refreshed
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


class RefreshingConnectionAuth(StaticAuth):
    """Hands out one ``RefreshingAuth`` for every connection."""

    def __init__(self, flow: RefreshingAuth) -> None:
        super().__init__(flow.token)
        self.flow = flow

    async def auth_for_connection(self, connection: Connection) -> httpx.Auth:
        self.asked += 1
        return self.flow


class Sleeps:
    """A sleep that records the delays asked for and moves the clock instead of waiting."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """A response with a JSON body."""
    return httpx.Response(
        status, content=orjson.dumps(body), headers={"content-type": "application/json", **(headers or {})}
    )


def connection(provider: Provider, *, base_url: str | None = "https://api.test", **settings: Any) -> Connection:
    """A connection of ``provider`` with ``settings``."""
    return Connection(
        id=f"conn-{provider.value}",
        tenant_id="tenant-1",
        integration_id=provider.value,
        provider=provider,
        base_url=base_url,
        settings=settings,
    )


def limiter(redis: aioredis.Redis, clock: ManualClock, overrides: dict[str, Any] | None = None) -> RateLimiter:
    """The real limiter on the test Redis."""
    return RateLimiter(redis, RateLimitPolicy(overrides), clock)


def engine(
    handler: Handler,
    redis: aioredis.Redis,
    clock: ManualClock,
    *,
    auth: StaticAuth | None = None,
    sleeps: Sleeps | None = None,
    overrides: dict[str, Any] | None = None,
) -> HttpEngine:
    """An engine whose HTTP goes to ``handler``."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpEngine(
        http, limiter(redis, clock, overrides), auth or StaticAuth(), clock=clock, sleep=sleeps or Sleeps(clock)
    )


async def collect(pages: AsyncIterator[Page]) -> list[Page]:
    """Every page of a fetch."""
    return [page async for page in pages]


async def fetch_all(adapter: BaseAdapter, conn: Connection, entity_type: str, cursor: str | None = None) -> list[Page]:
    """Every page of one fetch."""
    return await collect(adapter.fetch(conn, entity_type, cursor))


class Script:
    """A provider that answers with ``answers`` in order and keeps every request it got."""

    def __init__(self, answers: Iterable[httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)


Maker = Callable[..., tuple[AdapterT, list[httpx.Request]]]
"""``make(*answers, auth=None)``: an adapter whose provider answers with ``answers``, and the requests it sends."""


def maker(
    adapter: Callable[[HttpEngine], AdapterT],
    redis: aioredis.Redis,
    clock: ManualClock | None = None,
    *,
    default_auth: Callable[[], StaticAuth] = StaticAuth,
) -> Maker[AdapterT]:
    """Builds ``adapter`` over an engine whose provider is a ``Script`` (a fresh clock for each when none is given)."""

    def build(*answers: httpx.Response, auth: StaticAuth | None = None) -> tuple[AdapterT, list[httpx.Request]]:
        script = Script(answers)
        built = engine(script, redis, clock or ManualClock(), auth=auth or default_auth())
        return adapter(built), script.requests

    return build


async def fetch_fails(
    adapter: BaseAdapter, conn: Connection, entity_type: str, error: type[CastielError], message: str
) -> CastielError:
    """The error a fetch raises: an ``error`` matching ``message`` that names the connection."""
    with pytest.raises(error, match=message) as raised:
        await fetch_all(adapter, conn, entity_type)
    assert f"{conn.provider.value} connection {conn.id}" in str(raised.value)
    return raised.value
