"""The Cosmos store's batch write and read_many, through the real azure-cosmos client and its azure-core transport seam.

``CosmosAccount`` answers the SDK's HTTP requests the way the service documents them: a transactional batch is a POST
of the operations to the container's ``docs`` with ``x-ms-cosmos-is-batch-request``, answered 200 with one result per
operation, or 207 when one failed (that one with its own status, every other 424, nothing applied).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from castiel.backends.cosmos import CosmosDocumentStore
from castiel.errors import AlreadyExists, NotFound, PreconditionFailed
from castiel.ports import BatchOperation
from tests.contract.cosmos_wire import ENDPOINT, CosmosAccount


class Wire(CosmosAccount):
    """The account, with the documents of the ``castiel`` database's containers at hand."""

    def stored(self, container: str, partition: str) -> dict[str, dict[str, Any]]:  # type: ignore[override]
        return super().stored("castiel", container, partition)


@pytest.fixture
async def wire() -> Wire:
    return Wire()


@pytest.fixture
async def store(wire: Wire) -> AsyncIterator[CosmosDocumentStore]:
    cosmos = CosmosDocumentStore(ENDPOINT, "castiel", key="a2V5", transport=wire)
    try:
        yield cosmos
    finally:
        await cosmos.close()


def shard(doc_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": doc_id, "tenantId": "t1", **fields}


async def seed(store: CosmosDocumentStore, doc: dict[str, Any]) -> str:
    """Store ``doc`` ahead of the test; its etag."""
    [etag] = await store.write_batch("shards", "t1", [BatchOperation.create(doc)])
    assert etag is not None
    return etag


async def test_a_batch_goes_out_as_one_transactional_batch_in_the_sdk_s_wire_form(
    store: CosmosDocumentStore, wire: Wire
) -> None:
    kept_etag = await seed(store, shard("kept", version=0))
    wire.batches.clear()

    etags = await store.write_batch(
        "shards",
        "t1",
        [
            BatchOperation.create(shard("new")),
            BatchOperation.replace(shard("kept", version=1), if_match=kept_etag),
            BatchOperation.upsert(shard("other")),
            BatchOperation.delete("new"),
        ],
    )

    assert len(wire.batches) == 1
    container, partition, operations = wire.batches[0]
    assert (container, partition) == ("shards", "t1")
    assert [op["operationType"] for op in operations] == ["Create", "Replace", "Upsert", "Delete"]
    assert operations[1]["ifMatch"] == kept_etag
    assert operations[1]["id"] == "kept"
    assert operations[3] == {"operationType": "Delete", "id": "new"}
    stored = wire.stored("shards", "t1")
    assert sorted(stored) == ["kept", "other"]
    assert etags == [etags[0], stored["kept"]["_etag"], stored["other"]["_etag"], None]


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        (BatchOperation.create(shard("there")), AlreadyExists),
        (BatchOperation.replace(shard("there"), if_match='"stale"'), PreconditionFailed),
        (BatchOperation.delete("absent"), NotFound),
    ],
)
async def test_a_207_names_the_failing_operation_and_nothing_is_applied(
    store: CosmosDocumentStore, wire: Wire, operation: BatchOperation, error: type[Exception]
) -> None:
    await seed(store, shard("there", version=0))
    before = wire.stored("shards", "t1")

    with pytest.raises(error, match=r"batch operation 1 \("):
        await store.write_batch("shards", "t1", [BatchOperation.upsert(shard("before")), operation])

    assert wire.stored("shards", "t1") == before


async def test_long_batches_are_cut_at_100_operations_and_about_a_megabyte(
    store: CosmosDocumentStore, wire: Wire
) -> None:
    small = [BatchOperation.upsert(shard(f"s{n}")) for n in range(250)]
    large = [BatchOperation.upsert(shard(f"l{n}", text="x" * 300_000)) for n in range(7)]

    etags = await store.write_batch("shards", "t1", small + large)

    assert [len(operations) for _, _, operations in wire.batches] == [100, 100, 53, 3, 1]
    assert len(etags) == 257
    assert len(wire.stored("shards", "t1")) == 257


async def test_a_failure_in_a_later_transaction_leaves_the_earlier_ones_committed(
    store: CosmosDocumentStore, wire: Wire
) -> None:
    await seed(store, shard("d120"))
    wire.batches.clear()

    with pytest.raises(AlreadyExists, match=r"batch operation 120 \(create d120\)"):
        await store.write_batch("shards", "t1", [BatchOperation.create(shard(f"d{n}")) for n in range(150)])

    assert len(wire.batches) == 2
    assert sorted(wire.stored("shards", "t1")) == sorted([f"d{n}" for n in range(100)] + ["d120"])


async def test_read_many_is_one_single_partition_query_per_thousand_ids(store: CosmosDocumentStore, wire: Wire) -> None:
    await store.write_batch("shards", "t1", [BatchOperation.upsert(shard(f"d{n}", n=n)) for n in range(3)])

    found = await store.read_many("shards", "t1", [f"d{n}" for n in range(1_500)] + ["d1"])

    assert sorted(found) == ["d0", "d1", "d2"]
    assert found["d2"] == {"id": "d2", "tenantId": "t1", "n": 2, "_etag": found["d2"]["_etag"], "_ts": 1_700_000_000}
    partitions = [(container, headers["x-ms-documentdb-partitionkey"]) for container, headers, _ in wire.queries]
    assert partitions == [("shards", orjson.dumps(["t1"]).decode())] * 2
    assert [len(body["parameters"][0]["value"]) for _, _, body in wire.queries] == [1_000, 500]
