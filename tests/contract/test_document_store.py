"""The DocumentStore contract, run against every backend: SQLite; the Cosmos store's real SDK client against the
in-process Cosmos REST account of ``cosmos_wire`` (always); and a real Cosmos DB when COSMOS_ENDPOINT is set.

Every test writes under its own run id (in tenant ids and a ``run`` field, filtered on by every query), so the
suite can share a real Cosmos database with earlier runs. Cases that move a clock run where the clock is ours: SQLite
and the in-process account (whose clock stamps ``_ts`` and expires documents).
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any

import pytest

from castiel.backends.cosmos import CosmosDocumentStore
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.clock import ManualClock
from castiel.errors import AlreadyExists, NotFound, PreconditionFailed
from castiel.models import format_utc
from castiel.ports import BatchOperation, DocumentStore, Filter, Query, SortOrder
from castiel.settings import load_settings
from tests.contract.cosmos_wire import ENDPOINT, CosmosAccount

SHARDS = "shards"
AUDIT = "webhook-audit"  # partitioned by registrationId, not tenantId

# Every ordering these tests use, so a Cosmos container gets the composite indexes they need.
CONTRACT_ORDERINGS: dict[str, tuple[tuple[tuple[str, SortOrder], ...], ...]] = {
    SHARDS: (
        (("rank", "asc"),),
        (("nested.level", "asc"),),
        (("group", "asc"), ("rank", "desc")),
        (("at", "asc"),),
    ),
}
COSMOS_SKIP = "COSMOS_ENDPOINT not set: Cosmos DB contract skipped"
COSMOS_BATCH_LIMIT = 100  # operations per Cosmos DB transactional batch


@dataclass
class Harness:
    """A store under test and the means to write isolated documents into it."""

    store: DocumentStore
    backend: str
    run: str
    clock: ManualClock | None
    path: Path | None

    def tenant(self, name: str) -> str:
        """A tenant id private to this test run."""
        return f"{name}-{self.run}"

    def doc(self, doc_id: str, tenant: str = "t1", **fields: Any) -> dict[str, Any]:
        """A shard document in ``tenant`` tagged with the run id."""
        doc = {"id": doc_id, "tenantId": self.tenant(tenant), "run": self.run, **fields}
        if self.backend == "cosmos" and "ttl" not in doc:
            doc["ttl"] = 24 * 3600  # the shared Cosmos database cleans up after the suite
        return doc

    def query(self, *filters: Filter, tenant: str | None = None, **options: Any) -> Query:
        """A query scoped to this run's documents."""
        partition = None if tenant is None else self.tenant(tenant)
        return Query(filters=(Filter("run", "==", self.run), *filters), partition_key=partition, **options)

    def manual_clock(self) -> ManualClock:
        """The store's clock; skips the test on backends whose time cannot be moved."""
        if self.clock is None:
            pytest.skip(f"moves the store's clock: SQLite only, not {self.backend}")
        return self.clock

    def sqlite_path(self) -> Path:
        """The SQLite file; skips the test on other backends."""
        if self.path is None:
            pytest.skip(f"inspects the SQLite file: not {self.backend}")
        return self.path


@pytest.fixture(params=["sqlite", "cosmos-wire", pytest.param("cosmos", marks=pytest.mark.azure)])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    run = uuid.uuid4().hex[:12]
    if request.param == "sqlite":
        clock = ManualClock()
        path = tmp_path / "store.db"
        sqlite_store = SqliteDocumentStore(path, clock=clock)
        harness = Harness(sqlite_store, "sqlite", run, clock, path)
    elif request.param == "cosmos-wire":
        clock = ManualClock()
        account = CosmosAccount(clock)
        wired = CosmosDocumentStore(ENDPOINT, "castiel", key="a2V5", orderings=CONTRACT_ORDERINGS, transport=account)
        harness = Harness(wired, "cosmos", run, clock, None)
    else:
        settings = load_settings()
        if settings.cosmos_endpoint is None:
            pytest.skip(COSMOS_SKIP)
        if not settings.cosmos_key:
            pytest.skip("the contract creates its own database and containers: COSMOS_KEY (RBAC cannot create them)")
        cosmos_store = CosmosDocumentStore(
            settings.cosmos_endpoint,
            f"{settings.cosmos_database}-contract",
            key=settings.cosmos_key,
            orderings=CONTRACT_ORDERINGS,
        )
        harness = Harness(cosmos_store, "cosmos", run, None, None)
    try:
        yield harness
    finally:
        await harness.store.close()


