"""The registration cache: served while confirmed within 10 s, dropped on removal here, and re-read or re-checked for
changes made elsewhere.

"Elsewhere" is a second ``WebhookRegistrations`` on a second store object over the same SQLite file: the CLI, or
another instance of the app, seen from the receiver's process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock
from castiel.errors import RetryableError
from castiel.models import WebhookRegistration
from castiel.ports import DocumentStore, Query, QueryPage
from castiel.webhooks.registrations import (
    ABSENT_TTL_SECONDS,
    REVALIDATE_SECONDS,
    WebhookRegistrations,
)

from .conftest import NOW, registration


class CountingStore(SqliteDocumentStore):
    """The real SQLite store, counting queries (and refusing them when ``down``)."""

    def __init__(self, path: Path, clock: ManualClock) -> None:
        super().__init__(path, clock=clock)
        self.queries = 0
        self.down = False

    async def query(self, container: str, query: Query) -> QueryPage:
        self.queries += 1
        if self.down:
            raise RetryableError("store unreachable")
        return await super().query(container, query)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
async def stores(tmp_path: Path, clock: ManualClock) -> AsyncIterator[tuple[CountingStore, DocumentStore]]:
    """The receiver's store and another process's store, on one database file."""
    ours = CountingStore(tmp_path / "store.db", clock)
    theirs = SqliteDocumentStore(tmp_path / "store.db", clock=clock)
    yield ours, theirs
    await ours.close()
    await theirs.close()


async def _cached_elsewhere(
    stores: tuple[CountingStore, DocumentStore], clock: ManualClock, **changes: Any
) -> tuple[WebhookRegistrations, WebhookRegistrations, WebhookRegistration]:
    ours, theirs = stores
    receiver_side, cli_side = WebhookRegistrations(ours, clock=clock), WebhookRegistrations(theirs, clock=clock)
    added = await cli_side.add(registration("github", **changes))
    assert await receiver_side.find(added.id) == added
    return receiver_side, cli_side, added


async def test_a_found_registration_is_served_from_the_cache_while_recently_confirmed(
    stores: tuple[CountingStore, DocumentStore], clock: ManualClock
) -> None:
    receiver_side, _, added = await _cached_elsewhere(stores, clock)
    before = stores[0].queries
    clock.advance(REVALIDATE_SECONDS / 2 - 1)
    assert await receiver_side.find(added.id) == added
    assert stores[0].queries == before


async def test_an_unknown_id_is_remembered_briefly(
    stores: tuple[CountingStore, DocumentStore], clock: ManualClock
) -> None:
    receiver_side = WebhookRegistrations(stores[0], clock=clock)
    assert await receiver_side.find("nope") is None
    assert await receiver_side.find("nope") is None
    assert stores[0].queries == 1
    added = await WebhookRegistrations(stores[1], clock=clock).add(registration("slack"))
    clock.advance(ABSENT_TTL_SECONDS + 0.1)
    assert await receiver_side.find(added.id) == added


async def test_a_removal_here_is_seen_at_once(stores: tuple[CountingStore, DocumentStore], clock: ManualClock) -> None:
    receiver_side = WebhookRegistrations(stores[0], clock=clock)
    added = await receiver_side.add(registration("github"))
    assert await receiver_side.find(added.id) == added
    await receiver_side.remove(added.id)
    assert await receiver_side.find(added.id) is None


async def test_a_removal_by_another_process_is_seen_by_the_first_lookup_after_a_quiet_spell(
    stores: tuple[CountingStore, DocumentStore], clock: ManualClock
) -> None:
    receiver_side, cli_side, added = await _cached_elsewhere(stores, clock)
    await cli_side.remove(added.id)
    assert await receiver_side.find(added.id) == added  # not yet told: confirmed less than the interval ago
    clock.advance(REVALIDATE_SECONDS)
    assert await receiver_side.find(added.id) is None  # no traffic since: this lookup reads the store itself


async def test_a_change_by_another_process_is_seen_by_the_first_lookup_after_a_quiet_spell(
    stores: tuple[CountingStore, DocumentStore], clock: ManualClock
) -> None:
    receiver_side, cli_side, added = await _cached_elsewhere(stores, clock)
    disabled = await cli_side.save(added.model_copy(update={"status": "disabled"}))
    clock.advance(REVALIDATE_SECONDS)
    found = await receiver_side.find(added.id)
    assert found is not None
    assert (found.status, found.etag) == ("disabled", disabled.etag)


async def test_under_steady_traffic_a_background_check_sees_a_removal_and_lookups_never_wait(
    stores: tuple[CountingStore, DocumentStore], clock: ManualClock
) -> None:
    receiver_side, cli_side, added = await _cached_elsewhere(stores, clock)
    await cli_side.remove(added.id)
    clock.advance(REVALIDATE_SECONDS / 2)
    before = stores[0].queries
    assert await receiver_side.find(added.id) == added  # answered from the cache; the check starts behind it
    assert stores[0].queries == before
    await receiver_side.drain()
    assert await receiver_side.find(added.id) is None


async def test_an_unchanged_registration_confirmed_in_the_background_stays_cached(
    stores: tuple[CountingStore, DocumentStore], clock: ManualClock
) -> None:
    receiver_side, _, added = await _cached_elsewhere(stores, clock)
    clock.advance(REVALIDATE_SECONDS / 2)
    await receiver_side.find(added.id)
    await receiver_side.drain()
    checked = stores[0].queries
    clock.advance(REVALIDATE_SECONDS / 2 + 1)  # past the interval since it was cached, not since it was confirmed
    assert await receiver_side.find(added.id) == added
    assert stores[0].queries == checked  # answered from the cache (the next background check has not run yet)


async def test_with_the_store_out_of_reach_the_cache_keeps_serving_and_tries_again(
    stores: tuple[CountingStore, DocumentStore], clock: ManualClock
) -> None:
    receiver_side, cli_side, added = await _cached_elsewhere(stores, clock)
    await cli_side.remove(added.id)
    stores[0].down = True
    clock.advance(REVALIDATE_SECONDS)
    assert await receiver_side.find(added.id) == added
    await receiver_side.drain()
    assert await receiver_side.find(added.id) == added
    stores[0].down = False
    assert await receiver_side.find(added.id) is None
