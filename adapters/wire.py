"""A request as an adapter declares it, and a provider's reply as the engine hands it back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import httpx
import orjson

ParamValue = str | int | bool


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request: ``url`` is a path under the connection's API root (``/repos/o/r/issues``) or an absolute URL
    the provider itself handed out (a ``Link`` header, a ``nextRecordsUrl`` resolved by the engine)."""

    method: str
    url: str
    params: Mapping[str, ParamValue] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None

    def with_params(self, **updates: ParamValue | None) -> RequestSpec:
        """A copy with query parameters set (a None value removes one)."""
        params = {**(self.params or {}), **updates}
        return replace(self, params={name: value for name, value in params.items() if value is not None})

    def with_json(self, **updates: Any) -> RequestSpec:
        """A copy with fields set in the JSON object body (a None value removes one)."""
        body = {**(self.json or {}), **updates}
        return replace(self, json={name: value for name, value in body.items() if value is not None})

    def at(self, url: str) -> RequestSpec:
        """The same method at ``url``, which carries its own query (a next-page link), without params or body."""
        return RequestSpec(self.method, url, headers=self.headers)


_NOT_JSON = object()


class Reply:
    """A provider response with its JSON body decoded once, on first use (None when it is not JSON)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return self.response.status_code

    @property
    def headers(self) -> httpx.Headers:
        """The response headers (case-insensitive)."""
        return self.response.headers

    @cached_property
    def _decoded(self) -> Any:
        try:
            return orjson.loads(self.response.content)
        except orjson.JSONDecodeError:
            return _NOT_JSON

    @property
    def body(self) -> Any:
        """The decoded JSON body; None when the body is not JSON."""
        decoded = self._decoded
        return None if decoded is _NOT_JSON else decoded

    def field(self, *path: str) -> Any:
        """The value at ``path`` in a JSON object body, None when any step is missing."""
        value = self.body
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value