def ids(items: Sequence[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


async def all_pages(store: DocumentStore, container: str, query: Query) -> list[list[dict[str, Any]]]:
    pages = []
    while True:
        page = await store.query(container, query)
        pages.append(page.items)
        if page.continuation is None:
            return pages
        query = Query(query.filters, query.partition_key, query.order_by, query.limit, page.continuation)


# ---------------------------------------------------------------- create / read / upsert / replace / delete


async def test_create_returns_the_document_with_etag_and_ts_and_read_returns_the_same(h: Harness) -> None:
    created = await h.store.create(SHARDS, h.doc("a", name="Ada", nested={"level": 1}))

    assert created["name"] == "Ada"
    assert created["nested"] == {"level": 1}
    assert isinstance(created["_etag"], str)
    assert len(created["_etag"]) > 0
    assert isinstance(created["_ts"], int)
    assert await h.store.read(SHARDS, "a", h.tenant("t1")) == created


async def test_create_of_an_existing_id_raises_already_exists_and_keeps_the_original(h: Harness) -> None:
    original = await h.store.create(SHARDS, h.doc("a", name="first"))

    with pytest.raises(AlreadyExists):
        await h.store.create(SHARDS, h.doc("a", name="second"))
    assert await h.store.read(SHARDS, "a", h.tenant("t1")) == original


async def test_create_many_creates_each_document_and_refuses_only_those_already_there(h: Harness) -> None:
    original = await h.store.create(SHARDS, h.doc("b", name="first"))

    outcomes = await h.store.create_many(
        SHARDS, [h.doc("a", name="Ada"), h.doc("b", name="second"), h.doc("c", "t2"), h.doc("a", name="again")]
    )

    assert isinstance(outcomes[1], AlreadyExists)
    assert outcomes[2] is None
    # The same key twice in one batch: exactly one is created (Cosmos DB runs the creates concurrently).
    assert sorted(outcome is None for outcome in (outcomes[0], outcomes[3])) == [False, True]
    expected = "Ada" if outcomes[0] is None else "again"
    assert (await h.store.read(SHARDS, "a", h.tenant("t1")))["name"] == expected
    assert await h.store.read(SHARDS, "b", h.tenant("t1")) == original
    assert (await h.store.read(SHARDS, "c", h.tenant("t2")))["run"] == h.run
    assert await h.store.create_many(SHARDS, []) == []


async def test_create_many_with_an_invalid_document_raises_value_error_and_writes_nothing(h: Harness) -> None:
    with pytest.raises(ValueError, match="tenantId"):
        await h.store.create_many(SHARDS, [h.doc("a"), {"id": "b", "run": h.run}])

    with pytest.raises(NotFound):
        await h.store.read(SHARDS, "a", h.tenant("t1"))


async def test_upsert_inserts_then_overwrites_with_a_new_etag(h: Harness) -> None:
    inserted = await h.store.upsert(SHARDS, h.doc("a", name="first", extra=True))
    # Writing back a document as read (store fields included) must not keep its old etag.
    overwritten = await h.store.upsert(SHARDS, {**inserted, "name": "second", "extra": None})

    assert overwritten["_etag"] != inserted["_etag"]
    stored = await h.store.read(SHARDS, "a", h.tenant("t1"))
    assert stored["name"] == "second"
    assert stored["extra"] is None
    assert stored["_etag"] == overwritten["_etag"]


async def test_replace_overwrites_an_existing_document(h: Harness) -> None:
    created = await h.store.create(SHARDS, h.doc("a", name="first", dropped="x"))

    replaced = await h.store.replace(SHARDS, h.doc("a", name="second"))

    assert replaced["_etag"] != created["_etag"]
    stored = await h.store.read(SHARDS, "a", h.tenant("t1"))
    assert stored["name"] == "second"
    assert "dropped" not in stored


@pytest.mark.parametrize("if_match", [None, "stale-etag"])
async def test_replace_of_a_missing_document_raises_not_found(h: Harness, if_match: str | None) -> None:
    with pytest.raises(NotFound):
        await h.store.replace(SHARDS, h.doc("missing"), if_match=if_match)


@pytest.mark.parametrize("if_match", [None, "stale-etag"])
async def test_delete_of_a_missing_document_raises_not_found(h: Harness, if_match: str | None) -> None:
    with pytest.raises(NotFound):
        await h.store.delete(SHARDS, "missing", h.tenant("t1"), if_match=if_match)


async def test_delete_removes_the_document(h: Harness) -> None:
    created = await h.store.create(SHARDS, h.doc("a"))

    await h.store.delete(SHARDS, "a", h.tenant("t1"), if_match=created["_etag"])

    with pytest.raises(NotFound):
        await h.store.read(SHARDS, "a", h.tenant("t1"))
    assert await h.store.count(SHARDS, h.query()) == 0


async def test_read_of_a_missing_id_or_another_partition_raises_not_found(h: Harness) -> None:
    await h.store.create(SHARDS, h.doc("a", tenant="t1"))

    with pytest.raises(NotFound):
        await h.store.read(SHARDS, "b", h.tenant("t1"))
    with pytest.raises(NotFound):
        await h.store.read(SHARDS, "a", h.tenant("t2"))


async def test_the_same_id_in_two_partitions_is_two_documents(h: Harness) -> None:
    await h.store.create(SHARDS, h.doc("a", tenant="t1", name="one"))
    await h.store.create(SHARDS, h.doc("a", tenant="t2", name="two"))

    await h.store.delete(SHARDS, "a", h.tenant("t1"))

    assert (await h.store.read(SHARDS, "a", h.tenant("t2")))["name"] == "two"


async def test_a_container_partitioned_by_another_field_keys_on_that_field(h: Harness) -> None:
    doc = {"id": "d1", "registrationId": f"reg-{h.run}", "outcome": "accepted", "ttl": 3600}

    await h.store.create(AUDIT, doc)

    assert (await h.store.read(AUDIT, "d1", f"reg-{h.run}"))["outcome"] == "accepted"
    with pytest.raises(ValueError, match="registrationId"):
        await h.store.create(AUDIT, {"id": "d2", "tenantId": "t", "ttl": 3600})


# ---------------------------------------------------------------- etags


LOSING_WRITES: dict[str, Callable[[Harness, str], Awaitable[object]]] = {
    "replace": lambda h, etag: h.store.replace(SHARDS, h.doc("a", version=2), if_match=etag),
    "delete": lambda h, etag: h.store.delete(SHARDS, "a", h.tenant("t1"), if_match=etag),
}


@pytest.mark.parametrize("loser", LOSING_WRITES)
async def test_of_two_writers_holding_the_same_etag_the_second_loses(h: Harness, loser: str) -> None:
    original = await h.store.create(SHARDS, h.doc("a", version=0))

    winner = await h.store.replace(SHARDS, h.doc("a", version=1), if_match=original["_etag"])
    with pytest.raises(PreconditionFailed):
        await LOSING_WRITES[loser](h, original["_etag"])

    stored = await h.store.read(SHARDS, "a", h.tenant("t1"))
    assert stored["version"] == 1
    assert stored["_etag"] == winner["_etag"]


async def test_concurrent_conditional_replaces_let_exactly_one_win(h: Harness) -> None:
    original = await h.store.create(SHARDS, h.doc("a", version=0))

    outcomes = await asyncio.gather(
        *(h.store.replace(SHARDS, h.doc("a", version=n), if_match=original["_etag"]) for n in range(1, 11)),
        return_exceptions=True,
    )

    winners = [outcome for outcome in outcomes if isinstance(outcome, dict)]
    assert len(winners) == 1
    assert all(isinstance(outcome, PreconditionFailed) for outcome in outcomes if outcome is not winners[0])
    assert (await h.store.read(SHARDS, "a", h.tenant("t1")))["version"] == winners[0]["version"]


# ---------------------------------------------------------------- batches


async def test_write_batch_applies_every_kind_of_operation_in_order(h: Harness) -> None:
    kept = await h.store.create(SHARDS, h.doc("kept", version=0))
    await h.store.create(SHARDS, h.doc("gone"))

    etags = await h.store.write_batch(
        SHARDS,
        h.tenant("t1"),
        [
            BatchOperation.create(h.doc("new", version=1)),
            BatchOperation.upsert(h.doc("new", version=2)),  # sees the create before it
            BatchOperation.replace(h.doc("kept", version=3), if_match=kept["_etag"]),
            BatchOperation.delete("gone"),
            BatchOperation.upsert(h.doc("fresh")),
        ],
    )

    stored = await h.store.read_many(SHARDS, h.tenant("t1"), ["new", "kept", "gone", "fresh"])
    assert sorted(stored) == ["fresh", "kept", "new"]
    assert (stored["new"]["version"], stored["kept"]["version"]) == (2, 3)
    assert etags == [etags[0], stored["new"]["_etag"], stored["kept"]["_etag"], None, stored["fresh"]["_etag"]]
    assert etags[0] != etags[1]
    assert await h.store.write_batch(SHARDS, h.tenant("t1"), []) == []


async def test_a_batch_of_every_kind_on_distinct_documents_lands_whole(h: Harness) -> None:
    kept = await h.store.create(SHARDS, h.doc("kept", version=0))
    await h.store.create(SHARDS, h.doc("overwritten", version=0))
    await h.store.create(SHARDS, h.doc("gone"))
    await h.store.create(SHARDS, h.doc("dropped"))
    dropped = await h.store.read(SHARDS, "dropped", h.tenant("t1"))

    etags = await h.store.write_batch(
        SHARDS,
        h.tenant("t1"),
        [
            BatchOperation.replace(h.doc("kept", version=1), if_match=kept["_etag"]),
            BatchOperation.create(h.doc("new", version=1)),
            BatchOperation.delete("gone"),
            BatchOperation.upsert(h.doc("overwritten", version=1)),
            BatchOperation.delete("dropped", if_match=dropped["_etag"]),
            BatchOperation.upsert(h.doc("fresh", version=1)),
        ],
    )

    names = ["kept", "new", "gone", "overwritten", "dropped", "fresh"]
    stored = await h.store.read_many(SHARDS, h.tenant("t1"), names)
    assert sorted(stored) == ["fresh", "kept", "new", "overwritten"]
    assert {name: doc["version"] for name, doc in stored.items()} == dict.fromkeys(stored, 1)
    assert etags == [stored[name]["_etag"] if name in stored else None for name in names]


async def test_a_batch_with_several_failing_operations_reports_the_first_in_order(h: Harness) -> None:
    there = await h.store.create(SHARDS, h.doc("there", version=0))
    await h.store.create(SHARDS, h.doc("taken"))

    with pytest.raises(PreconditionFailed, match="batch operation 1"):
        await h.store.write_batch(
            SHARDS,
            h.tenant("t1"),
            [
                BatchOperation.create(h.doc("before")),
                BatchOperation.replace(h.doc("there", version=1), if_match="stale-etag"),
                BatchOperation.upsert(h.doc("between")),
                BatchOperation.create(h.doc("taken")),  # would fail too, but comes later
            ],
        )

    assert await h.store.read_many(SHARDS, h.tenant("t1"), ["before", "between"]) == {}
    assert await h.store.read(SHARDS, "there", h.tenant("t1")) == there


FAILING_BATCH_OPERATIONS: dict[str, tuple[Callable[[Harness, str], BatchOperation], type[Exception]]] = {
    "create-existing": (lambda h, etag: BatchOperation.create(h.doc("there")), AlreadyExists),
    "replace-stale": (
        lambda h, etag: BatchOperation.replace(h.doc("there"), if_match="stale-etag"),
        PreconditionFailed,
    ),
    "replace-missing": (lambda h, etag: BatchOperation.replace(h.doc("absent")), NotFound),
    "delete-stale": (lambda h, etag: BatchOperation.delete("there", if_match="stale-etag"), PreconditionFailed),
    "delete-missing": (lambda h, etag: BatchOperation.delete("absent", if_match=etag), NotFound),
}


@pytest.mark.parametrize("failing", FAILING_BATCH_OPERATIONS)
async def test_a_failing_operation_fails_the_batch_and_nothing_of_it_is_written(h: Harness, failing: str) -> None:
    there = await h.store.create(SHARDS, h.doc("there", version=0))
    make, error = FAILING_BATCH_OPERATIONS[failing]

    with pytest.raises(error, match="batch operation 2"):
        await h.store.write_batch(
            SHARDS,
            h.tenant("t1"),
            [
                BatchOperation.upsert(h.doc("before")),
                BatchOperation.replace(h.doc("there", version=1), if_match=there["_etag"]),
                make(h, there["_etag"]),
                BatchOperation.upsert(h.doc("after")),
            ],
        )

    assert await h.store.read_many(SHARDS, h.tenant("t1"), ["before", "after", "absent"]) == {}
    assert await h.store.read(SHARDS, "there", h.tenant("t1")) == there


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        (BatchOperation.upsert({"id": "x", "tenantId": "another-tenant"}), "not in the batch's partition"),
        (BatchOperation.upsert({"id": "x"}), "tenantId"),
        (BatchOperation.create({"id": "a/b", "tenantId": "whatever"}), "without"),
        (BatchOperation.delete(""), "non-empty"),
        (BatchOperation("replace"), "needs a document"),
    ],
)
async def test_an_invalid_batch_operation_raises_value_error_and_writes_nothing(
    h: Harness, operation: BatchOperation, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await h.store.write_batch(SHARDS, h.tenant("t1"), [BatchOperation.upsert(h.doc("first")), operation])

    assert await h.store.read_many(SHARDS, h.tenant("t1"), ["first"]) == {}


async def test_a_batch_longer_than_one_cosmos_transaction_lands_whole(h: Harness) -> None:
    docs = [h.doc(f"doc-{n:03d}", n=n, text="x" * 2_000) for n in range(250)]

    etags = await h.store.write_batch(SHARDS, h.tenant("t1"), [BatchOperation.upsert(doc) for doc in docs])

    stored = await h.store.read_many(SHARDS, h.tenant("t1"), [doc["id"] for doc in docs])
    assert [stored[doc["id"]]["n"] for doc in docs] == list(range(250))
    assert etags == [stored[doc["id"]]["_etag"] for doc in docs]


async def test_a_failure_past_the_first_cosmos_transaction_keeps_only_what_the_backend_committed(h: Harness) -> None:
    await h.store.create(SHARDS, h.doc("doc-150"))
    operations = [BatchOperation.create(h.doc(f"doc-{n:03d}")) for n in range(200)]

    with pytest.raises(AlreadyExists, match="batch operation 150"):
        await h.store.write_batch(SHARDS, h.tenant("t1"), operations)

    # SQLite commits a batch in one transaction; Cosmos DB in transactions of 100, so the first one stays.
    committed = 0 if h.backend == "sqlite" else COSMOS_BATCH_LIMIT
    stored = await h.store.read_many(SHARDS, h.tenant("t1"), [f"doc-{n:03d}" for n in range(200)])
    assert sorted(stored) == [f"doc-{n:03d}" for n in range(committed)] + ["doc-150"]


async def test_read_many_returns_the_partition_s_documents_with_those_ids(h: Harness) -> None:
    await h.store.write_batch(SHARDS, h.tenant("t1"), [BatchOperation.upsert(h.doc(f"d{n}", n=n)) for n in range(5)])
    await h.store.create(SHARDS, h.doc("d9", "t2"))

    found = await h.store.read_many(SHARDS, h.tenant("t1"), ["d3", "d1", "d3", "missing", "d9"])

    assert sorted(found) == ["d1", "d3"]
    assert found["d1"] == await h.store.read(SHARDS, "d1", h.tenant("t1"))
    assert await h.store.read_many(SHARDS, h.tenant("t1"), []) == {}
    with pytest.raises(ValueError, match="without"):
        await h.store.read_many(SHARDS, h.tenant("t1"), ["d1", "a/b"])


async def test_read_many_reads_thousands_of_ids(h: Harness) -> None:
    docs = [h.doc(f"doc-{n:04d}", n=n) for n in range(1_200)]
    for start in range(0, len(docs), 400):
        await h.store.write_batch(
            SHARDS, h.tenant("t1"), [BatchOperation.upsert(doc) for doc in docs[start : start + 400]]
        )

    found = await h.store.read_many(SHARDS, h.tenant("t1"), [doc["id"] for doc in reversed(docs)] + ["nope"])

    assert len(found) == 1_200
    assert found["doc-1199"]["n"] == 1_199


async def test_read_many_finds_any_number_of_ids_whatever_their_characters(h: Harness) -> None:
    names = [f'd{n}-"quoted" ünï {n}' for n in range(1200)]
    await h.store.write_batch(SHARDS, h.tenant("t1"), [BatchOperation.upsert(h.doc(name)) for name in names[::2]])

    found = await h.store.read_many(SHARDS, h.tenant("t1"), [*names, *names[:10]])

    assert sorted(found) == sorted(names[::2])
    assert all(found[name]["id"] == name for name in found)


async def test_read_many_skips_expired_documents(h: Harness) -> None:
    clock = h.manual_clock()
    await h.store.write_batch(
        SHARDS, h.tenant("t1"), [BatchOperation.upsert(h.doc("short", ttl=5)), BatchOperation.upsert(h.doc("long"))]
    )
    clock.advance(5)

    assert list(await h.store.read_many(SHARDS, h.tenant("t1"), ["short", "long"])) == ["long"]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("container", "doc", "message"),
    [
        ("no-such-container", {"id": "a", "tenantId": "t"}, "unknown container"),
        (SHARDS, {"tenantId": "t"}, "needs an 'id'"),
        (SHARDS, {"id": "a"}, "tenantId"),
        (SHARDS, {"id": "", "tenantId": "t"}, "non-empty"),
        (SHARDS, {"id": "a/b", "tenantId": "t"}, "without"),
        (SHARDS, {"id": "a", "tenantId": 7}, "partition key"),
        (SHARDS, {"id": "a", "tenantId": "t", "ttl": 0}, "ttl"),
        (SHARDS, {"id": "a", "tenantId": "t", "ttl": True}, "ttl"),
    ],
)
async def test_invalid_documents_raise_value_error(
    h: Harness, container: str, doc: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await h.store.upsert(container, doc)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (Query(filters=(Filter("a;drop", "==", 1),)), "invalid field path"),
        (Query(filters=(Filter("a..b", "==", 1),)), "invalid field path"),
        (Query(filters=(Filter("a", "in", "not-a-tuple"),)), "takes a tuple"),
        (Query(filters=(Filter("a", "==", ("tuple",)),)), "only 'in'"),
        (Query(filters=(Filter("a", "<", None),)), "null has no order"),
        (Query(filters=(Filter("a", "==", [1]),)), "JSON scalar"),  # type: ignore[arg-type]
        (Query(order_by=(("a')", "asc"),)), "invalid field path"),
        (Query(order_by=(("a", "up"),)), "sort direction"),  # type: ignore[arg-type]
        (Query(limit=0), "limit"),
        (Query(continuation="not a token"), "malformed continuation"),
    ],
)
async def test_invalid_queries_raise_value_error(h: Harness, query: Query, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await h.store.query(SHARDS, query)


# ---------------------------------------------------------------- TTL (SQLite: the clock moves)


async def test_a_document_expires_ttl_seconds_after_its_last_write(h: Harness) -> None:
    clock = h.manual_clock()
    await h.store.create(SHARDS, h.doc("short", ttl=10))
    await h.store.create(SHARDS, h.doc("forever", ttl=-1))
    await h.store.create(SHARDS, h.doc("plain"))

    clock.advance(9.5)
    assert (await h.store.read(SHARDS, "short", h.tenant("t1")))["ttl"] == 10
    clock.advance(0.5)

    with pytest.raises(NotFound):
        await h.store.read(SHARDS, "short", h.tenant("t1"))
    assert sorted(ids((await h.store.query(SHARDS, h.query())).items)) == ["forever", "plain"]
    assert await h.store.count(SHARDS, h.query()) == 2


async def test_a_write_restarts_the_ttl(h: Harness) -> None:
    clock = h.manual_clock()
    await h.store.create(SHARDS, h.doc("a", ttl=10))
    clock.advance(8)
    await h.store.upsert(SHARDS, h.doc("a", ttl=10, touched=True))
    clock.advance(8)

    assert (await h.store.read(SHARDS, "a", h.tenant("t1")))["touched"] is True


async def test_an_expired_document_is_gone_for_every_operation_but_create(h: Harness) -> None:
    clock = h.manual_clock()
    expired = await h.store.create(SHARDS, h.doc("a", ttl=5, generation=1))
    clock.advance(5)

    with pytest.raises(NotFound):
        await h.store.replace(SHARDS, h.doc("a", generation=2), if_match=expired["_etag"])
    with pytest.raises(NotFound):
        await h.store.delete(SHARDS, "a", h.tenant("t1"))
    recreated = await h.store.create(SHARDS, h.doc("a", generation=3))

    assert recreated["generation"] == 3
    assert await h.store.read(SHARDS, "a", h.tenant("t1")) == recreated
    clock.advance(3600)
    assert (await h.store.read(SHARDS, "a", h.tenant("t1")))["generation"] == 3


async def test_in_batches_too_an_expired_document_can_only_be_created_again(h: Harness) -> None:
    clock = h.manual_clock()
    expired = await h.store.create(SHARDS, h.doc("a", ttl=5, generation=1))
    await h.store.create(SHARDS, h.doc("b", ttl=5, generation=1))
    clock.advance(5)

    with pytest.raises(NotFound, match="batch operation 1"):
        await h.store.write_batch(
            SHARDS,
            h.tenant("t1"),
            [
                BatchOperation.upsert(h.doc("c")),
                BatchOperation.replace(h.doc("a", generation=2), if_match=expired["_etag"]),
            ],
        )
    etags = await h.store.write_batch(
        SHARDS, h.tenant("t1"), [BatchOperation.create(h.doc("a", generation=3)), BatchOperation.upsert(h.doc("c"))]
    )
    outcomes = await h.store.create_many(SHARDS, [h.doc("b", generation=3), h.doc("d")])

    stored = await h.store.read_many(SHARDS, h.tenant("t1"), ["a", "b", "c", "d"])
    assert outcomes == [None, None]
    assert (stored["a"]["generation"], stored["b"]["generation"]) == (3, 3)
    assert etags == [stored["a"]["_etag"], stored["c"]["_etag"]]
    clock.advance(3600)  # the documents created again no longer carry the old expiry
    assert sorted(await h.store.read_many(SHARDS, h.tenant("t1"), ["a", "b", "c", "d"])) == ["a", "b", "c", "d"]


async def test_expired_rows_are_purged_from_the_file_by_a_later_write(h: Harness) -> None:
    clock = h.manual_clock()
    path = h.sqlite_path()
    await asyncio.gather(*(h.store.create(SHARDS, h.doc(f"d{n}", ttl=30)) for n in range(20)))
    await h.store.create(SHARDS, h.doc("kept"))
    assert _row_count(path) == 21

    clock.advance(3600)
    await h.store.upsert(SHARDS, h.doc("trigger"))

    assert _row_count(path) == 2


def _row_count(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])


