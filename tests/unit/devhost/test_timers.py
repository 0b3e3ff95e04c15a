"""NCRONTAB schedules (second first, UTC) and the timer runner's firing sequence."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from azure.functions.timer import TimerRequest

from castiel.clock import ManualClock
from castiel.devhost.loader import HostedFunction, TimerBinding
from castiel.devhost.timers import TimerRunner, next_fire, validate_schedule
from castiel.errors import ConfigError


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        # sync_scheduler: on the hour.
        ("0 0 * * * *", "2026-01-01T00:30:00", "2026-01-01T01:00:00"),
        ("0 0 * * * *", "2026-01-01T01:00:00", "2026-01-01T02:00:00"),
        ("0 0 * * * *", "2026-01-01T00:59:59.999", "2026-01-01T01:00:00"),
        ("0 0 * * * *", "2026-12-31T23:00:01", "2027-01-01T00:00:00"),
        # token_refresher: every six hours, on 00/06/12/18.
        ("0 0 */6 * * *", "2026-01-01T00:30:00", "2026-01-01T06:00:00"),
        ("0 0 */6 * * *", "2026-01-01T06:00:00", "2026-01-01T12:00:00"),
        ("0 0 */6 * * *", "2026-01-01T19:00:00", "2026-01-02T00:00:00"),
        # The first field is seconds.
        ("*/5 * * * * *", "2026-01-01T00:30:00", "2026-01-01T00:30:05"),
        ("30 15 10 * * *", "2026-01-01T10:15:29", "2026-01-01T10:15:30"),
        # Day of week 1 is Monday; 2026-01-05 is the first Monday of 2026.
        ("0 30 9 * * 1", "2026-01-01T00:00:00", "2026-01-05T09:30:00"),
        ("0 30 9 * * Mon-Fri", "2026-01-03T00:00:00", "2026-01-05T09:30:00"),
    ],
)
def test_next_fire(schedule: str, after: str, expected: str) -> None:
    assert next_fire(schedule, utc(after)) == utc(expected)


@pytest.mark.parametrize("schedule", ["0 * * * *", "0 0 * * * * *", "61 0 * * * *", "every hour", "00:05:00"])
def test_schedules_that_are_not_six_field_ncrontab_are_refused(schedule: str) -> None:
    with pytest.raises(ConfigError, match="NCRONTAB"):
        validate_schedule(schedule)


async def test_fires_at_start_then_on_schedule_without_firing_twice() -> None:
    due = utc("2026-01-01T01:00:00")
    # 20 ms before the hour: the runner really waits that long, then fires exactly once for 01:00.
    clock = ManualClock(due.timestamp() - 0.02)
    started = datetime.fromtimestamp(clock.value, UTC)
    stop = asyncio.Event()
    calls: list[TimerRequest] = []

    async def record(timer: TimerRequest) -> None:
        calls.append(timer)
        if len(calls) == 2:
            stop.set()

    function = HostedFunction("tick", TimerBinding("0 0 * * * *", run_on_startup=False), record)
    await asyncio.wait_for(TimerRunner(function, timeout=5, fire_at_start=True, clock=clock).run(stop), 5)

    assert [call.past_due for call in calls] == [False, False]
    assert calls[0].schedule_status == {"Next": due.isoformat()}
    assert calls[1].schedule_status == {"Last": started.isoformat(), "Next": utc("2026-01-01T02:00:00").isoformat()}


async def test_run_on_startup_fires_without_the_flag_and_a_failure_does_not_stop_the_timer() -> None:
    stop = asyncio.Event()
    calls = 0

    async def boom(timer: TimerRequest) -> None:
        nonlocal calls
        calls += 1
        stop.set()
        raise RuntimeError("timer body failed")

    function = HostedFunction("boom", TimerBinding("0 0 * * * *", run_on_startup=True), boom)
    await asyncio.wait_for(TimerRunner(function, timeout=5, clock=ManualClock()).run(stop), 5)
    assert calls == 1


def test_an_invalid_schedule_fails_at_construction() -> None:
    async def never(timer: TimerRequest) -> None:
        raise AssertionError

    with pytest.raises(ConfigError):
        TimerRunner(HostedFunction("bad", TimerBinding("0 * * * *", False), never), timeout=None)


async def test_says_when_it_fires_next_at_start_and_after_each_run(caplog: pytest.LogCaptureFixture) -> None:
    due = utc("2026-01-01T01:00:00")
    clock = ManualClock(due.timestamp() - 0.02)
    stop = asyncio.Event()

    async def tick(timer: TimerRequest) -> None:
        stop.set()

    function = HostedFunction("sync_scheduler", TimerBinding("0 0 * * * *", run_on_startup=False), tick)
    with caplog.at_level(logging.INFO, logger="castiel"):
        await asyncio.wait_for(TimerRunner(function, timeout=5, clock=clock).run(stop), 5)

    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("timer.next")]
    assert lines == [
        'timer.next function=sync_scheduler next_run=2026-01-01T01:00:00.000000Z schedule="0 0 * * * *"',
        'timer.next function=sync_scheduler next_run=2026-01-01T02:00:00.000000Z schedule="0 0 * * * *"',
    ]
