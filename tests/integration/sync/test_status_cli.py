"""``castiel status`` names what each recent result was about: a pull its task, an outbound change its shard."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.models import SyncResult, TargetOutcome, TriggerKind
from tests.integration.cli.helpers import castiel

T0 = datetime(2025, 1, 3, tzinfo=UTC)


def seed(data_dir: Path, *results: SyncResult) -> None:
    async def write() -> None:
        store = SqliteDocumentStore(data_dir / DATABASE_FILE)
        try:
            for result in results:
                await store.create(SyncResult.container, result.to_doc())
        finally:
            await store.close()

    asyncio.run(write())


def result(minute: int, **fields: object) -> SyncResult:
    started = T0 + timedelta(minutes=minute)
    doc = {"id": f"r{minute}", "tenantId": "acme", "connectionId": "gh", "status": "succeeded", "startedAt": started,
           "correlationId": f"c{minute}", **fields}  # fmt: skip
    return SyncResult.model_validate(doc)


def test_status_names_the_task_of_a_pull_and_the_shard_of_an_outbound_change(data_dir: Path) -> None:
    castiel("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh")  # creates the data dir
    pushed = TargetOutcome(connection_id="nt", status="pushed")
    seed(
        data_dir,
        result(0, taskId="pull-gh", trigger=TriggerKind.SCHEDULE),
        result(1, shardId="shard-1", trigger=TriggerKind.WEBHOOK, targets=[pushed]),
        result(2, status="skipped", trigger=TriggerKind.WEBHOOK, error="ignored: the connection only receives"),
    )

    lines = [line for line in castiel("status").splitlines() if line.startswith("result ")]

    assert lines == [
        "result 2025-01-03T00:02:00.000000Z skipped shard=- error=ignored: the connection only receives",
        "result 2025-01-03T00:01:00.000000Z succeeded shard=shard-1 error=-",
        "result 2025-01-03T00:00:00.000000Z succeeded task=pull-gh error=-",
    ]
