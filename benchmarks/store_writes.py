"""The embedded store alone at the inbound pull's shape: ``python -m benchmarks.store_writes [--records 200000]``.

What ``benchmarks.sync`` measures end to end, minus the sync pipeline: a pull of ``--records`` records in pages of
2,000, of which the first half were synced before (so half the pages update and half create, as in the sync
benchmark). Per page, the store calls the pipeline makes, in its order: ``read_many`` of the page's links, then of
the shards they name; ``write_batch`` of the shards (``replace`` under the etag read, or ``create``), of the
conflicts (an ``upsert`` for every tenth update) and of the links. Documents are shaped and sized like the
pipeline's (a 1.6 kB shard, a 0.3 kB link) and built outside the timed calls.

The floor, in the same process on its own file with the store's schema: the same pages through bare ``sqlite3`` on
the calling thread — one ``SELECT … IN`` per read, one ``executemany`` per kind of write and one transaction per
batch, in WAL mode with ``synchronous=FULL`` and SQLite's defaults otherwise (4 KiB pages, a 2 MiB cache, checkpoints
on commit) — the statements the store runs without its checks, its etags, its writer thread and its group commit.
Both start from the same preloaded half, written the same way.

Ends with ``RESULT store_records_per_s`` (records over the store calls' seconds), ``RESULT vs_floor_ratio`` (the
store's rate over the floor's) and ``RESULT write_ms_per_page`` / ``RESULT read_ms_per_page`` (medians).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from castiel.backends.sqlite_store import SCHEMA, SqliteDocumentStore
from castiel.models import stable_id
from castiel.ports import BatchOperation

RECORDS = 200_000
PAGE = 2_000
TENANT = "bench"
CONFLICT_EVERY = 10
SHARDS, CONFLICTS, LINKS = "shards", "conflicts", "external-ids"


def shard_id(number: int) -> str:
    return stable_id("shard", number)


def link_id(number: int) -> str:
    return stable_id("link", number)


def shard(number: int, revision: int) -> dict[str, Any]:
    """A Salesforce Account's shard, as the pipeline writes it (about 1.6 kB of JSON)."""
    stamp = f"2025-01-01T{revision:02d}:00:00.000000Z"
    data = {
        "Id": f"001SB{number:013d}",
        "SystemModstamp": stamp,
        "IsDeleted": False,
        "Name": f"Account {number}",
        "Industry": "Media",
        "AnnualRevenue": 1000 * number + revision,
        "BillingCity": "Berlin",
        "CreatedDate": "2025-01-01T00:00:00.000+0000",
        "LastModifiedDate": stamp,
    }
    fingerprint = stable_id("fingerprint", number, revision)
    return {
        "id": shard_id(number),
        "tenantId": TENANT,
        "shardType": "account",
        "data": data,
        "fieldVersions": dict.fromkeys(data, stamp),
        "fieldSources": dict.fromkeys(data, "sf"),
        "externalIds": {"sf": data["Id"]},
        "sync": {
            "sf": {
                "entityType": "Account",
                "pulledFingerprint": fingerprint,
                "pulledAt": stamp,
                "snapshot": dict(data),
                "deleted": False,
            }
        },
        "relationships": [],
        "updatedAt": stamp,
        "deleted": False,
        "matchKeys": {},
        "matchBlocks": {},
        "contentHash": fingerprint,
    }


def link(number: int, revision: int) -> dict[str, Any]:
    """The ``external-ids`` document of a record (about 0.3 kB)."""
    return {
        "id": link_id(number),
        "tenantId": TENANT,
        "connectionId": "sf",
        "entityType": "Account",
        "externalId": f"001SB{number:013d}",
        "shardId": shard_id(number),
        "deleted": False,
        "fingerprint": stable_id("fingerprint", number, revision),
    }


def conflict(number: int, revision: int) -> dict[str, Any]:
    """An open conflict on a shard's field (about 0.4 kB)."""
    return {
        "id": stable_id("conflict", number, revision),
        "tenantId": TENANT,
        "kind": "field",
        "status": "resolved",
        "shardId": shard_id(number),
        "shardType": "account",
        "connectionId": "sf",
        "field": "AnnualRevenue",
        "localValue": -1,
        "remoteValue": number,
        "rule": "local_wins",
        "kept": "local",
        "detectedAt": "2025-01-01T00:00:00.000000Z",
        "resolvedAt": "2025-01-01T00:00:00.000000Z",
    }


@dataclass(slots=True)
class PageWrites:
    """A page's batches: every operation is a create, an upsert, or a replace under the etag read."""

    shards: list[BatchOperation] = field(default_factory=list)
    conflicts: list[BatchOperation] = field(default_factory=list)
    links: list[BatchOperation] = field(default_factory=list)


