"""``resolution.resolve`` on a real SQLite store: only an open conflict is decided; one already resolved — by its
rule, by a person, a reviewed duplicate candidate — is refused with when and how, and nothing changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock
from castiel.errors import PreconditionFailed
from castiel.models import Conflict, ConflictStatus, ConflictStrategy, DuplicateCandidate
from castiel.sync.resolution import Take, resolve
from tests.unit.sync.records import T0

SHARD = {
    "id": "s1",
    "tenantId": "t1",
    "shardType": "task",
    "data": {"title": "Ours"},
    "fieldVersions": {"title": "2025-01-01T00:00:00.000000Z"},
    "fieldSources": {"title": "local"},
    "updatedAt": "2025-01-01T00:00:00.000000Z",
    "deleted": False,
}


def field_conflict(status: ConflictStatus) -> dict[str, Any]:
    return Conflict(
        id="c1", tenant_id="t1", status=status, shard_id="s1", shard_type="task", connection_id="gh",
        field="title", local_value="Ours", remote_value="Theirs", rule=ConflictStrategy.LOCAL_WINS, kept="local",
        detected_at=T0, resolved_at=None if status is ConflictStatus.OPEN else T0,
    ).to_doc()  # fmt: skip


def candidate() -> dict[str, Any]:
    return DuplicateCandidate(
        id="d1", tenant_id="t1", shard_id="s1", candidate_shard_id="s2", shard_type="task", connection_id="gh",
        key="email", value="a@x.io", candidate_value="a@x.co", score=92.0, detected_at=T0,
    ).to_doc()  # fmt: skip


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteDocumentStore]:
    opened = SqliteDocumentStore(tmp_path / "castiel.db")
    await opened.create("shards", SHARD)
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_conflict_its_rule_resolved_is_refused_and_the_shard_stays(store: SqliteDocumentStore) -> None:
    stored = await store.create(Conflict.container, field_conflict(ConflictStatus.RESOLVED))

    with pytest.raises(PreconditionFailed, match=r"resolved by its rule local_wins at .* keeping the local value"):
        await resolve(store, stored, "remote")

    assert (await store.read("shards", "s1", "t1"))["data"] == {"title": "Ours"}
    assert (await store.read(Conflict.container, "c1", "t1"))["_etag"] == stored["_etag"]


async def test_a_second_decision_is_refused_whichever_side_it_takes(store: SqliteDocumentStore) -> None:
    clock = ManualClock((T0 + timedelta(hours=1)).timestamp())
    stored = await store.create(Conflict.container, field_conflict(ConflictStatus.OPEN))
    first = await resolve(store, stored, "remote", clock=clock)
    assert first.changed == {"title": "Theirs"}

    sides: tuple[Take, ...] = ("local", "remote")
    for take in sides:
        with pytest.raises(PreconditionFailed, match=r"resolved by hand at .* keeping the remote value"):
            await resolve(store, await store.read(Conflict.container, "c1", "t1"), take)

    assert (await store.read("shards", "s1", "t1"))["data"] == {"title": "Theirs"}


async def test_a_reviewed_duplicate_candidate_is_refused(store: SqliteDocumentStore) -> None:
    stored = await store.create(Conflict.container, candidate())
    await resolve(store, stored, "local")

    with pytest.raises(PreconditionFailed, match=r"is not open: reviewed at .* the shards kept apart"):
        await resolve(store, await store.read(Conflict.container, "d1", "t1"), "local")