# ---------------------------------------------------------------- filters

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FILTER_DOCS = [
    {"id": "a", "status": "pending", "n": 1, "flag": True, "nested": {"level": 2, "tag": "x"}, "maybe": "v",
     "at": format_utc(T0 + timedelta(hours=9))},
    {"id": "b", "status": "queued", "n": 2, "flag": False, "nested": {"level": 5}, "maybe": 0,
     "at": format_utc(T0 + timedelta(hours=10, minutes=30))},
    {"id": "c", "status": "pending", "n": 10, "flag": True, "maybe": None,
     "at": format_utc(T0 - timedelta(microseconds=500_000))},
    {"id": "d", "status": "failed", "n": "10", "flag": 1, "nested": {"level": "2"},
     "at": format_utc(T0 + timedelta(days=400))},
    {"id": "e", "n": 2.5},
]  # fmt: skip

FILTER_CASES = [
    pytest.param(Filter("status", "==", "pending"), ["a", "c"], id="eq-string"),
    pytest.param(Filter("status", "!=", "pending"), ["b", "d"], id="ne-skips-missing"),
    pytest.param(Filter("n", "<", 10), ["a", "b", "e"], id="lt-numbers-only"),
    pytest.param(Filter("n", "<=", 10), ["a", "b", "c", "e"], id="le"),
    pytest.param(Filter("n", ">", 2), ["c", "e"], id="gt-int-vs-float"),
    pytest.param(Filter("n", ">=", 2.5), ["c", "e"], id="ge-float"),
    pytest.param(Filter("n", "==", "10"), ["d"], id="string-never-equals-number"),
    pytest.param(Filter("status", "in", ("queued", "failed")), ["b", "d"], id="in-strings"),
    pytest.param(Filter("n", "in", (1, "10")), ["a", "d"], id="in-mixed-types"),
    pytest.param(Filter("status", "in", ()), [], id="in-empty"),
    pytest.param(Filter("flag", "==", True), ["a", "c"], id="true-is-not-1"),
    pytest.param(Filter("flag", "==", False), ["b"], id="false-is-not-0"),
    pytest.param(Filter("flag", "!=", True), ["b"], id="ne-true-booleans-only"),
    pytest.param(Filter("flag", "==", 1), ["d"], id="1-is-not-true"),
    pytest.param(Filter("flag", "in", (True, 1)), ["a", "c", "d"], id="in-bool-and-number"),
    pytest.param(Filter("n", "==", True), [], id="true-is-not-n-1"),
    pytest.param(Filter("nested.level", ">=", 2), ["a", "b"], id="dotted-path"),
    pytest.param(Filter("nested.tag", "==", "x"), ["a"], id="dotted-path-string"),
    pytest.param(Filter("nested.level", "==", "2"), ["d"], id="dotted-path-typed"),
    pytest.param(Filter("maybe", "==", None), ["c"], id="eq-null-not-missing"),
    pytest.param(Filter("maybe", "!=", None), ["a", "b"], id="ne-null-defined-only"),
    pytest.param(Filter("maybe", "in", (None, "v")), ["a", "c"], id="in-with-null"),
    pytest.param(Filter("at", "<", format_utc(T0)), ["c"], id="time-before-midnight"),
    pytest.param(Filter("at", ">=", format_utc(T0 + timedelta(hours=10, minutes=30))), ["b", "d"], id="time-ge"),
    pytest.param(Filter("at", ">", format_utc(T0 + timedelta(hours=9, microseconds=1))), ["b", "d"], id="time-micro"),
]