def page_writes(
    numbers: range, revision: int, links: Mapping[str, Mapping[str, Any]], shards: Mapping[str, Mapping[str, Any]]
) -> PageWrites:
    writes = PageWrites()
    for number in numbers:
        stored_link = links.get(link_id(number))
        stored_shard = shards.get(shard_id(number))
        if stored_link is None or stored_shard is None:
            writes.shards.append(BatchOperation.create(shard(number, revision)))
            writes.links.append(BatchOperation.create(link(number, revision)))
            continue
        writes.shards.append(BatchOperation.replace(shard(number, revision), if_match=stored_shard["_etag"]))
        writes.links.append(BatchOperation.replace(link(number, revision), if_match=stored_link["_etag"]))
        if number % CONFLICT_EVERY == 0:
            writes.conflicts.append(BatchOperation.upsert(conflict(number, revision)))
    return writes


class PageStore(Protocol):
    """The two calls a page makes (the store's own, or the floor's)."""

    async def read_many(
        self, container: str, partition_key: str, doc_ids: Sequence[str]
    ) -> dict[str, dict[str, Any]]: ...

    async def write_batch(
        self, container: str, partition_key: str, operations: Sequence[BatchOperation]
    ) -> list[str | None]: ...


class Floor:
    """The store's statements on the calling thread with bare ``sqlite3``: no checks, no writer thread."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)

    async def read_many(self, container: str, partition_key: str, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(doc_ids), 500):
            chunk = doc_ids[start : start + 500]
            wanted = ", ".join("?" * len(chunk))
            sql = f"SELECT id, doc FROM documents WHERE container = ? AND pk = ? AND id IN ({wanted})"  # noqa: S608
            for doc_id, text in self._conn.execute(sql, (container, partition_key, *chunk)):
                found[doc_id] = orjson.loads(text)
        return found

    async def write_batch(
        self, container: str, partition_key: str, operations: Sequence[BatchOperation]
    ) -> list[str | None]:
        etag, ts = "0" * 32, int(time.time())
        inserts, updates = [], []
        for operation in operations:
            assert operation.doc is not None
            text = orjson.dumps({**operation.doc, "_etag": etag, "_ts": ts}).decode()
            if operation.kind == "replace":
                updates.append((text, etag, ts, container, partition_key, operation.doc["id"]))
            else:
                inserts.append((container, partition_key, operation.doc["id"], text, etag, ts, None))
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.executemany("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)", inserts)
        self._conn.executemany(
            "UPDATE documents SET doc = ?, etag = ?, ts = ? WHERE container = ? AND pk = ? AND id = ?", updates
        )
        self._conn.execute("COMMIT")
        return [etag] * len(operations)

    async def close(self) -> None:
        self._conn.close()


@dataclass(slots=True)
class Timings:
    """Seconds per page spent in reads and in writes."""

    reads: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(self.reads) + sum(self.writes)


async def pull(store: PageStore, records: int, revision: int) -> Timings:
    """Every page of ``records`` through ``store`` as the pipeline calls it; only the store calls are timed."""
    timings = Timings()
    for first in range(0, records, PAGE):
        numbers = range(first, min(first + PAGE, records))
        started = time.perf_counter()
        links = await store.read_many(LINKS, TENANT, [link_id(number) for number in numbers])
        shards = await store.read_many(SHARDS, TENANT, [doc["shardId"] for doc in links.values()])
        timings.reads.append(time.perf_counter() - started)
        writes = page_writes(numbers, revision, links, shards)
        started = time.perf_counter()
        for container, operations in ((SHARDS, writes.shards), (CONFLICTS, writes.conflicts), (LINKS, writes.links)):
            if operations:
                await store.write_batch(container, TENANT, operations)
        timings.writes.append(time.perf_counter() - started)
    return timings


async def measure(store: PageStore, records: int) -> Timings:
    await pull(store, records // 2, revision=0)
    return await pull(store, records, revision=1)


def milliseconds(seconds: Sequence[float]) -> str:
    return f"{statistics.median(seconds) * 1000:.1f}"


def report(name: str, records: int, timings: Timings) -> None:
    half = len(timings.writes) // 2
    print(
        f"{name}: {records / timings.seconds:,.0f} records/s over {timings.seconds:.2f} s in store calls; per page"
        f" (ms, median) read {milliseconds(timings.reads)}, write {milliseconds(timings.writes)} (updating pages"
        f" {milliseconds(timings.writes[:half])}, creating pages {milliseconds(timings.writes[half:])})",
        flush=True,
    )


async def main(records: int) -> None:
    with tempfile.TemporaryDirectory(prefix="castiel-store-") as tmp:
        store = SqliteDocumentStore(Path(tmp) / "store.db")
        try:
            ours = await measure(store, records)
        finally:
            await store.close()
        report("store", records, ours)
        floor_store = Floor(Path(tmp) / "floor.db")
        try:
            floor = await measure(floor_store, records)
        finally:
            await floor_store.close()
        report("floor (bare sqlite3)", records, floor)
    print(f"RESULT store_records_per_s {records / ours.seconds:.0f}")
    print(f"RESULT vs_floor_ratio {floor.seconds / ours.seconds:.3f}")
    print(f"RESULT write_ms_per_page {milliseconds(ours.writes)}")
    print(f"RESULT read_ms_per_page {milliseconds(ours.reads)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=RECORDS, help="records of the measured pull (half preloaded)")
    asyncio.run(main(parser.parse_args().records))
