"""Inbound sync speed and memory: ``python -m benchmarks.sync [sizes]`` (default ``1000,20000,200000``).

The sandbox runs in its own process (``castiel sandbox serve``) and serves Salesforce Accounts over loopback HTTP in
pages of 2,000, as Salesforce's ``queryAll`` does. For each size, in a fresh data directory:

* prepare (its own process): a connection, its credential and pull task; then half the records already synced with
  an older ``AnnualRevenue`` (so the run updates them), and a tenth of those also edited locally on the same field
  (so the run meets a conflict there) — the read-before-write path and the merge are measured, not only inserts;
* pull (its own process, the one measured): ``InboundSync.run_now`` — the worker's own service — end to end: rate
  check, credentials, HTTP fetch, transform → dedup → shard → conflicts → save into the embedded SQLite store, a
  checkpoint per page, the sync-results document as it goes. ``records_per_s`` is Accounts over wall seconds;
  ``peak_rss_mb`` is the process's peak resident memory.

``core_vs_insert_ratio`` (its own process, at 20,000 records unless ``--core-size``): the pipeline core
(``PagePipeline``) over pages fetched beforehand and held in memory, against a bare batched upsert of the very
documents the core wrote (the same batches, into another tenant of the same store), timed in the same process.
Ratio = upsert seconds / core seconds.

Uses ``REDIS_URL`` when set, else starts its own server. Ends with the three ``RESULT`` lines of issue 13 (the speed
and memory of the largest size).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from adapters.engine import HttpEngine
from adapters.providers import build_registry
from adapters.records import Record
from benchmarks.adapter_fetch import BenchAuth
from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.backends.local_secrets import LocalSecretStore
from castiel.backends.redis_client import connect
from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import now_utc
from castiel.credentials.types import parse_credential
from castiel.credentials.vault import CredentialVault
from castiel.models import Connection, SyncTask
from castiel.ports import BatchOperation
from castiel.ratelimit.limiter import RateLimiter
from castiel.ratelimit.policy import RateLimitPolicy
from castiel.runtime import Runtime, settle_heap
from castiel.settings import load_settings
from castiel.sync.conflicts import ConflictSettings
from castiel.sync.dedup import DedupContext
from castiel.sync.pipeline import PagePipeline
from castiel.sync.pull import mapping_of
from castiel.sync.results import Phase

SIZES = (1_000, 20_000, 200_000)
CORE_SIZE = 20_000
TENANT, CONNECTION, BASELINE_TENANT = "bench", "sf", "baseline"
HIGH = 10_000_000
LIMITS = {"defaults": {"tenant": HIGH, "integrations": {"salesforce": HIGH}, "operations": {"fetch": HIGH}}}
LOCAL_EDIT_EVERY = 10


class Untimed:
    """A phase timer that times nothing (the core measurement times whole pages)."""

    @asynccontextmanager
    async def phase(self, phase: Phase) -> AsyncIterator[None]:
        yield


class RecordingStore(SqliteDocumentStore):
    """The SQLite store, keeping every batch it writes (the baseline writes the same documents)."""

    batches: list[tuple[str, list[BatchOperation]]]

    async def write_batch(
        self, container: str, partition_key: str, operations: Sequence[BatchOperation]
    ) -> list[str | None]:
        self.batches.append((container, list(operations)))
        return await super().write_batch(container, partition_key, operations)


def connection(url: str) -> Connection:
    return Connection(
        id=CONNECTION,
        tenant_id=TENANT,
        integration_id="salesforce",
        provider="salesforce",
        base_url=f"{url}/salesforce",
        entity_types=["Account"],
        credential_id="bench",
    )


def pipeline(store: SqliteDocumentStore, conn: Connection) -> PagePipeline:
    ctx = DedupContext(TENANT, conn.id, conn.dedup_strategy, mapping_of(conn), conn.fuzzy_threshold)
    return PagePipeline(store, ctx, ConflictSettings.of(conn))


def older(record: Record) -> Record:
    """The record as it was before its last change: another annual revenue."""
    data = {**record.data, "AnnualRevenue": (record.data.get("AnnualRevenue") or 0) + 1}
    return Record(record.entity_type, record.external_id, record.updated_at, record.deleted, data)


async def fetch_pages(url: str) -> list[list[Record]]:
    """Every Account page from the sandbox, held in memory (the core measurement's input)."""
    redis = connect(os.environ["REDIS_URL"])
    try:
        async with httpx.AsyncClient(timeout=60.0) as http:
            engine = HttpEngine(http, RateLimiter(redis, RateLimitPolicy(LIMITS)), BenchAuth())
            adapter = build_registry(engine).get(connection(url).provider)
            return [page.records async for page in adapter.fetch(connection(url), "Account")]
    finally:
        await redis.aclose()


async def preload(store: SqliteDocumentStore, conn: Connection, pages: list[list[Record]], records: int) -> None:
    """Half the records synced before, with an older revenue; a tenth of those edited locally since."""
    half = records // 2
    done, edited = 0, []
    core = pipeline(store, conn)
    for page in pages:
        taken = page[: max(0, half - done)]
        if not taken:
            break
        report = await core.save([older(record) for record in taken], Untimed())
        edited += [outcome.shard_id for outcome in report.outcomes[::LOCAL_EDIT_EVERY]]
        done += len(taken)
    for start in range(0, len(edited), 2000):
        shards = await store.read_many("shards", TENANT, edited[start : start + 2000])
        local = [
            BatchOperation.replace(
                {
                    **{key: value for key, value in doc.items() if not key.startswith("_")},
                    "data": {**doc["data"], "AnnualRevenue": -1},
                    "fieldSources": {**doc["fieldSources"], "AnnualRevenue": "local"},
                },
                if_match=doc["_etag"],
            )
            for doc in shards.values()
        ]
        await store.write_batch("shards", TENANT, local)


# ---------------------------------------------------------------- the children (each in its own process)


async def prepare(data_dir: Path, url: str, records: int) -> dict[str, Any]:
    conn = connection(url)
    store = SqliteDocumentStore(data_dir / DATABASE_FILE)
    secrets = LocalSecretStore(data_dir)
    redis = connect(os.environ["REDIS_URL"])
    try:
        async with httpx.AsyncClient() as http:
            vault = CredentialVault.wire(store, secrets, redis, http)
            await store.create(Connection.container, conn.model_copy(update={"credential_id": None}).to_doc())
            await vault.add(
                TENANT, CONNECTION, parse_credential("bearer_token", {"token": "bench"}), credential_id="bench"
            )
        task = SyncTask(id="pull", tenant_id=TENANT, integration_id="salesforce", connection_id=CONNECTION,
                        next_run_at=now_utc())  # fmt: skip
        await store.create(SyncTask.container, task.to_doc())
        await preload(store, conn, await fetch_pages(url), records)
    finally:
        await redis.aclose()
        await secrets.close()
        await store.close()
    return {}


async def pull() -> dict[str, Any]:
    runtime = await asyncio.to_thread(Runtime.build, load_settings())
    settle_heap()  # as the dev host and `castiel sync run` do once the runtime is built
    try:
        started = time.perf_counter()
        result = await runtime.inbound.run_now(TENANT, CONNECTION)
        seconds = time.perf_counter() - started
    finally:
        await runtime.aclose()
    if result.status != "succeeded":
        raise SystemExit(f"the pull {result.status}: {result.error}")
    return {
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "counts": result.counts.model_dump(),
        "phases": {phase.name: round(phase.duration_ms) for phase in result.phases},
    }


async def core(data_dir: Path, url: str, records: int) -> dict[str, Any]:
    conn = connection(url)
    pages = await fetch_pages(url)
    store = RecordingStore(data_dir / DATABASE_FILE)
    store.batches = []
    try:
        await preload(store, conn, pages, records)
        store.batches.clear()
        core_pipeline = pipeline(store, conn)
        started = time.perf_counter()
        for page in pages:
            await core_pipeline.save(page, Untimed())
        core_seconds = time.perf_counter() - started
        batches = [
            (container, [BatchOperation.upsert({**op.doc, "tenantId": BASELINE_TENANT}) for op in ops if op.doc])
            for container, ops in store.batches
        ]
        started = time.perf_counter()
        for container, operations in batches:
            await SqliteDocumentStore.write_batch(store, container, BASELINE_TENANT, operations)
        upsert_seconds = time.perf_counter() - started
    finally:
        await store.close()
    documents = sum(len(ops) for _, ops in batches)
    return {"core_seconds": core_seconds, "upsert_seconds": upsert_seconds, "documents": documents}


def child(mode: str, records: int, url: str, data_dir: Path) -> None:
    if mode == "prepare":
        outcome = asyncio.run(prepare(data_dir, url, records))
    elif mode == "pull":
        outcome = asyncio.run(pull())
    else:
        outcome = asyncio.run(core(data_dir, url, records))
    print(orjson.dumps(outcome).decode())


# ---------------------------------------------------------------- the parent


@contextmanager
def sandbox(records: int) -> Iterator[str]:
    """``castiel sandbox serve`` with ``records`` Accounts, in its own process; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "castiel.cli", "sandbox", "serve", "--port", "0", "--records", str(records)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("salesforce"):
                yield line.split()[1].removesuffix("/salesforce")
                return
        raise SystemExit("the sandbox did not start")
    finally:
        process.terminate()
        process.wait(30)


def run_child(mode: str, records: int, url: str, data_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks.sync", "--child", mode, str(records), url, str(data_dir)]
    completed = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    parsed: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return parsed


def measure(records: int, env: dict[str, str], mode: str = "pull") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="castiel-bench-") as tmp, sandbox(records) as url:
        data_dir = Path(tmp) / "data"
        child_env = {**env, "CASTIEL_DATA_DIR": str(data_dir)}
        if mode == "core":
            return run_child("core", records, url, data_dir, child_env)
        run_child("prepare", records, url, data_dir, child_env)
        return run_child("pull", records, url, data_dir, child_env)


def main(sizes: Sequence[int], core_size: int) -> None:
    embedded = None if os.environ.get("REDIS_URL") else EmbeddedRedis().start()
    env = {**os.environ, "RATE_LIMIT_OVERRIDES": json.dumps(LIMITS)}
    env["REDIS_URL"] = os.environ.get("REDIS_URL") or (embedded.url if embedded else "")
    try:
        pulls = {}
        for records in sizes:
            pulls[records] = outcome = measure(records, env)
            rate = records / outcome["seconds"]
            counts = outcome["counts"]
            print(f"{records:>7} records: {outcome['seconds']:.2f} s, {rate:,.0f} records/s, "
                  f"peak RSS {outcome['peak_rss_mb']:.0f} MB; created {counts['created']}, updated "
                  f"{counts['updated']}, conflicts {counts['conflicts']}; phases (ms) {outcome['phases']}")  # fmt: skip
        ratio = measure(core_size, env, "core")
        print(f"core on {core_size} pre-fetched records: {ratio['core_seconds']:.2f} s "
              f"({core_size / ratio['core_seconds']:,.0f} records/s); bare batched upsert of the same "
              f"{ratio['documents']} documents: {ratio['upsert_seconds']:.2f} s "
              f"({core_size / ratio['upsert_seconds']:,.0f} records/s: the store's own bound)")  # fmt: skip
    finally:
        if embedded is not None:
            embedded.stop()
    largest = max(sizes)
    print(f"RESULT records_per_s {largest / pulls[largest]['seconds']:.0f}")
    print(f"RESULT core_vs_insert_ratio {ratio['upsert_seconds'] / ratio['core_seconds']:.3f}")
    print(f"RESULT peak_rss_mb {pulls[largest]['peak_rss_mb']:.0f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))
    else:
        parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
        sizes = ",".join(map(str, SIZES))
        parser.add_argument("sizes", nargs="?", default=sizes, help="records per pull, comma-separated")
        parser.add_argument("--core-size", type=int, default=CORE_SIZE, help="records of the core-vs-upsert run")
        arguments = parser.parse_args()
        main([int(size) for size in arguments.sizes.split(",")], arguments.core_size)
