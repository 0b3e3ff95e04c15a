"""One table of sliding-window-log cases, run against both stores: the Lua script in a real Redis server and the
in-process ``LocalWindow`` that stands in for it. They must give exactly the same answers."""

from __future__ import annotations

import asyncio
import itertools
from typing import Protocol

import pytest
import redis.asyncio as aioredis

from castiel.ratelimit.adaptive import Throttle
from castiel.ratelimit.limiter import RedisWindow
from castiel.ratelimit.local_window import LocalWindow, WindowOutcome, WindowPlan

S = 1_000_000
T0 = 1_700_000_000 * S
MINUTE = 60 * S


class Store(Protocol):
    async def check(self, plan: WindowPlan, now_us: int) -> WindowOutcome: ...

    async def peek(self, plan: WindowPlan, now_us: int) -> WindowOutcome: ...

    async def observe(self, key: str, throttle: Throttle, now_us: int) -> int: ...


class LocalStore:
    def __init__(self) -> None:
        self.window = LocalWindow()

    async def check(self, plan: WindowPlan, now_us: int) -> WindowOutcome:
        return self.window.check(plan, now_us)

    async def peek(self, plan: WindowPlan, now_us: int) -> WindowOutcome:
        return self.window.check(plan, now_us, record=False)

    async def observe(self, key: str, throttle: Throttle, now_us: int) -> int:
        return self.window.observe(key, throttle).paused_until


class RedisStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self.window = RedisWindow(client)
        self.members = itertools.count()

    async def check(self, plan: WindowPlan, now_us: int) -> WindowOutcome:
        return await self.window.check(plan, now_us, f"m{next(self.members)}")

    async def peek(self, plan: WindowPlan, now_us: int) -> WindowOutcome:
        return await self.window.check(plan, now_us, None)

    async def observe(self, key: str, throttle: Throttle, now_us: int) -> int:
        return await self.window.observe(key, throttle, now_us)


@pytest.fixture(params=["redis", "local"])
def store(request: pytest.FixtureRequest, redis_client: aioredis.Redis) -> Store:
    return RedisStore(redis_client) if request.param == "redis" else LocalStore()


def plan(
    connection: str = "c",
    tenant: str = "t",
    limits: tuple[int, int, int] = (100, 100, 100),
    windows: tuple[int, int, int] = (MINUTE, MINUTE, MINUTE),
) -> WindowPlan:
    return WindowPlan(
        keys=(f"{tenant}:{connection}", f"{tenant}:{connection}:op", f"{tenant}:tenant"),
        limits=limits,
        windows_us=windows,
        throttle_key=f"{tenant}:{connection}:throttle",
    )


async def test_admits_up_to_the_limit_then_refuses_until_the_oldest_entry_leaves(store: Store) -> None:
    three = plan(limits=(3, 100, 100))
    admitted = [await store.check(three, T0 + n * S) for n in range(3)]
    assert [outcome.allowed for outcome in admitted] == [True, True, True]
    assert [outcome.remaining for outcome in admitted] == [2, 1, 0]
    assert admitted[0].reset_at_us == T0 + MINUTE

    refused = await store.check(three, T0 + 5 * S)
    assert refused == WindowOutcome(
        allowed=False,
        level="integration",
        retry_after_us=55 * S,
        remaining=0,
        reset_at_us=T0 + MINUTE,
        used=(3, 3, 3),
        limits=(3, 100, 100),
    )


@pytest.mark.parametrize(("offset", "admitted"), [(MINUTE - 1, False), (MINUTE, True), (MINUTE + 1, True)])
async def test_an_entry_leaves_the_window_at_exactly_its_time_plus_the_window(
    store: Store, offset: int, admitted: bool
) -> None:
    one = plan(limits=(1, 100, 100))
    assert (await store.check(one, T0)).allowed
    outcome = await store.check(one, T0 + offset)
    assert outcome.allowed is admitted
    if not admitted:
        assert outcome.retry_after_us == MINUTE - offset == 1


async def test_a_full_tenant_refuses_although_the_integration_has_room_and_nothing_is_recorded(store: Store) -> None:
    a, b = plan("a", limits=(10, 10, 2)), plan("b", limits=(10, 10, 2))
    assert (await store.check(a, T0)).allowed
    assert (await store.check(a, T0 + S)).allowed

    refused = await store.check(b, T0 + 2 * S)
    assert (refused.allowed, refused.level, refused.retry_after_us) == (False, "tenant", 58 * S)
    assert refused.used == (0, 0, 2)

    # The same connection under a tenant with room: its windows are empty, so the refusal recorded nothing.
    b_keys = plan("b").keys
    elsewhere = WindowPlan((b_keys[0], b_keys[1], "other:tenant"), (10, 10, 2), (MINUTE, MINUTE, MINUTE), "x")
    assert (await store.check(elsewhere, T0 + 3 * S)).used == (1, 1, 1)


async def test_when_several_levels_refuse_the_longest_wait_is_reported(store: Store) -> None:
    tight = plan(limits=(1, 100, 1), windows=(10 * S, MINUTE, MINUTE))
    assert (await store.check(tight, T0)).allowed
    refused = await store.check(tight, T0 + S)
    assert (refused.level, refused.retry_after_us) == ("tenant", 59 * S)


