"""What the rate limiter tells an operator: a level nearly or fully used, a paused connection, a Redis outage.

The limiter calls an ``AlertCallback`` synchronously on the check path, so a callback must be quick and must not
do I/O of its own; the default, ``log_alert``, writes one structured warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from castiel.telemetry import log_event

USAGE_THRESHOLDS = (0.8, 1.0)
"""A level's usage alerts, as shares of its limit."""


class AlertKind(StrEnum):
    USAGE_80 = "usage_80"
    USAGE_100 = "usage_100"
    CONNECTION_PAUSED = "connection_paused"
    DEGRADED = "degraded"
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class Subject:
    """The connection an alert is about."""

    tenant_id: str
    connection_id: str
    provider: str


@dataclass(frozen=True, slots=True)
class RateLimitAlert:
    """One alert at ``at`` (epoch seconds); ``level`` names the level of a usage alert, ``detail`` what happened."""

    kind: AlertKind
    detail: str
    at: float
    subject: Subject | None = None
    level: str | None = None


AlertCallback = Callable[[RateLimitAlert], None]


def log_alert(alert: RateLimitAlert) -> None:
    """The default callback: a structured warning (refused calls are counted by the limiter itself)."""
    present: dict[str, str] = {"kind": alert.kind.value}
    subject = alert.subject
    if subject is not None:
        present.update(tenant_id=subject.tenant_id, connection_id=subject.connection_id, provider=subject.provider)
    if alert.level is not None:
        # Not ``level``: that keyword is the log record's severity in ``log_event``.
        present["limit_level"] = alert.level
    log_event("ratelimit.alert", level=logging.WARNING, detail=alert.detail, **present)


_USAGE_KINDS = {0.8: AlertKind.USAGE_80, 1.0: AlertKind.USAGE_100}


class UsageAlarm:
    """Raises a level's 80 % and 100 % alerts, each at most once per window per key in this process.

    Usage near a threshold goes up and down with every call; without the once-per-window rule a busy level
    would alert on every other call.
    """

    def __init__(self, callback: AlertCallback) -> None:
        self._callback = callback
        self._last_fired: dict[tuple[str, float], int] = {}

    def update(
        self,
        *,
        key: str,
        used: int,
        limit: int,
        window_us: int,
        now_us: int,
        subject: Subject,
        level: str,
    ) -> None:
        """Note a level's usage after a check; alert on each threshold it is at or over, unless alerted lately."""
        for threshold in USAGE_THRESHOLDS:
            if used < threshold * limit:
                return
            last = self._last_fired.get((key, threshold))
            if last is not None and now_us - last < window_us:
                continue
            self._last_fired[(key, threshold)] = now_us
            detail = f"{level} limit {used}/{limit} used ({threshold:.0%} threshold)"
            self._callback(RateLimitAlert(_USAGE_KINDS[threshold], detail, now_us / 1_000_000, subject, level))
