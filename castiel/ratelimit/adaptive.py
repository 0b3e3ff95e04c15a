"""Tightening a connection's limit from what its provider says about its own, and relaxing it again.

Read from every provider response (``RateLimiter.observe_response``):

* GitHub ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (reset in UTC epoch seconds; a small value is taken
  as seconds from now, as some other providers send it);
* Salesforce ``Sforce-Limit-Info: api-usage=N/M`` (the org's rolling 24-hour quota, no reset time);
* ``Retry-After`` (seconds or an HTTP date) on 429 and 503 from any provider, and on GitHub's 403 secondary limit.

What it does to the connection's integration limit:

* below 20 % of the provider's quota left, half of it applies; below 5 %, a quarter;
* a ``Retry-After`` pauses the connection until then; a quota at zero pauses it until its reset (Salesforce gives
  none: ``quota_pause_seconds``); a 429 that says nothing pauses it ``default_pause_seconds``;
* recovery is step by step: a quiet window (``quiet_seconds``, no new signal) after the last signal the limit goes
  from a quarter to half, after another to whole. A pause resumes at a quarter, since a refusal means we overshot.

The state is a ``Throttle``: three deadlines, raised by each signal and never lowered, so instances merge their
observations with a plain maximum and the effective limit is a pure function of the time. ``sliding_window.lua``
reads it in the same call as the windows; ``adaptive.lua`` raises it. Times are integer epoch microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

MICROS = 1_000_000

RETRY_AFTER_STATUSES = frozenset({403, 429, 503})
"""Statuses on which ``Retry-After`` means "not before then" (403: GitHub's secondary rate limit)."""

_EPOCH_THRESHOLD = 1_000_000_000
_SFORCE_API_USAGE = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")


@dataclass(frozen=True, slots=True)
class AdaptiveConfig:
    """The thresholds and durations of the adaptive rules."""

    quiet_seconds: float = 60.0
    default_pause_seconds: float = 60.0
    quota_pause_seconds: float = 3600.0
    halve_below: float = 0.20
    quarter_below: float = 0.05


DEFAULT_ADAPTIVE = AdaptiveConfig()


@dataclass(frozen=True, slots=True)
class Usage:
    """A provider's own count: ``remaining`` of ``limit`` left, back to full at ``reset_at_us`` if it says when."""

    remaining: int
    limit: int
    reset_at_us: int | None = None

    @property
    def fraction_left(self) -> float:
        """Share of the quota left, 0 to 1."""
        return max(0, self.remaining) / self.limit if self.limit > 0 else 1.0


@dataclass(frozen=True, slots=True)
class Throttle:
    """A connection's adaptive state: paused until ``paused_until``, then a quarter of its integration limit until
    ``quarter_until``, half until ``half_until``, all of it after. ``reason`` explains it and is not stored."""

    paused_until: int = 0
    quarter_until: int = 0
    half_until: int = 0
    reason: str = field(default="", compare=False)

    def divisor(self, now_us: int) -> int:
        """What the integration limit is divided by at ``now_us``."""
        if now_us < self.quarter_until:
            return 4
        if now_us < self.half_until:
            return 2
        return 1

    def merged(self, other: Throttle) -> Throttle:
        """Both applied: the later of each deadline."""
        return Throttle(
            max(self.paused_until, other.paused_until),
            max(self.quarter_until, other.quarter_until),
            max(self.half_until, other.half_until),
            other.reason or self.reason,
        )

    @property
    def ends_at(self) -> int:
        """When the connection is back to its whole limit."""
        return max(self.paused_until, self.quarter_until, self.half_until)


def parse_retry_after(value: str, now_us: int) -> int | None:
    """The moment ``Retry-After`` names (delay seconds or an HTTP date), never before now; None if unreadable."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            return None
        return max(now_us, round(moment.timestamp() * MICROS))
    if seconds != seconds or seconds < 0:  # NaN or negative: not a delay
        return None
    return now_us + round(seconds * MICROS)


def parse_rate_limit_headers(headers: Mapping[str, str], now_us: int) -> Usage | None:
    """GitHub-style ``x-ratelimit-*`` (lower-cased names); None when absent or unreadable."""
    try:
        limit = int(headers["x-ratelimit-limit"])
        remaining = int(headers["x-ratelimit-remaining"])
    except (KeyError, ValueError):
        return None
    reset_at_us: int | None = None
    reset = headers.get("x-ratelimit-reset")
    if reset is not None:
        try:
            seconds = float(reset)
        except ValueError:
            seconds = -1.0
        if seconds >= _EPOCH_THRESHOLD:
            reset_at_us = max(now_us, round(seconds * MICROS))
        elif seconds >= 0:
            reset_at_us = now_us + round(seconds * MICROS)
    return Usage(remaining=remaining, limit=limit, reset_at_us=reset_at_us)


def parse_sforce_limit_info(value: str) -> Usage | None:
    """Salesforce ``Sforce-Limit-Info``'s ``api-usage=N/M`` (N used of M); None when absent."""
    match = _SFORCE_API_USAGE.search(value)
    if match is None:
        return None
    used, limit = int(match.group(1)), int(match.group(2))
    return Usage(remaining=limit - used, limit=limit)


def throttle_for(
    status_code: int, headers: Mapping[str, str], now_us: int, config: AdaptiveConfig = DEFAULT_ADAPTIVE
) -> Throttle | None:
    """The throttle one response asks for, or None when it asks for nothing (the common case)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    pause_until, reasons = 0, []

    retry_after = lowered.get("retry-after")
    if retry_after is not None and status_code in RETRY_AFTER_STATUSES:
        deadline = parse_retry_after(retry_after, now_us)
        if deadline is not None:
            pause_until = deadline
            reasons.append(f"HTTP {status_code} Retry-After {retry_after}")

    usages: list[tuple[str, Usage]] = []
    github = parse_rate_limit_headers(lowered, now_us)
    if github is not None:
        usages.append(("X-RateLimit-Remaining", github))
    sforce = lowered.get("sforce-limit-info")
    salesforce = parse_sforce_limit_info(sforce) if sforce is not None else None
    if salesforce is not None:
        usages.append(("Sforce-Limit-Info api-usage", salesforce))

    for name, usage in usages:
        if usage.remaining <= 0:
            quota_reset = usage.reset_at_us or now_us + round(config.quota_pause_seconds * MICROS)
            pause_until = max(pause_until, quota_reset)
            reasons.append(f"{name}: quota of {usage.limit} used up")
    if status_code == 429 and pause_until == 0:
        pause_until = now_us + round(config.default_pause_seconds * MICROS)
        reasons.append("HTTP 429 without Retry-After")

    quiet = round(config.quiet_seconds * MICROS)
    quarter_until = half_until = 0
    if pause_until > now_us:
        quarter_until, half_until = pause_until + quiet, pause_until + 2 * quiet
    left = min((usage.fraction_left for _, usage in usages), default=1.0)
    if left < config.quarter_below:
        quarter_until, half_until = max(quarter_until, now_us + quiet), max(half_until, now_us + 2 * quiet)
    elif left < config.halve_below:
        half_until = max(half_until, now_us + quiet)
    if not reasons and left < config.halve_below:
        reasons.append(f"provider quota {left:.0%} left")
    if pause_until <= now_us and half_until == 0:
        return None
    return Throttle(pause_until if pause_until > now_us else 0, quarter_until, half_until, "; ".join(reasons))
