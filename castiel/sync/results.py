"""A sync's ``sync-results`` document, kept up to date while the sync runs, so an operator sees where it is.

Work happens in phases — ``received → rate_check → auth → fetch → transform → dedup → shard → conflicts → save →
complete`` — and the page phases repeat for every page. Each phase's entry in ``phases`` holds when it was first
entered and the time spent in it so far; ``phase`` names the one running now; counts and the first
``MAX_FAILURES`` failed records grow page by page.

Rewriting the document after every phase of every page would cost a write per phase per page, more than the page's
own batches; so the document is written when a phase is entered for the first time (a run's first page shows every
phase as it starts), and otherwise at most once per ``interval`` seconds of the clock, and at the end.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from enum import StrEnum

from castiel.clock import Clock, now_utc, system_clock
from castiel.models import PhaseTiming, RecordFailure, SyncCounts, SyncResult
from castiel.ports import DocumentStore
from castiel.telemetry.outcomes import sync_finished

MAX_FAILURES = 100
"""Failed records kept on a result with their reasons; ``counts.failed`` counts every one."""


class Phase(StrEnum):
    """The phases of a sync, in the order a page goes through them."""

    RECEIVED = "received"
    RATE_CHECK = "rate_check"
    AUTH = "auth"
    FETCH = "fetch"
    TRANSFORM = "transform"
    DEDUP = "dedup"
    SHARD = "shard"
    CONFLICTS = "conflicts"
    SAVE = "save"
    COMPLETE = "complete"


def add_counts(total: SyncCounts, more: SyncCounts) -> None:
    """Add ``more`` into ``total``, count by count."""
    for name in SyncCounts.model_fields:
        setattr(total, name, getattr(total, name) + getattr(more, name))


class _Timing:
    __slots__ = ("milliseconds", "started_at")

    def __init__(self, started_at: datetime) -> None:
        self.started_at = started_at
        self.milliseconds = 0.0


class ResultRecorder:
    """One execution's ``sync-results`` document: phases timed, counts and failures added, written as it goes.

    ``timer`` measures durations (a monotonic counter); ``clock`` stamps times and paces the writes.
    """

    def __init__(
        self,
        store: DocumentStore,
        result: SyncResult,
        *,
        interval: float,
        clock: Clock = system_clock,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._store = store
        self._result = result
        self._interval = interval
        self._clock = clock
        self._timer = timer
        self._timings: dict[Phase, _Timing] = {}
        self._current: Phase | None = None
        self._saved_at: float | None = None
        self._new_phase = False

    @property
    def result(self) -> SyncResult:
        """The document as it stands."""
        phases = [
            PhaseTiming(name=phase.value, started_at=timing.started_at, duration_ms=round(timing.milliseconds, 3))
            for phase, timing in self._timings.items()
        ]
        current = None if self._current is None else self._current.value
        return self._result.model_copy(update={"phases": phases, "phase": current})

    @property
    def pages(self) -> int:
        """Pages saved so far."""
        return self._result.pages

    @property
    def counts(self) -> SyncCounts:
        """The counts so far (add to them with ``add``)."""
        return self._result.counts

    @asynccontextmanager
    async def phase(self, phase: Phase) -> AsyncIterator[None]:
        """Time the block as ``phase``; the document is written as the phase starts when it is new or a write is
        due."""
        timing = self._timings.get(phase)
        if timing is None:
            timing = self._timings[phase] = _Timing(now_utc(self._clock))
            self._new_phase = True
        self._current = phase
        await self.save()
        started = self._timer()
        try:
            yield
        finally:
            timing.milliseconds += (self._timer() - started) * 1000

    def add(self, counts: SyncCounts, failures: Sequence[RecordFailure] = (), *, pages: int = 0) -> None:
        """Add a page's counts and failed records (the first ``MAX_FAILURES`` are kept)."""
        add_counts(self._result.counts, counts)
        room = MAX_FAILURES - len(self._result.failures)
        if room > 0 and failures:
            self._result.failures.extend(failures[:room])
        self._result.pages += pages

    async def save(self, *, force: bool = False) -> None:
        """Write the document if forced, a phase started for the first time since the last write, or ``interval``
        seconds have passed since it."""
        now = self._clock()
        due = self._saved_at is None or now - self._saved_at >= self._interval
        if not (force or self._new_phase or due):
            return
        await self._store.upsert(SyncResult.container, self.result.to_doc())
        self._saved_at = now
        self._new_phase = False

    async def finish(self, status: str, error: str | None = None) -> SyncResult:
        """Record the outcome (``phase`` becomes ``complete``) and write the document; returns it."""
        self._timings.setdefault(Phase.COMPLETE, _Timing(now_utc(self._clock)))
        self._current = Phase.COMPLETE
        self._result = self._result.model_copy(
            update={"status": status, "error": error, "finished_at": now_utc(self._clock)}
        )
        await self.save(force=True)
        sync_finished("inbound", self.result)
        return self.result
