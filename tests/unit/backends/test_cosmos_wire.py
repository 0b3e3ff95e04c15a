"""The Cosmos store through the real ``azure.cosmos.aio`` client, answered by the in-process account of
``cosmos_wire`` over azure-core's transport seam: what the SDK puts on the wire for each store call, and how the
service's answers (404/409/412/429, the cross-partition protocol, missing indexes) come back as Castiel errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from castiel.backends.cosmos import CosmosDocumentStore
from castiel.errors import AlreadyExists, NotFound, PreconditionFailed
from castiel.ports import Filter, Query
from tests.contract.cosmos_wire import ENDPOINT, CosmosAccount


@pytest.fixture
def account() -> CosmosAccount:
    return CosmosAccount()


@pytest.fixture
async def store(account: CosmosAccount) -> AsyncIterator[CosmosDocumentStore]:
    cosmos = CosmosDocumentStore(ENDPOINT, "castiel", key="a2V5", transport=account)
    try:
        yield cosmos
    finally:
        await cosmos.close()


def task(doc_id: str, tenant: str, **fields: Any) -> dict[str, Any]:
    return {"id": doc_id, "tenantId": tenant, **fields}


def document_requests(account: CosmosAccount) -> list[Any]:
    return [request for request in account.requests if "/docs" in request.url]


def body(request: Any) -> Any:
    return orjson.loads(request.data)


async def seed(store: CosmosDocumentStore) -> None:
    for n, (tenant, status) in enumerate([("t1", "pending"), ("t2", "pending"), ("t2", "failed"), ("t3", "pending")]):
        await store.create("sync-tasks", task(f"task-{n}", tenant, status=status, priorityRank=n % 2, nextRunAt=n))


async def test_a_query_across_partitions_runs_the_gateway_s_query_plan_protocol(
    store: CosmosDocumentStore, account: CosmosAccount
) -> None:
    await seed(store)
    account.requests.clear()
    query = Query(filters=(Filter("status", "==", "pending"),), order_by=(("nextRunAt", "desc"),), limit=2)

    page = await store.query("sync-tasks", query)

    assert [item["id"] for item in page.items] == ["task-3", "task-1"]
    first, plan, *ranged = document_requests(account)
    # No partition key: the async client's own way of saying "every partition" (no enable_cross_partition_query).
    assert "x-ms-documentdb-partitionkey" not in first.headers
    assert first.headers["x-ms-documentdb-query-enablecrosspartition"] == "True"
    assert first.headers["Content-Type"] == "application/query+json"
    sent = body(first)
    assert "pending" not in sent["query"]
    assert sent["parameters"] == [{"name": "@p0", "value": "pending"}]
    assert plan.headers["x-ms-cosmos-is-query-plan-request"] == "True"
    assert [request.headers["x-ms-documentdb-partitionkeyrangeid"] for request in ranged] == ["0"]
    assert "orderByItems" in body(ranged[0])["query"]


async def test_a_count_across_partitions_is_summed_by_the_sdk(store: CosmosDocumentStore) -> None:
    await seed(store)

    assert await store.count("sync-tasks", Query(filters=(Filter("status", "==", "pending"),))) == 3
    assert await store.count("sync-tasks", Query(partition_key="t2")) == 2
    assert await store.count("sync-tasks", Query(filters=(Filter("status", "==", "none"),))) == 0


async def test_a_query_in_one_partition_names_it_in_the_partition_key_header(
    store: CosmosDocumentStore, account: CosmosAccount
) -> None:
    await seed(store)
    account.requests.clear()

    page = await store.query("sync-tasks", Query(partition_key="t2", order_by=(("nextRunAt", "asc"),)))

    assert [item["id"] for item in page.items] == ["task-1", "task-2"]
    [request] = document_requests(account)
    assert request.headers["x-ms-documentdb-partitionkey"] == '["t2"]'
    assert "x-ms-documentdb-query-enablecrosspartition" not in request.headers


async def test_conditional_writes_send_if_match_and_lose_with_412(
    store: CosmosDocumentStore, account: CosmosAccount
) -> None:
    created = await store.create("sync-tasks", task("a", "t1", version=0))
    account.requests.clear()

    replaced = await store.replace("sync-tasks", task("a", "t1", version=1), if_match=created["_etag"])
    with pytest.raises(PreconditionFailed, match="412"):
        await store.delete("sync-tasks", "a", "t1", if_match=created["_etag"])

    replace, delete = document_requests(account)
    assert (replace.method, replace.url.removeprefix(ENDPOINT)) == ("PUT", "dbs/castiel/colls/sync-tasks/docs/a/")
    assert replace.headers["If-Match"] == created["_etag"]
    assert replace.headers["x-ms-documentdb-partitionkey"] == '["t1"]'
    assert (delete.method, delete.headers["If-Match"]) == ("DELETE", created["_etag"])
    assert (await store.read("sync-tasks", "a", "t1"))["_etag"] == replaced["_etag"]


async def test_the_service_s_404_and_409_become_not_found_and_already_exists(store: CosmosDocumentStore) -> None:
    await store.create("sync-tasks", task("a", "t1"))

    with pytest.raises(AlreadyExists, match="409"):
        await store.create("sync-tasks", task("a", "t1"))
    with pytest.raises(NotFound, match="404"):
        await store.read("sync-tasks", "a", "t2")
    with pytest.raises(NotFound):
        await store.replace("sync-tasks", task("b", "t1"))
