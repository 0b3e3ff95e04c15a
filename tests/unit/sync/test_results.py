"""The sync-results document as a sync runs: phases timed in the order they start, written when a phase starts for
the first time and otherwise at most once an interval, counts added up, the first 100 failed records kept."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock, now_utc
from castiel.models import RecordFailure, SyncCounts, SyncResult
from castiel.sync.results import MAX_FAILURES, Phase, ResultRecorder

PAGE_PHASES = (Phase.FETCH, Phase.TRANSFORM, Phase.DEDUP, Phase.SHARD, Phase.CONFLICTS, Phase.SAVE)


class CountingStore(SqliteDocumentStore):
    upserts: int = 0

    async def upsert(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        self.upserts += 1
        return await super().upsert(container, doc)


class Ticks:
    """A duration timer that moves 5 ms every time it is read."""

    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        self.value += 0.005
        return self.value


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    counting = CountingStore(tmp_path / "castiel.db")
    yield counting
    await counting.close()


def recorder(store: CountingStore, clock: ManualClock, interval: float = 60.0) -> ResultRecorder:
    result = SyncResult(
        id="r1", tenant_id="t1", connection_id="c1", status="running", started_at=now_utc(clock), correlation_id="x"
    )
    return ResultRecorder(store, result, interval=interval, clock=clock, timer=Ticks())


async def run_pages(recording: ResultRecorder, pages: int, clock: ManualClock, advance: float = 0.0) -> None:
    for _ in range(pages):
        for phase in PAGE_PHASES:
            async with recording.phase(phase):
                pass
        recording.add(SyncCounts(fetched=10, created=10), pages=1)
        clock.advance(advance)


async def stored(store: CountingStore) -> SyncResult:
    return SyncResult.model_validate(await store.read("sync-results", "r1", "t1"))


async def test_phases_are_written_as_they_first_start_then_once_an_interval_and_at_the_end(
    store: CountingStore,
) -> None:
    clock = ManualClock()
    recording = recorder(store, clock)
    for phase in (Phase.RECEIVED, Phase.RATE_CHECK, Phase.AUTH):
        async with recording.phase(phase):
            pass

    await run_pages(recording, 5, clock)
    assert store.upserts == 9  # one per phase, on its first start: the later pages wrote nothing
    midway = await stored(store)
    assert (midway.status, midway.phase) == ("running", "save")
    assert [phase.name for phase in midway.phases] == [phase.value for phase in Phase][:-1]

    await run_pages(recording, 3, clock, advance=61)
    assert store.upserts == 9 + 2  # the interval passed after each of the first two of these pages

    final = await recording.finish("succeeded")
    assert store.upserts == 12
    assert (await stored(store)).to_doc() == final.to_doc()
    assert (final.status, final.phase, final.pages) == ("succeeded", "complete", 8)
    assert (final.counts.fetched, final.counts.created) == (80, 80)
    fetch = next(phase for phase in final.phases if phase.name == "fetch")
    assert fetch.duration_ms == pytest.approx(8 * 5)  # eight pages, each 5 ms by the timer


async def test_an_interval_of_zero_writes_every_phase_of_every_page(store: CountingStore) -> None:
    recording = recorder(store, ManualClock(), interval=0)
    await run_pages(recording, 3, ManualClock())
    assert store.upserts == 3 * len(PAGE_PHASES)


async def test_every_failed_record_is_counted_and_the_first_hundred_kept(store: CountingStore) -> None:
    recording = recorder(store, ManualClock())
    for page in range(3):
        failures = [RecordFailure(entity_type="Account", external_id=f"{page}-{n}", reason="bad") for n in range(60)]
        recording.add(SyncCounts(fetched=60, failed=60), failures, pages=1)

    result = await recording.finish("succeeded")

    assert result.counts.failed == 180
    assert len(result.failures) == MAX_FAILURES
    assert [failure.external_id for failure in result.failures[58:62]] == ["0-58", "0-59", "1-0", "1-1"]
