"""Timer triggers on their six-field NCRONTAB schedules (``{second} {minute} {hour} {day} {month} {day-of-week}``, UTC).

Like the Functions host, a timer never overlaps itself: the next occurrence is computed after the current invocation
returns, so a run that outlasts its interval skips the occurrences it covered rather than piling them up. Like it,
too, the host says when each timer fires next: at start-up and after every run (``timer.next``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from croniter import croniter

from castiel.clock import Clock, now_utc, system_clock
from castiel.devhost.convert import timer_request
from castiel.devhost.invocation import Invocation
from castiel.devhost.lifecycle import sleep_unless_stopped
from castiel.devhost.loader import HostedFunction, TimerBinding, discover, load_app
from castiel.errors import ConfigError
from castiel.models import format_utc
from castiel.telemetry import log_event

# An occurrence fired later than this after its due time is reported as past due.
PAST_DUE_TOLERANCE = timedelta(seconds=1)


def validate_schedule(schedule: str) -> None:
    """Raise ``ConfigError`` unless ``schedule`` is a six-field NCRONTAB expression."""
    if len(schedule.split()) != 6 or not croniter.is_valid(schedule, second_at_beginning=True):
        raise ConfigError(f"timer schedule {schedule!r} is not a six-field NCRONTAB expression (second first)")


def next_fire(schedule: str, after: datetime) -> datetime:
    """The first occurrence of ``schedule`` strictly after ``after`` (an aware datetime), in UTC."""
    found: datetime = croniter(schedule, after, second_at_beginning=True).get_next(datetime)
    return found


def timer_schedule(app_ref: str, function: str) -> str:
    """The schedule of the timer-triggered ``function`` of the app ``module:attribute``; ``ConfigError`` when the app
    cannot be loaded or has no such timer."""
    for hosted in discover(load_app(app_ref).app, [function]):
        if isinstance(hosted.binding, TimerBinding):
            return hosted.binding.schedule
    raise ConfigError(f"{function} in {app_ref} is not a timer-triggered function")


class TimerRunner:
    """Fires one timer-triggered function on its schedule until told to stop."""

    def __init__(
        self,
        function: HostedFunction,
        *,
        timeout: float | None,
        fire_at_start: bool = False,
        clock: Clock = system_clock,
    ) -> None:
        binding = function.binding
        assert isinstance(binding, TimerBinding)
        validate_schedule(binding.schedule)
        self._function = function
        self._schedule = binding.schedule
        self._fire_at_start = fire_at_start or binding.run_on_startup
        self._timeout = timeout
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        """Fire at start when asked, then on every occurrence until ``stop`` is set."""
        due = now_utc(self._clock)
        last: datetime | None = None
        if self._fire_at_start:
            await self._fire(past_due=False, last=None, upcoming=next_fire(self._schedule, due))
            last = due
        while True:
            # From the later of now and the last due time: a sleep that wakes a hair early never fires twice.
            due = next_fire(self._schedule, max(now_utc(self._clock), due))
            log_event("timer.next", function=self._function.name, next_run=format_utc(due), schedule=self._schedule)
            if await sleep_unless_stopped(stop, (due - now_utc(self._clock)).total_seconds()):
                return
            late = now_utc(self._clock) - due > PAST_DUE_TOLERANCE
            await self._fire(past_due=late, last=last, upcoming=next_fire(self._schedule, due))
            last = due

    async def _fire(self, *, past_due: bool, last: datetime | None, upcoming: datetime) -> None:
        invocation = Invocation(self._function, None, self._timeout)
        try:
            await invocation.call(timer_request(past_due=past_due, last=last, next_fire=upcoming))
        except Exception as exc:
            invocation.finish("failed", exc)
        else:
            invocation.finish("succeeded")
