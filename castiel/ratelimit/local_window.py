"""The sliding-window log in process memory: the plain form of ``sliding_window.lua``, and its stand-in when Redis
is unreachable.

A *sliding-window log* keeps the time of every admitted call per key; a call is admitted when fewer than ``limit``
times lie in ``(now - window, now]``. An entry recorded at ``t`` leaves the window at exactly ``t + window``. Unlike
a fixed or a sliding-window *counter*, it never admits a burst across a window edge, and a refusal knows exactly
when the next slot frees: when the oldest entry that must leave does.

A check tests the three levels of ``WindowPlan`` and records the call at all of them only if all admit it; a peek
asks the same and records nothing. Times are integer epoch microseconds, so the Lua version computes exactly the same
answers (``tests`` run one table of cases against both).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from castiel.ratelimit.adaptive import Throttle
from castiel.ratelimit.policy import LEVELS, PROVIDER_LEVEL


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """What one check tests: a key, limit and window per level (``LEVELS`` order) and the connection's throttle key."""

    keys: tuple[str, str, str]
    limits: tuple[int, int, int]
    windows_us: tuple[int, int, int]
    throttle_key: str


@dataclass(frozen=True, slots=True)
class WindowOutcome:
    """The answer of one check.

    ``level`` names what refused (a level, or ``PROVIDER_LEVEL``) and ``retry_after_us`` is exact: when that
    level's window frees a slot, or the pause ends. ``remaining`` is what the tightest level has left after this call
    (after nothing, for a peek); ``reset_at_us`` is when that level next frees a slot (now, when a peek finds its
    window empty). ``used`` and ``limits`` are per level after the decision (``limits`` with the adaptive divisor
    applied), for the usage alerts.
    """

    allowed: bool
    level: str | None
    retry_after_us: int
    remaining: int
    reset_at_us: int
    used: tuple[int, int, int]
    limits: tuple[int, int, int]


class LocalWindow:
    """The sliding-window log of one process; limits are divided by ``instances``, the processes sharing them."""

    def __init__(self, instances: int = 1) -> None:
        self._instances = max(1, instances)
        self._entries: dict[str, deque[int]] = {}
        self._throttles: dict[str, Throttle] = {}

    def check(self, plan: WindowPlan, now_us: int, *, record: bool = True) -> WindowOutcome:
        """Admit and record the call at every level, or refuse it and record nothing; ``record=False`` only asks."""
        throttle = self._throttles.get(plan.throttle_key, _UNTHROTTLED)
        if throttle.paused_until > now_us:
            wait = throttle.paused_until - now_us
            return WindowOutcome(False, PROVIDER_LEVEL, wait, 0, throttle.paused_until, (0, 0, 0), plan.limits)
        share = self._instances
        limits = (
            max(1, plan.limits[0] // share // throttle.divisor(now_us)),
            max(1, plan.limits[1] // share),
            max(1, plan.limits[2] // share),
        )
        logs = [self._entries.setdefault(key, deque()) for key in plan.keys]
        levels = zip(logs, limits, plan.windows_us, strict=True)
        waits = [_wait(log, limit, window, now_us) for log, limit, window in levels]
        wait = max(waits)
        if wait > 0:
            used = (len(logs[0]), len(logs[1]), len(logs[2]))
            return WindowOutcome(False, LEVELS[waits.index(wait)], wait, 0, now_us + wait, used, limits)
        if record:
            for log in logs:
                log.append(now_us)
        left = [limit - len(log) for limit, log in zip(limits, logs, strict=True)]
        tightest = left.index(min(left))
        oldest = logs[tightest]
        reset_at = oldest[0] + plan.windows_us[tightest] if oldest else now_us
        used = (len(logs[0]), len(logs[1]), len(logs[2]))
        return WindowOutcome(True, None, 0, left[tightest], reset_at, used, limits)

    def observe(self, throttle_key: str, throttle: Throttle) -> Throttle:
        """Raise the connection's throttle; returns the one it had before."""
        previous = self._throttles.get(throttle_key, Throttle())
        self._throttles[throttle_key] = previous.merged(throttle)
        return previous


_UNTHROTTLED = Throttle()


def _wait(log: deque[int], limit: int, window_us: int, now_us: int) -> int:
    """Drop the entries that left the window; 0 if a call fits, else how long until one does."""
    while log and log[0] <= now_us - window_us:
        log.popleft()
    excess = len(log) - limit
    if excess < 0:
        return 0
    # The call needs excess + 1 entries gone; the one at index ``excess`` is the last of them to leave.
    return log[excess] + window_us - now_us
