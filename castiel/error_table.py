"""Foreign errors as ``castiel.errors``: one table per library (each Azure SDK, redis-py), applied by one context
manager at the edge where that library is called.

A ``Rule`` names the exception types it matches and, optionally, the HTTP statuses and a finer test (a service
error code, a sub-status); it says which Castiel error the failure becomes and why. The most specific matching rule
wins — a rule for the exception's own class over one for a base class, then a rule with a finer test, then the one
naming the fewest statuses (any statuses over none) — so a table reads as a list of cases in any order, the way httpx's
``map_httpcore_exceptions`` picks the most specific mapping.

A rule whose error is ``RateLimited`` carries the service's retry-after, parsed here and nowhere else
(``retry_after_seconds``): Cosmos DB's ``x-ms-retry-after-ms``, the ``retry-after-ms`` and ``Retry-After`` (seconds
or an HTTP date) of the others. Messages are one line, start with the action that failed, and hold the service's
error code and message, never a request body.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from castiel.errors import CastielError, RateLimited

_MESSAGE_LIMIT = 300


def retry_after_seconds(headers: Mapping[str, str] | None, default: float, *, now: datetime | None = None) -> float:
    """How long the service asked the caller to wait, from its response headers; ``default`` when it did not say.

    ``x-ms-retry-after-ms`` and ``retry-after-ms`` are milliseconds; ``Retry-After`` is seconds or an HTTP date.
    """
    if not headers:
        return default
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, scale in (("x-ms-retry-after-ms", 0.001), ("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return default


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a failed call, or None when there was no response (network, credential)."""
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def headers_of(exc: BaseException) -> Mapping[str, str]:
    """The response headers of a failed call (azure-cosmos copies them onto the exception), else none."""
    headers = getattr(exc, "headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    return headers if isinstance(headers, Mapping) else {}


def describe(exc: BaseException) -> str:
    """One line for a log: the service's error code and message where it sent them, else the SDK's message."""
    # azure-core's HttpResponseError parses the service's {"error": {"code", "message"}} into .error.
    error = getattr(exc, "error", None)
    code, detail = getattr(error, "code", None), getattr(error, "message", None)
    if code or detail:
        text = f"{code}: {detail}"
    else:
        text = str(getattr(exc, "message", None) or "") or str(exc) or type(exc).__name__
    # SDK messages span lines (status, JSON body, activity id); a log line wants one.
    return " ".join(text.split())[:_MESSAGE_LIMIT]


@dataclass(frozen=True, slots=True)
class Rule:
    """One case of a table: exceptions of ``types`` (with a status in ``statuses`` and passing ``when``, if given)
    become ``error``, explained by ``reason`` (``{status}`` is the HTTP status)."""

    types: tuple[type[BaseException], ...]
    error: type[CastielError]
    reason: str
    statuses: Collection[int] | None = None
    when: Callable[[BaseException], bool] | None = None

    def specificity(self, exc: BaseException) -> tuple[int, bool, float] | None:
        """How closely this rule fits ``exc`` (higher wins), or None when it does not match."""
        mro = type(exc).__mro__
        distances = [mro.index(kind) if kind in mro else len(mro) for kind in self.types if isinstance(exc, kind)]
        if not distances:
            return None
        if self.statuses is not None and status_of(exc) not in self.statuses:
            return None
        if self.when is not None and not self.when(exc):
            return None
        return -min(distances), self.when is not None, -len(self.statuses) if self.statuses is not None else -math.inf


class ErrorTable:
    """The rules of one library; ``translating(action)`` applies them at a call site."""

    def __init__(
        self, service: str, rules: Sequence[Rule], *, default_retry_after: float = 1.0, level: str | None = None
    ) -> None:
        """``service`` names the system in messages; ``level`` tags its ``RateLimited`` errors."""
        self.service = service
        self._rules = tuple(rules)
        self._default_retry_after = default_retry_after
        self._level = level

    def translate(self, exc: BaseException, action: str) -> CastielError | None:
        """The Castiel error for ``exc`` raised while doing ``action``; None when no rule matches it."""
        best: tuple[tuple[int, bool, float], Rule] | None = None
        for rule in self._rules:
            fit = rule.specificity(exc)
            if fit is not None and (best is None or fit > best[0]):
                best = fit, rule
        if best is None:
            return None
        rule = best[1]
        status = status_of(exc)
        message = f"{action}: {self.service} {rule.reason.format(status=status)}: {describe(exc)}"
        if issubclass(rule.error, RateLimited):
            wait = retry_after_seconds(headers_of(exc), self._default_retry_after)
            return rule.error(message, retry_after=wait, level=self._level)
        return rule.error(message)

    @contextmanager
    def translating(self, action: str) -> Iterator[None]:
        """Raise what ``translate`` makes of an error of this library (``from`` it); anything else passes unchanged."""
        try:
            yield
        except CastielError:
            raise
        except Exception as exc:
            error = self.translate(exc, action)
            if error is None:
                raise
            raise error from exc


SERVER_ERRORS = range(500, 600)
"""The 5xx statuses."""