@pytest.fixture
async def filter_docs(harness: Harness) -> Harness:
    await asyncio.gather(*(harness.store.create(SHARDS, harness.doc(doc["id"], **doc)) for doc in FILTER_DOCS))
    return harness


@pytest.mark.parametrize(("flt", "expected"), FILTER_CASES)
async def test_filter(filter_docs: Harness, flt: Filter, expected: list[str]) -> None:
    h = filter_docs
    page = await h.store.query(SHARDS, h.query(flt))

    assert sorted(ids(page.items)) == expected
    assert await h.store.count(SHARDS, h.query(flt)) == len(expected)


async def test_filters_combine_with_and(filter_docs: Harness) -> None:
    h = filter_docs
    query = h.query(Filter("status", "==", "pending"), Filter("n", ">", 1))

    assert ids((await h.store.query(SHARDS, query)).items) == ["c"]


async def test_a_filter_on_the_id_selects_that_document(filter_docs: Harness) -> None:
    h = filter_docs

    assert ids((await h.store.query(SHARDS, h.query(Filter("id", "==", "b")))).items) == ["b"]


# ---------------------------------------------------------------- partitions


async def test_partition_key_scopes_query_and_count(h: Harness) -> None:
    await asyncio.gather(
        *(h.store.create(SHARDS, h.doc(f"{tenant}-{n}", tenant=tenant)) for tenant in ("t1", "t2") for n in range(3))
    )

    scoped = await h.store.query(SHARDS, h.query(tenant="t2"))

    assert sorted(ids(scoped.items)) == ["t2-0", "t2-1", "t2-2"]
    assert await h.store.count(SHARDS, h.query(tenant="t1")) == 3
    assert await h.store.count(SHARDS, h.query()) == 6


