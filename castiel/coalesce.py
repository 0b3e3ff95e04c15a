"""Coalescing: calls made in the same event-loop turn share one round trip.

On a loaded loop, many coroutines reach the same await in one turn (16 webhook requests each claiming a delivery
id, 32 rate-limit checks). Sending each alone costs a round trip and a client's per-command overhead apiece;
``Coalescer`` gathers the items submitted during a turn and hands them to one batch call, scheduled with
``call_soon`` so it runs after every coroutine already woken in this turn has submitted. Batches run concurrently:
a slow batch never holds back the next one.

With a ``delay``, a batch gathers the items of every turn within that time instead: for work nobody waits on
(audit lines written after the answer), where fewer, larger writes matter more than a few milliseconds.

With a ``group``, items of different groups never share a batch: a turn's items go out as one batch per group
(a Lua script may only touch keys of one cluster slot, so Redis callers group by hash tag).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Runs ``run_batch`` once per event-loop turn (or per ``delay`` seconds) for the items submitted meanwhile.

    A batch holds at most ``max_batch`` items; a full batch is sent at once.

    ``run_batch`` returns one result per item, in order. If it raises, every item of that batch raises the same
    exception: no caller is left waiting.
    """

    def __init__(
        self,
        run_batch: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 64,
        delay: float = 0.0,
        group: Callable[[T], Hashable] | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._delay = delay
        self._group = group
        self._timer: asyncio.TimerHandle | None = None
        self._pending: dict[Hashable, list[tuple[T, asyncio.Future[R]]]] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """The result for ``item``, computed together with the other items of this turn."""
        return await self.post(item)

    def post(self, item: T) -> asyncio.Future[R]:
        """Add ``item`` to this turn's batch without waiting: the future holds its result (for fire-and-forget)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if not self._pending:
            if self._delay:
                self._timer = loop.call_later(self._delay, self._flush)
            else:
                loop.call_soon(self._flush)
        key = None if self._group is None else self._group(item)
        batch = self._pending.setdefault(key, [])
        batch.append((item, future))
        if len(batch) >= self._max_batch:
            self._start(self._pending.pop(key))
            if not self._pending:
                self._cancel_timer()
        return future

    def _flush(self) -> None:
        self._cancel_timer()
        batches, self._pending = self._pending, {}
        for batch in batches.values():
            self._start(batch)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _send(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        futures = [future for _, future in batch]
        try:
            results = await self._run_batch([item for item, _ in batch])
        except asyncio.CancelledError:
            for future in futures:
                future.cancel()
            raise
        except Exception as exc:
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, result in zip(futures, results, strict=True):
            if not future.done():
                future.set_result(result)