async def test_a_lowered_limit_waits_for_every_excess_entry_to_leave(store: Store) -> None:
    for n in range(3):
        assert (await store.check(plan(limits=(3, 100, 100)), T0 + n * S)).allowed
    refused = await store.check(plan(limits=(1, 100, 100)), T0 + 3 * S)
    # Three entries, room for one: the entries of T0 and T0+1s and T0+2s must all go; the last leaves at T0+62s.
    assert refused.retry_after_us == 59 * S


async def test_remaining_and_reset_follow_the_tightest_level(store: Store) -> None:
    tight = plan(limits=(10, 2, 100), windows=(MINUTE, 30 * S, MINUTE))
    first = await store.check(tight, T0)
    assert (first.remaining, first.reset_at_us, first.used, first.limits) == (1, T0 + 30 * S, (1, 1, 1), (10, 2, 100))


async def test_a_paused_connection_is_refused_until_the_pause_ends_then_resumes_at_a_quarter(store: Store) -> None:
    ten = plan(limits=(10, 100, 100))
    throttle = Throttle(paused_until=T0 + 30 * S, quarter_until=T0 + 90 * S, half_until=T0 + 150 * S)
    assert await store.observe(ten.throttle_key, throttle, T0) == 0

    paused = await store.check(ten, T0 + 10 * S)
    assert (paused.allowed, paused.level, paused.retry_after_us) == (False, "provider", 20 * S)
    assert paused.reset_at_us == T0 + 30 * S

    resumed = [await store.check(ten, T0 + 30 * S) for _ in range(3)]
    assert [outcome.allowed for outcome in resumed] == [True, True, False]
    assert resumed[0].limits == (2, 100, 100)
    assert (await store.check(ten, T0 + 90 * S)).limits == (5, 100, 100)
    assert (await store.check(ten, T0 + 150 * S)).limits == (10, 100, 100)


async def test_throttle_deadlines_only_move_later(store: Store) -> None:
    key = plan().throttle_key
    await store.observe(key, Throttle(paused_until=T0 + 30 * S), T0)
    assert await store.observe(key, Throttle(paused_until=T0 + 10 * S), T0 + S) == T0 + 30 * S
    assert (await store.check(plan(), T0 + 20 * S)).retry_after_us == 10 * S


async def test_checks_of_one_batch_see_each_other(store: Store) -> None:
    two = plan(limits=(2, 100, 100))
    outcomes = await asyncio.gather(*(store.check(two, T0) for _ in range(3)))
    assert [outcome.allowed for outcome in outcomes] == [True, True, False]
    assert outcomes[2].retry_after_us == MINUTE


async def test_a_peek_answers_as_a_check_would_and_records_nothing(store: Store) -> None:
    two = plan(limits=(2, 100, 100), windows=(MINUTE, 30 * S, MINUTE))
    empty = await store.peek(two, T0)
    assert empty == WindowOutcome(True, None, 0, 2, T0, (0, 0, 0), (2, 100, 100))
    assert (await store.check(two, T0)).used == (1, 1, 1)  # the peek took no slot

    after_one = await store.peek(two, T0 + S)
    assert (after_one.allowed, after_one.remaining, after_one.reset_at_us, after_one.used) == (
        True,
        1,
        T0 + MINUTE,
        (1, 1, 1),
    )
    assert (await store.check(two, T0 + 2 * S)).allowed
    full = await store.peek(two, T0 + 3 * S)
    assert full == await store.check(two, T0 + 3 * S)  # refused alike, and neither recorded anything
    assert (full.allowed, full.level, full.retry_after_us, full.used) == (False, "integration", 57 * S, (2, 2, 2))
    assert (await store.peek(two, T0 + MINUTE)).used == (1, 0, 1)  # T0 left every window, T0+2s the 30-second one


async def test_a_peek_sees_a_pause_and_a_throttled_limit(store: Store) -> None:
    ten = plan(limits=(10, 100, 100))
    await store.observe(ten.throttle_key, Throttle(paused_until=T0 + 30 * S, quarter_until=T0 + 90 * S), T0)
    paused = await store.peek(ten, T0 + 10 * S)
    assert (paused.allowed, paused.level, paused.retry_after_us) == (False, "provider", 20 * S)
    assert (await store.peek(ten, T0 + 30 * S)).limits == (2, 100, 100)


async def test_peeks_in_a_batch_of_checks_take_no_slot(store: Store) -> None:
    one = plan(limits=(1, 100, 100))
    outcomes = await asyncio.gather(store.peek(one, T0), store.check(one, T0), store.peek(one, T0))
    assert [outcome.allowed for outcome in outcomes] == [True, True, False]
    assert [outcome.used[0] for outcome in outcomes] == [0, 1, 1]


def test_the_local_window_divides_every_limit_by_the_expected_instances() -> None:
    window = LocalWindow(instances=3)
    shared = plan(limits=(10, 100, 100))
    outcomes = [window.check(shared, T0) for _ in range(4)]
    assert [outcome.allowed for outcome in outcomes] == [True, True, True, False]
    assert outcomes[0].limits == (3, 33, 33)