# ---------------------------------------------------------------- ordering and paging

RANKED = [  # (id, tenant, rank, group): ties on rank and group, ids repeated across partitions
    ("k", "t1", 2, "b"), ("c", "t2", 1, "a"), ("m", "t1", 2, "a"), ("a", "t3", 3, "b"), ("x", "t2", 1, "b"),
    ("b", "t1", 1, "a"), ("c", "t1", 2, "b"), ("j", "t3", 1, "a"), ("q", "t2", 3, "a"), ("c", "t3", 2, "a"),
]  # fmt: skip


@pytest.fixture
async def ranked(harness: Harness) -> Harness:
    await asyncio.gather(
        *(
            harness.store.create(SHARDS, harness.doc(doc_id, tenant, rank=rank, group=group, nested={"level": rank}))
            for doc_id, tenant, rank, group in RANKED
        )
    )
    return harness


def expected_order(h: Harness, order_by: tuple[tuple[str, SortOrder], ...]) -> list[tuple[str, str]]:
    """The documented total order: order_by, then id and partition key in the last key's direction."""
    rows = [{"id": i, "tenantId": h.tenant(t), "rank": r, "group": g, "nested.level": r} for i, t, r, g in RANKED]
    last = order_by[-1][1] if order_by else "asc"
    for path, direction in reversed((*order_by, ("id", last), ("tenantId", last))):
        rows.sort(key=itemgetter(path), reverse=direction == "desc")  # stable: earlier keys sort last and win
    return [(row["id"], row["tenantId"]) for row in rows]


