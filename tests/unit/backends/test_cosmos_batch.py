"""The Cosmos store's batch write and read_many, through the real azure-cosmos client and its azure-core transport seam.

``CosmosWire`` answers the SDK's HTTP requests the way the service documents them: a transactional batch is a POST of
the operations to the container's ``docs`` with ``x-ms-cosmos-is-batch-request``, answered 200 with one result per
operation, or 207 when one failed (that one with its own status, every other 424, nothing applied). A query is a
POST with ``x-ms-documentdb-isquery``, answered with ``Documents``. Only what these tests send is understood.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from azure.core.pipeline.transport import AsyncHttpResponse, AsyncHttpTransport, HttpRequest
from azure.core.utils import CaseInsensitiveDict

from castiel.backends.cosmos import CosmosDocumentStore
from castiel.backends.cosmos_query import ids_sql
from castiel.errors import AlreadyExists, NotFound, PreconditionFailed
from castiel.ports import BatchOperation

ENDPOINT = "https://castiel-test.documents.azure.com:443/"
ACCOUNT = {
    "id": "castiel-test",
    "writableLocations": [{"name": "West Europe", "databaseAccountEndpoint": ENDPOINT}],
    "readableLocations": [{"name": "West Europe", "databaseAccountEndpoint": ENDPOINT}],
    "enableMultipleWriteLocations": False,
    "userConsistencyPolicy": {"defaultConsistencyLevel": "Session"},
}
DOCS_PATH = re.compile(r"dbs/castiel/colls/([a-z-]+)/docs")
COLL_PATH = re.compile(r"dbs/castiel/colls/([a-z-]+)")


class WireResponse(AsyncHttpResponse):
    """A complete JSON response, as azure-core's transports hand one to the pipeline."""

    def __init__(self, request: HttpRequest, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(request, None)
        self.status_code = status
        self.headers = CaseInsensitiveDict({"Content-Type": "application/json", **(headers or {})})
        self.reason = "OK" if status < 400 else "Error"
        self.content_type = "application/json"
        self._body = orjson.dumps(body)

    def body(self) -> bytes:
        return self._body

    async def load_body(self) -> None:
        """The body is in memory already."""


class CosmosWire(AsyncHttpTransport[HttpRequest, AsyncHttpResponse]):
    """An in-memory Cosmos DB account behind the SDK's transport: documents per (container, partition, id)."""

    def __init__(self) -> None:
        self.documents: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.batches: list[tuple[str, str, list[dict[str, Any]]]] = []
        self.queries: list[tuple[str, str, dict[str, Any]]] = []
        self._etags = itertools.count(1)

    async def send(self, request: HttpRequest, **kwargs: Any) -> AsyncHttpResponse:
        path = request.url.removeprefix(ENDPOINT).strip("/")
        if path == "":
            return WireResponse(request, 200, ACCOUNT)
        if path == "dbs/castiel":
            return WireResponse(request, 200, {"id": "castiel", "_rid": "db1", "_self": "dbs/db1/"})
        if (match := COLL_PATH.fullmatch(path)) and request.method == "GET":
            properties = {"id": match[1], "_rid": "coll1", "_self": "dbs/db1/colls/coll1/"}
            return WireResponse(request, 200, {**properties, "partitionKey": {"paths": ["/tenantId"], "kind": "Hash"}})
        if (match := DOCS_PATH.fullmatch(path)) and request.method == "POST":
            partition = orjson.loads(request.headers["x-ms-documentdb-partitionkey"])[0]
            body = orjson.loads(request.data or b"null")
            if request.headers.get("x-ms-cosmos-is-batch-request") == "True":
                return self._batch(request, match[1], partition, body)
            if request.headers.get("x-ms-documentdb-isquery") == "true":
                return self._query(request, match[1], partition, body)
        return WireResponse(request, 400, {"code": "BadRequest", "message": f"unexpected {request.method} {path}"})

    def stored(self, container: str, partition: str) -> dict[str, dict[str, Any]]:
        """The documents of one partition, by id."""
        return {key[2]: doc for key, doc in self.documents.items() if key[:2] == (container, partition)}

    def _batch(self, request: HttpRequest, container: str, partition: str, operations: Any) -> WireResponse:
        self.batches.append((container, partition, operations))
        staged = dict(self.documents)
        results: list[dict[str, Any]] = []
        for operation in operations:
            status, result = self._apply(staged, container, partition, operation)
            if status >= 400:
                failed = [{"statusCode": 424, "requestCharge": 0.0} for _ in operations]
                failed[len(results)] = {"statusCode": status, "requestCharge": 0.0}
                return WireResponse(request, 207, failed)
            results.append({"statusCode": status, "requestCharge": 1.0, **result})
        self.documents = staged  # all operations succeeded: commit them together
        return WireResponse(request, 200, results)

    def _apply(
        self, staged: dict[tuple[str, str, str], dict[str, Any]], container: str, partition: str, op: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        kind = op["operationType"]
        doc_id = op["id"] if "id" in op else op["resourceBody"]["id"]
        key = (container, partition, doc_id)
        current = staged.get(key)
        if kind == "Create" and current is not None:
            return 409, {}
        if kind in ("Replace", "Delete") and current is None:
            return 404, {}
        if "ifMatch" in op and (current is None or current["_etag"] != op["ifMatch"]):
            return 412, {}
        if kind == "Delete":
            del staged[key]
            return 204, {}
        etag = f'"{next(self._etags):08x}"'
        staged[key] = {**op["resourceBody"], "_etag": etag, "_ts": 1_700_000_000, "_rid": "r", "_self": "s"}
        return (201 if current is None else 200), {"eTag": etag, "resourceBody": staged[key]}

    def _query(self, request: HttpRequest, container: str, partition: str, body: dict[str, Any]) -> WireResponse:
        self.queries.append((container, partition, body))
        expected = ids_sql([])
        if body["query"] != expected.text or [p["name"] for p in body["parameters"]] != ["@ids"]:
            return WireResponse(request, 400, {"code": "BadRequest", "message": "only ids_sql is understood"})
        wanted = body["parameters"][0]["value"]
        found = [doc for doc_id, doc in self.stored(container, partition).items() if doc_id in wanted]
        return WireResponse(request, 200, {"_rid": "coll1", "Documents": found, "_count": len(found)})

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def __aenter__(self) -> CosmosWire:
        return self

    async def __aexit__(self, *args: object) -> None:
        """Nothing to release."""


@pytest.fixture
async def wire() -> CosmosWire:
    return CosmosWire()


@pytest.fixture
async def store(wire: CosmosWire) -> AsyncIterator[CosmosDocumentStore]:
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
    store: CosmosDocumentStore, wire: CosmosWire
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
    store: CosmosDocumentStore, wire: CosmosWire, operation: BatchOperation, error: type[Exception]
) -> None:
    await seed(store, shard("there", version=0))
    before = wire.stored("shards", "t1")

    with pytest.raises(error, match=r"batch operation 1 \("):
        await store.write_batch("shards", "t1", [BatchOperation.upsert(shard("before")), operation])

    assert wire.stored("shards", "t1") == before


async def test_long_batches_are_cut_at_100_operations_and_about_a_megabyte(
    store: CosmosDocumentStore, wire: CosmosWire
) -> None:
    small = [BatchOperation.upsert(shard(f"s{n}")) for n in range(250)]
    large = [BatchOperation.upsert(shard(f"l{n}", text="x" * 300_000)) for n in range(7)]

    etags = await store.write_batch("shards", "t1", small + large)

    assert [len(operations) for _, _, operations in wire.batches] == [100, 100, 53, 3, 1]
    assert len(etags) == 257
    assert len(wire.stored("shards", "t1")) == 257


async def test_a_failure_in_a_later_transaction_leaves_the_earlier_ones_committed(
    store: CosmosDocumentStore, wire: CosmosWire
) -> None:
    await seed(store, shard("d120"))
    wire.batches.clear()

    with pytest.raises(AlreadyExists, match=r"batch operation 120 \(create d120\)"):
        await store.write_batch("shards", "t1", [BatchOperation.create(shard(f"d{n}")) for n in range(150)])

    assert len(wire.batches) == 2
    assert sorted(wire.stored("shards", "t1")) == sorted([f"d{n}" for n in range(100)] + ["d120"])


async def test_read_many_is_one_single_partition_query_per_thousand_ids(
    store: CosmosDocumentStore, wire: CosmosWire
) -> None:
    await store.write_batch("shards", "t1", [BatchOperation.upsert(shard(f"d{n}", n=n)) for n in range(3)])

    found = await store.read_many("shards", "t1", [f"d{n}" for n in range(1_500)] + ["d1"])

    assert sorted(found) == ["d0", "d1", "d2"]
    assert found["d2"] == {"id": "d2", "tenantId": "t1", "n": 2, "_etag": found["d2"]["_etag"], "_ts": 1_700_000_000}
    assert [(container, partition) for container, partition, _ in wire.queries] == [("shards", "t1")] * 2
    assert [len(body["parameters"][0]["value"]) for _, _, body in wire.queries] == [1_000, 500]
