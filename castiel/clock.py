"""Time as a parameter: anything with a window, an expiry or a tolerance takes a ``Clock``.

A clock is any zero-argument callable returning epoch seconds, so ``time.time`` is one and tests pass a
``ManualClock`` they move by hand instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]

system_clock: Clock = time.time


def to_datetime(epoch_seconds: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch_seconds, UTC)


def now_utc(clock: Clock = system_clock) -> datetime:
    """The clock's current time as an aware UTC datetime."""
    return to_datetime(clock())


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds
