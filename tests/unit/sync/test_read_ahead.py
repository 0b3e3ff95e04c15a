"""Pages are read one ahead: the next is being fetched while the current one is saved, never more than one, an error
of the source comes after the pages before it, and stopping early abandons the fetch ahead and closes the source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest

from castiel.sync.pull import read_ahead


class Source:
    """Pages 0..n-1 (then an error, if asked), each released by the test, recording what was asked for."""

    def __init__(self, pages: int, *, fail: bool = False) -> None:
        self.pages = pages
        self.fail = fail
        self.requested: list[int] = []
        self.release: dict[int, asyncio.Event] = {n: asyncio.Event() for n in range(pages + 1)}
        self.closed = False
        self.cancelled = False

    async def iterate(self) -> AsyncIterator[int]:
        try:
            for number in range(self.pages + (1 if self.fail else 0)):
                self.requested.append(number)
                try:
                    await self.release[number].wait()
                except asyncio.CancelledError:
                    self.cancelled = True
                    raise
                if number == self.pages:
                    raise RuntimeError("the provider failed")
                yield number
        finally:
            self.closed = True


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_next_page_is_fetched_while_the_current_one_is_worked_on_and_no_further() -> None:
    source = Source(3)
    for event in source.release.values():
        event.set()
    seen: list[tuple[int, list[int]]] = []
    async with aclosing(read_ahead(source.iterate())) as pages:
        async for page in pages:
            await settle()
            seen.append((page, list(source.requested)))
    assert seen == [(0, [0, 1]), (1, [0, 1, 2]), (2, [0, 1, 2])]
    assert source.closed


async def test_an_error_of_the_source_comes_after_every_page_before_it() -> None:
    source = Source(2, fail=True)
    for event in source.release.values():
        event.set()
    seen: list[int] = []

    async def consume() -> None:
        async with aclosing(read_ahead(source.iterate())) as pages:
            async for page in pages:
                seen.append(page)

    with pytest.raises(RuntimeError, match="the provider failed"):
        await consume()
    assert seen == [0, 1]


async def test_stopping_early_cancels_the_fetch_ahead_and_closes_the_source() -> None:
    source = Source(3)
    source.release[0].set()
    async with aclosing(read_ahead(source.iterate())) as pages:
        assert await anext(pages) == 0
        await settle()
        assert source.requested == [0, 1]  # page 1 is being fetched, and never released
    assert (source.cancelled, source.closed) == (True, True)
