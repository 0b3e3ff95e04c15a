"""Calls made in one event-loop turn share one batch; results come back in order; a failed batch fails each caller."""

from __future__ import annotations

import asyncio

import pytest

from castiel.coalesce import Coalescer


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail

    async def run(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("backend down")
        return [item * 10 for item in items]


async def test_items_of_one_turn_share_one_batch_and_get_their_own_results() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.run)
    results = await asyncio.gather(*(coalescer.submit(item) for item in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert recorder.batches == [[0, 1, 2, 3, 4]]


async def test_posted_items_join_the_batch_of_the_turn_without_waiting() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.run)
    posted = coalescer.post(7)
    assert not posted.done()
    assert await coalescer.submit(8) == 80
    assert posted.result() == 70
    assert recorder.batches == [[7, 8]]


async def test_items_of_later_turns_go_in_later_batches() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.run)
    assert await coalescer.submit(1) == 10
    assert await coalescer.submit(2) == 20
    assert recorder.batches == [[1], [2]]


async def test_a_full_batch_is_sent_without_waiting_for_the_turn_to_end() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.run, max_batch=2)
    await asyncio.gather(*(coalescer.submit(item) for item in range(5)))
    assert [len(batch) for batch in recorder.batches] == [2, 2, 1]


async def test_a_failed_batch_raises_in_every_caller() -> None:
    coalescer = Coalescer(Recorder(fail=True).run)
    outcomes = await asyncio.gather(*(coalescer.submit(item) for item in range(3)), return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    with pytest.raises(ConnectionError, match="backend down"):
        await coalescer.submit(9)


async def test_a_delayed_batch_gathers_the_items_of_several_turns() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.run, delay=0.05)
    first = coalescer.post(1)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    second = coalescer.post(2)
    assert recorder.batches == []
    assert await asyncio.gather(first, second) == [10, 20]
    assert recorder.batches == [[1, 2]]


async def test_a_full_delayed_batch_is_sent_at_once() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.run, max_batch=2, delay=60)
    assert await asyncio.wait_for(asyncio.gather(coalescer.submit(1), coalescer.submit(2)), timeout=5) == [10, 20]
    assert recorder.batches == [[1, 2]]
