"""An in-process azure-core transport: the seam through which tests answer an Azure SDK's HTTP requests themselves.

``AzureWire`` stands where azure-core's aiohttp transport stands. It checks the keyword arguments the pipeline hands
to ``send`` as that transport does (what it does not consume itself goes to ``aiohttp.ClientSession.request``, which
raises ``TypeError`` on anything it does not know: how ``enable_cross_partition_query`` breaks the async Cosmos
client), records every request, and answers from ``answer`` — a subclass's model of the service — unless a queued
fault answers first.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import AsyncHttpResponse, AsyncHttpTransport, HttpRequest
from azure.core.rest import HttpRequest as RestHttpRequest
from azure.core.rest._http_response_impl_async import AsyncHttpResponseImpl
from azure.core.utils import CaseInsensitiveDict

# What AioHttpTransport.send takes itself, then what it passes on to aiohttp.
_TRANSPORT_KEYWORDS = frozenset({"stream", "proxies", "proxy", "connection_cert", "connection_verify",
                                 "connection_timeout", "read_timeout"})  # fmt: skip
_AIOHTTP_KEYWORDS = frozenset(inspect.signature(aiohttp.ClientSession._request).parameters) - {
    "self",
    "method",
    "str_or_url",
}
# AioHttpTransport.send passes these to aiohttp itself, so a caller passing them too would collide.
_SET_BY_TRANSPORT = frozenset({"headers", "data", "timeout", "allow_redirects"})


class WireResponse(AsyncHttpResponse):
    """A complete response, as azure-core's transports hand one to the pipeline."""

    def __init__(self, request: Any, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(request, None)
        self.status_code = status
        self.reason = _REASONS.get(status, "Error" if status >= 400 else "OK")
        raw = b"" if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
        self.content_type = "application/json" if raw else None
        self.headers = CaseInsensitiveDict({**({"Content-Type": "application/json"} if raw else {}), **(headers or {})})
        self._body = raw

    def body(self) -> bytes:
        return self._body

    async def load_body(self) -> None:
        """The body is in memory already."""


class RestWireResponse(AsyncHttpResponseImpl):
    """A complete response to an ``azure.core.rest`` request (the clients generated from TypeSpec send those)."""

    def __init__(self, request: Any, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        raw = b"" if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
        content_type = "application/json; charset=utf-8" if raw else None
        all_headers = CaseInsensitiveDict({**({"Content-Type": content_type} if raw else {}), **(headers or {})})
        super().__init__(
            request=request,
            internal_response=None,
            status_code=status,
            reason=_REASONS.get(status, "Error" if status >= 400 else "OK"),
            content_type=content_type,
            headers=all_headers,
            stream_download_generator=None,
        )
        self._content = raw

    async def close(self) -> None:
        self._is_closed = True


def respond(request: Any, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """The response type azure-core's pipeline expects for ``request``'s kind."""
    kind = RestWireResponse if isinstance(request, RestHttpRequest) else WireResponse
    return kind(request, status, body, headers)


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified", 400: "Bad Request",
            401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 412: "Precondition Failed",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


@dataclass
class Fault:
    """An answer given instead of the service's to the next ``times`` requests that ``matches``."""

    matches: Callable[[Any], bool]
    status: int
    body: Any
    headers: dict[str, str]
    times: int


def request_body(request: Any) -> bytes:
    """The bytes of a request's body, from either of azure-core's request types."""
    if isinstance(request, RestHttpRequest):
        return request.content if isinstance(request.content, bytes) else (request.content or "").encode()
    data = request.data
    return data if isinstance(data, bytes) else (data or "").encode()


class AzureWire(AsyncHttpTransport[HttpRequest, AsyncHttpResponse]):
    """A transport that answers from ``answer``; see the module docstring."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.faults: list[Fault] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def fail(
        self,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        when: Callable[[Any], bool] = lambda request: True,
    ) -> None:
        """Answer the next ``times`` requests matching ``when`` with ``status`` (the service untouched)."""
        self.faults.append(Fault(when, status, body, headers or {}, times))

    async def send(self, request: Any, **kwargs: Any) -> AsyncHttpResponse:
        unknown = set(kwargs) - _TRANSPORT_KEYWORDS
        refused = unknown - _AIOHTTP_KEYWORDS | (unknown & _SET_BY_TRANSPORT)
        if refused:
            # What aiohttp.ClientSession.request says about an unexpected keyword argument.
            raise TypeError(f"ClientSession._request() got an unexpected keyword argument {sorted(refused)[0]!r}")
        self.requests.append(request)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # a network round trip: other requests get to start meanwhile
        finally:
            self.in_flight -= 1
        for fault in self.faults:
            if fault.times > 0 and fault.matches(request):
                fault.times -= 1
                return respond(request, fault.status, fault.body, fault.headers)
        return self.answer(request)

    def answer(self, request: Any) -> AsyncHttpResponse:
        """The service's answer to ``request``."""
        raise NotImplementedError

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def __aenter__(self) -> AzureWire:
        return self

    async def __aexit__(self, *args: object) -> None:
        """Nothing to release."""


class StaticToken:
    """An ``AsyncTokenCredential`` handing out one token (the fakes accept it), counting the scopes asked and closes."""

    def __init__(self, token: str = "entra-token") -> None:  # noqa: S107 (a fake's token)
        self.token = token
        self.scopes: list[str] = []
        self.closed = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes += scopes
        return AccessToken(self.token, 4_102_444_800)  # 2100: never refreshed during a test

    async def close(self) -> None:
        self.closed += 1

    async def __aenter__(self) -> StaticToken:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()
