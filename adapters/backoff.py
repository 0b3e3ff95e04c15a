"""How long to wait: an ordered list of answers where the first one wins.

For a retry (``RETRY``): the provider's ``Retry-After``, else exponential backoff with jitter. For a rate limit
(``RATE_LIMITED``): ``Retry-After``, else the reset of a quota the provider says is used up (GitHub's
``X-RateLimit-Reset`` with ``X-RateLimit-Remaining: 0``), else the adapter's own default pause (GitHub's secondary
limit asks for at least a minute; Salesforce's daily quota an hour).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from adapters.wire import Reply
from castiel.ratelimit.adaptive import MICROS, parse_rate_limit_headers, parse_retry_after

WaitRule = Callable[[Reply, float], float | None]
"""One answer: seconds to wait given the reply and the time now (epoch seconds), or None to ask the next rule."""


def retry_after_header(reply: Reply, now: float) -> float | None:
    """``Retry-After`` in seconds or as an HTTP date."""
    value = reply.headers.get("retry-after")
    if value is None:
        return None
    now_us = round(now * MICROS)
    deadline = parse_retry_after(value, now_us)
    return None if deadline is None else (deadline - now_us) / MICROS


def quota_reset(reply: Reply, now: float) -> float | None:
    """Until ``X-RateLimit-Reset`` when ``X-RateLimit-Remaining`` is 0."""
    now_us = round(now * MICROS)
    usage = parse_rate_limit_headers({name.lower(): value for name, value in reply.headers.items()}, now_us)
    if usage is None or usage.remaining > 0 or usage.reset_at_us is None:
        return None
    return (usage.reset_at_us - now_us) / MICROS


def first_answer(rules: Sequence[WaitRule], reply: Reply | None, now: float) -> float | None:
    """The first rule's answer, None when none has one (or there is no reply, only an exception)."""
    if reply is None:
        return None
    for rule in rules:
        seconds = rule(reply, now)
        if seconds is not None:
            return max(0.0, seconds)
    return None


RATE_LIMIT_RULES: tuple[WaitRule, ...] = (retry_after_header, quota_reset)
"""What a rate-limited reply says about when to come back."""


@dataclass(slots=True)
class ExponentialBackoff:
    """``base * 2**(attempt-1)`` seconds, capped, of which a random half is waited ("equal jitter"): retries of many
    workers spread out instead of arriving together."""

    base_seconds: float = 0.5
    cap_seconds: float = 8.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (1 for the first retry)."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0 ** (attempt - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)
