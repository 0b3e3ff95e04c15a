"""The queue workers' retry policy (DESIGN §7) against the real SQLite queue."""

from __future__ import annotations

from datetime import timedelta

import pytest

from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.clock import ManualClock, now_utc
from castiel.errors import Deferred, InvalidMessage, PermanentError, RateLimited, RetryableError
from castiel.sync.delivery import (
    DEFERRAL_COUNT,
    ORIGINAL_MESSAGE_ID,
    RESUBMITTED_REASON,
    RETRY_COUNT,
    Delivery,
    DeliveryPolicy,
    Handler,
    backoff_seconds,
)

QUEUE = "sync-outbound"


def policy_for(queue: SqliteMessageQueue, clock: ManualClock) -> DeliveryPolicy:
    return DeliveryPolicy(queue, max_retries=3, clock=clock, rng=lambda: 0.0)


def delivery(**properties: int | str) -> Delivery:
    return Delivery(
        queue=QUEUE, body=b'{"x": 1}', message_id="m-1", correlation_id="corr", application_properties=properties
    )


def raising(exc: Exception) -> Handler:
    async def handler(_: Delivery) -> None:
        raise exc

    return handler


async def succeed(_: Delivery) -> None:
    return None


async def test_success_sends_nothing(queue: SqliteMessageQueue, clock: ManualClock) -> None:
    await policy_for(queue, clock).run(delivery(), succeed)
    stats = await queue.stats(QUEUE)
    assert (stats.active, stats.scheduled) == (0, 0)


async def test_a_retryable_error_schedules_a_copy_with_backoff_and_the_retry_count(
    queue: SqliteMessageQueue, clock: ManualClock
) -> None:
    await policy_for(queue, clock).run(delivery(), raising(RetryableError("503 from provider")))

    (copy,) = await queue.peek(QUEUE)
    assert copy.message_id == "m-1:r1"
    assert copy.correlation_id == "corr"
    assert copy.body == b'{"x": 1}'
    assert copy.application_properties[RETRY_COUNT] == 1
    assert copy.application_properties[ORIGINAL_MESSAGE_ID] == "m-1"
    assert copy.scheduled_enqueue_time == now_utc(clock) + timedelta(seconds=backoff_seconds(1, rng=lambda: 0.0))
    assert (await queue.stats(QUEUE)).scheduled == 1


async def test_rate_limited_is_retried_exactly_at_its_retry_after(
    queue: SqliteMessageQueue, clock: ManualClock
) -> None:
    await policy_for(queue, clock).run(delivery(), raising(RateLimited("delete over limit", retry_after=17.5)))
    (copy,) = await queue.peek(QUEUE)
    assert copy.scheduled_enqueue_time == now_utc(clock) + timedelta(seconds=17.5)
    assert copy.application_properties[RETRY_COUNT] == 1


async def test_deferred_work_is_resent_without_counting_a_retry(queue: SqliteMessageQueue, clock: ManualClock) -> None:
    await policy_for(queue, clock).run(delivery(**{RETRY_COUNT: 2}), raising(Deferred("fetch queued", retry_after=3)))
    (copy,) = await queue.peek(QUEUE)
    assert copy.application_properties[RETRY_COUNT] == 2
    assert copy.application_properties[DEFERRAL_COUNT] == 1
    assert copy.message_id == "m-1:d1"


async def test_retries_exhausted_gives_up_as_permanent_with_the_last_error(
    queue: SqliteMessageQueue, clock: ManualClock
) -> None:
    given_up: list[str] = []

    async def on_give_up(_: Delivery, reason: str) -> None:
        given_up.append(reason)

    with pytest.raises(PermanentError, match=r"gave up after 3 retries; last error: 503 from provider"):
        await policy_for(queue, clock).run(
            delivery(**{RETRY_COUNT: 3}), raising(RetryableError("503 from provider")), on_give_up
        )
    assert len(given_up) == 1
    assert (await queue.stats(QUEUE)).scheduled == 0


@pytest.mark.parametrize("error", [PermanentError("bad config"), InvalidMessage("not json"), KeyError("bug")])
async def test_permanent_errors_and_bugs_propagate_and_send_nothing(
    queue: SqliteMessageQueue, clock: ManualClock, error: Exception
) -> None:
    with pytest.raises(type(error)):
        await policy_for(queue, clock).run(delivery(), raising(error))
    assert (await queue.stats(QUEUE)).scheduled == 0


async def test_a_redelivered_original_does_not_schedule_a_second_copy(
    queue: SqliteMessageQueue, clock: ManualClock
) -> None:
    policy = policy_for(queue, clock)
    for _ in range(2):
        await policy.run(delivery(), raising(RetryableError("timeout")))
    assert (await queue.stats(QUEUE)).scheduled == 1


@pytest.mark.parametrize(("retry", "low", "high"), [(1, 2, 4), (2, 4, 8), (3, 8, 16), (10, 300, 600), (40, 300, 600)])
def test_backoff_is_exponential_with_jitter_and_capped(retry: int, low: float, high: float) -> None:
    assert backoff_seconds(retry, rng=lambda: 0.0) == low
    assert low <= backoff_seconds(retry) < high
    assert backoff_seconds(retry, rng=lambda: 0.999999) < high


@pytest.mark.parametrize(
    ("properties", "resubmitted"),
    [
        ({}, False),
        ({RESUBMITTED_REASON: "PermanentError: bad config"}, True),
        ({RESUBMITTED_REASON: ""}, True),
        ({RESUBMITTED_REASON: "PermanentError: bad config", RETRY_COUNT: 1}, False),
        ({RESUBMITTED_REASON: "PermanentError: bad config", DEFERRAL_COUNT: 2}, False),
    ],
)
def test_only_the_first_delivery_of_a_resubmitted_dead_letter_counts_as_resubmitted(
    properties: dict[str, int | str], resubmitted: bool
) -> None:
    assert delivery(**properties).resubmitted is resubmitted