def keys(items: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(item["id"], item["tenantId"]) for item in items]


ORDERINGS: list[tuple[tuple[str, SortOrder], ...]] = [
    (),
    (("rank", "asc"),),
    (("rank", "desc"),),
    (("nested.level", "asc"),),
    (("group", "asc"), ("rank", "desc")),
]


@pytest.mark.parametrize("order_by", ORDERINGS, ids=str)
async def test_order_by_breaks_ties_on_id_then_partition(ranked: Harness, order_by: tuple[Any, ...]) -> None:
    h = ranked

    page = await h.store.query(SHARDS, h.query(order_by=order_by))

    assert keys(page.items) == expected_order(h, order_by)
    assert page.continuation is None


async def test_descending_order_is_the_exact_reverse_of_ascending(ranked: Harness) -> None:
    h = ranked
    ascending = await h.store.query(SHARDS, h.query(order_by=(("rank", "asc"),)))
    descending = await h.store.query(SHARDS, h.query(order_by=(("rank", "desc"),)))

    assert keys(descending.items) == list(reversed(keys(ascending.items)))


@pytest.mark.parametrize("order_by", ORDERINGS, ids=str)
@pytest.mark.parametrize("limit", [1, 3, 5, 10, 11])
async def test_paging_returns_every_document_once_in_order(ranked: Harness, order_by: Any, limit: int) -> None:
    h = ranked

    pages = await all_pages(h.store, SHARDS, h.query(order_by=order_by, limit=limit))

    assert [len(page) for page in pages[:-1]] == [limit] * (len(pages) - 1)
    assert len(pages) == max(1, -(-len(RANKED) // limit))  # no empty trailing page
    assert keys([item for page in pages for item in page]) == expected_order(h, order_by)


async def test_paging_within_one_partition(ranked: Harness) -> None:
    h = ranked

    pages = await all_pages(h.store, SHARDS, h.query(tenant="t1", order_by=(("rank", "desc"),), limit=2))

    assert [ids(page) for page in pages] == [["m", "k"], ["c", "b"]]


async def test_paging_resumes_after_the_last_item_even_once_it_is_deleted(ranked: Harness) -> None:
    h = ranked
    query = h.query(order_by=(("rank", "asc"),), limit=4)
    first = await h.store.query(SHARDS, query)
    last = first.items[-1]
    await h.store.delete(SHARDS, last["id"], last["tenantId"])

    rest = await all_pages(h.store, SHARDS, Query(query.filters, None, query.order_by, 4, first.continuation))

    assert keys(first.items) + keys([item for page in rest for item in page]) == expected_order(h, query.order_by)


async def test_paging_over_a_sort_field_that_is_null_or_missing_returns_each_document_once(h: Harness) -> None:
    ranks: dict[str, dict[str, Any]] = {"a": {}, "b": {"rank": None}, "c": {"rank": 2}, "d": {}, "e": {"rank": None},
                                        "f": {"rank": 1}}  # fmt: skip
    for doc_id, fields in ranks.items():
        await h.store.create(SHARDS, h.doc(doc_id, **fields))

    pages = await all_pages(h.store, SHARDS, h.query(order_by=(("rank", "asc"),), limit=1))

    seen = [item["id"] for page in pages for item in page]
    assert sorted(seen) == sorted(ranks)
    assert seen[-2:] == ["f", "c"]  # null and missing sort before every number


async def test_a_continuation_token_only_resumes_the_query_it_came_from(ranked: Harness) -> None:
    h = ranked
    first = await h.store.query(SHARDS, h.query(order_by=(("rank", "asc"),), limit=2))
    assert first.continuation is not None

    with pytest.raises(ValueError, match="does not belong"):
        await h.store.query(SHARDS, h.query(order_by=(("rank", "desc"),), limit=2, continuation=first.continuation))


async def test_count_ignores_order_limit_and_continuation(ranked: Harness) -> None:
    h = ranked
    first = await h.store.query(SHARDS, h.query(order_by=(("rank", "asc"),), limit=2))
    query = h.query(Filter("rank", "<=", 2), order_by=(("rank", "asc"),), limit=2, continuation=first.continuation)

    assert await h.store.count(SHARDS, query) == 8


# ---------------------------------------------------------------- durability and concurrency


async def test_documents_survive_close_and_reopen(h: Harness) -> None:
    path = h.sqlite_path()
    created = await h.store.create(SHARDS, h.doc("a", name="durable"))
    await h.store.close()

    reopened = SqliteDocumentStore(path, clock=h.manual_clock())
    try:
        assert await reopened.read(SHARDS, "a", h.tenant("t1")) == created
        replaced = await reopened.replace(SHARDS, h.doc("a", name="still"), if_match=created["_etag"])
        assert replaced["name"] == "still"
    finally:
        await reopened.close()


async def test_two_hundred_concurrent_upserts_all_land(h: Harness) -> None:
    docs = [h.doc(f"doc-{n:03d}", tenant=f"t{n % 4}", n=n) for n in range(200)]

    written = await asyncio.gather(*(h.store.upsert(SHARDS, doc) for doc in docs))

    assert len({doc["_etag"] for doc in written}) == 200
    assert await h.store.count(SHARDS, h.query()) == 200
    everything = await h.store.query(SHARDS, h.query())
    assert sorted(item["n"] for item in everything.items) == list(range(200))
    assert (await h.store.read(SHARDS, "doc-137", h.tenant("t1")))["n"] == 137


@pytest.fixture
def h(harness: Harness) -> Harness:
    """Short name for the harness in test bodies."""
    return harness
