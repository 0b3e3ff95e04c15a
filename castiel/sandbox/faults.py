"""Failures on demand: each provider stand-in answers some requests with a 429 or a 5xx instead of the real answer.

Per provider, a plan says how often (``rate_429``, ``rate_5xx``: shares of requests, drawn from a seeded generator
so a run is reproducible) and which exact statuses the next requests get (``next``, consumed in order before any
drawing), and the ``Retry-After`` a 429 carries. Each stand-in renders the status in its provider's own shape.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from castiel.errors import ConfigError

SERVER_ERRORS = (500, 502, 503)


@dataclass(slots=True)
class FaultPlan:
    """How one provider stand-in fails."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    retry_after: int = 1
    next: deque[int] = field(default_factory=deque)


class Faults:
    """The fault plans of every provider stand-in, drawing from one seeded generator."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._plans: dict[str, FaultPlan] = {}

    def configure(
        self,
        provider: str,
        *,
        rate_429: float | None = None,
        rate_5xx: float | None = None,
        retry_after: int | None = None,
        next_statuses: list[int] | None = None,
    ) -> FaultPlan:
        """Change ``provider``'s plan (fields left None keep their value); ``ConfigError`` for nonsense."""
        plan = self._plans.setdefault(provider, FaultPlan())
        for name, rate in (("rate429", rate_429), ("rate5xx", rate_5xx)):
            if rate is not None and not 0.0 <= rate <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, not {rate}")
        if retry_after is not None and retry_after < 0:
            raise ConfigError(f"retryAfter must not be negative, not {retry_after}")
        for status in next_statuses or []:
            if status != 429 and status not in range(500, 600):
                raise ConfigError(f"next statuses must be 429 or 5xx, not {status}")
        plan.rate_429 = plan.rate_429 if rate_429 is None else rate_429
        plan.rate_5xx = plan.rate_5xx if rate_5xx is None else rate_5xx
        plan.retry_after = plan.retry_after if retry_after is None else retry_after
        plan.next.extend(next_statuses or [])
        return plan

    def clear(self) -> None:
        """No more faults anywhere."""
        self._plans.clear()

    def plan(self, provider: str) -> FaultPlan:
        """``provider``'s plan (no faults when none was configured)."""
        return self._plans.get(provider) or FaultPlan()

    def draw(self, provider: str) -> int | None:
        """The status the next request of ``provider`` fails with, None when it goes through."""
        plan = self._plans.get(provider)
        if plan is None:
            return None
        if plan.next:
            return plan.next.popleft()
        roll = self._rng.random()
        if roll < plan.rate_429:
            return 429
        if roll < plan.rate_429 + plan.rate_5xx:
            return self._rng.choice(SERVER_ERRORS)
        return None
