"""What a provider's answer means for the request that got it: one table, overridden row by row.

A ``Rule`` matches a response (by status and an optional predicate over the reply) and names an ``Action``.
``ResolutionTable.extended`` puts a provider's rows *before* the defaults, so a provider refines the defaults instead
of replacing them: Slack's ``ok: false`` on HTTP 200, GitHub's 403 with ``X-RateLimit-Remaining: 0``, Google's 403
``rateLimitExceeded``. The first matching row decides. A request that raised instead of answering is retried or
failed as the shared httpx table (``castiel.http_errors``) classes its error.

Actions and what the engine (``adapters/engine.py``) does with each:

* ``SUCCESS``: the reply goes back to the adapter;
* ``RETRY``: sent again after a backoff (``backoff.py``), up to the engine's attempts, then ``RetryableError``;
* ``RATE_LIMITED``: ``RateLimited`` with the provider's retry-after; the queue re-sends the work then;
* ``REFRESH_TOKEN_THEN_RETRY``: the connection's ``httpx.Auth`` flow (``castiel/credentials``) has already refreshed
  on a 401 and re-sent once inside ``httpx``; a rejection that still comes out (or one the provider signals in a
  200 body, as Slack does) makes the engine ask ``auth_for_connection`` again, which reflects the refreshed token,
  and send once more; a second rejection is permanent;
* ``NOT_FOUND``: ``NotFound`` (a delete of something already gone counts as deleted);
* ``RESYNC``: the provider invalidated the cursor (Google's 410): the fetch starts a clean full pass;
* ``FAIL``: ``PermanentError``: retrying cannot fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from adapters.wire import Reply


class Action(StrEnum):
    """What the engine does with a reply (the module docstring says how)."""

    SUCCESS = "success"
    RETRY = "retry"
    FAIL = "fail"
    RATE_LIMITED = "rate_limited"
    REFRESH_TOKEN_THEN_RETRY = "refresh_token_then_retry"  # noqa: S105 - an action name, not a credential
    NOT_FOUND = "not_found"
    RESYNC = "resync"


Predicate = Callable[[Reply], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    """One row: when it matches, and what to do. ``status`` None matches any status."""

    action: Action
    status: int | range | frozenset[int] | None = None
    when: Predicate | None = None
    reason: str = ""

    def matches(self, reply: Reply) -> bool:
        """True when this row decides ``reply``."""
        status = self.status
        if isinstance(status, int):
            if reply.status != status:
                return False
        elif status is not None and reply.status not in status:
            return False
        return self.when is None or self.when(reply)


class ResolutionTable:
    """Ordered rules; the first match decides."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        if not any(rule.status is None and rule.when is None for rule in self.rules):
            raise ValueError("a resolution table needs a last row matching every response")

    def extended(self, provider_rules: Iterable[Rule]) -> ResolutionTable:
        """A table with ``provider_rules`` first, then every row of this one."""
        return ResolutionTable((*provider_rules, *self.rules))

    def resolve(self, reply: Reply) -> Rule:
        """The row deciding ``reply``."""
        return next(rule for rule in self.rules if rule.matches(reply))


def header_equals(name: str, value: str) -> Predicate:
    """A predicate: header ``name`` is present with exactly ``value``."""
    return lambda reply: reply.headers.get(name) == value


def has_header(name: str) -> Predicate:
    """A predicate: header ``name`` is present."""
    return lambda reply: name in reply.headers


DEFAULT_TABLE = ResolutionTable(
    (
        Rule(Action.SUCCESS, status=range(200, 300)),
        Rule(Action.REFRESH_TOKEN_THEN_RETRY, status=401, reason="credentials rejected"),
        Rule(Action.NOT_FOUND, status=frozenset({404, 410}), reason="not found"),
        Rule(Action.RATE_LIMITED, status=429, reason="rate limited"),
        Rule(Action.RETRY, status=frozenset({408, 425}), reason="request timeout"),
        Rule(Action.RETRY, status=range(500, 600), reason="provider error"),
        Rule(Action.FAIL, status=range(400, 500), reason="request refused"),
        Rule(Action.FAIL, reason="unexpected response"),
    )
)
"""The defaults every adapter extends."""
