"""The Cosmos store through the real ``azure.cosmos.aio`` client, answered by the in-process account of
``cosmos_wire`` over azure-core's transport seam: what the SDK puts on the wire for each store call, and how the
service's answers (404/409/412/429, the cross-partition protocol, missing indexes) come back as Castiel errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from castiel.backends.cosmos import CREATE_CONCURRENCY, CosmosDocumentStore
from castiel.backends.cosmos_query import indexing_policy
from castiel.errors import AlreadyExists, ConfigError, NotFound, PermanentError, PreconditionFailed, RateLimited
from castiel.models import CONTAINER_PARTITION_KEYS
from castiel.ports import Filter, Query
from tests.contract.azure_wire import StaticToken
from tests.contract.cosmos_wire import ENDPOINT, THROTTLED_SUBSTATUS, CosmosAccount
from tests.unit.backends.test_indexing_policy import ORDERED_QUERIES


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


# ---------------------------------------------------------------- paging through values of every type


MIXED = [("u1", None), ("u2", None), ("n1", [None]), ("n2", [None]), ("b", [True]), ("i1", [1]), ("i2", [1]),
         ("f", [2.5]), ("s", ["x"])]  # fmt: skip
"""(id, [rank]) — no list: the document has no rank at all. Listed in Cosmos DB's order: undefined, null, booleans,
numbers, strings; ties by id."""


@pytest.mark.parametrize("direction", ["asc", "desc"])
async def test_paging_never_skips_past_a_missing_or_null_sort_value(account: CosmosAccount, direction: str) -> None:
    orderings = {"shards": ((("rank", "asc"),),)}
    store = CosmosDocumentStore(ENDPOINT, "castiel", key="a2V5", orderings=orderings, transport=account)  # type: ignore[arg-type]
    for doc_id, rank in MIXED:
        await store.create("shards", task(doc_id, "t1", **({} if rank is None else {"rank": rank[0]})))
    query = Query(partition_key="t1", order_by=(("rank", direction),), limit=1)  # type: ignore[arg-type]

    seen: list[str] = []
    while True:
        page = await store.query("shards", query)
        seen += [item["id"] for item in page.items]
        if page.continuation is None:
            break
        query = Query(query.filters, query.partition_key, query.order_by, query.limit, page.continuation)
    await store.close()

    expected = [doc_id for doc_id, _ in MIXED]
    assert seen == (expected if direction == "asc" else expected[::-1])


# ---------------------------------------------------------------- throttling


THROTTLED = {
    "code": "429",
    "message": 'Message: {"Errors":["Request rate is large. More Request Units may be needed"]}',
}


def reads(request: Any) -> bool:
    return request.method == "GET" and "/docs/" in request.url


async def test_a_429_is_retried_by_the_sdk_after_the_wait_the_service_asked_for(
    store: CosmosDocumentStore, account: CosmosAccount
) -> None:
    await store.create("shards", task("a", "t1"))
    account.fail(
        429, THROTTLED, headers={"x-ms-retry-after-ms": "1", "x-ms-substatus": THROTTLED_SUBSTATUS}, when=reads
    )

    assert (await store.read("shards", "a", "t1"))["id"] == "a"
    assert len([request for request in account.requests if reads(request)]) == 2


async def test_throttling_past_the_sdk_s_retries_is_rate_limited_by_x_ms_retry_after_ms(
    store: CosmosDocumentStore, account: CosmosAccount
) -> None:
    await store.create("shards", task("a", "t1"))
    account.fail(
        429,
        THROTTLED,
        headers={"x-ms-retry-after-ms": "7", "x-ms-substatus": THROTTLED_SUBSTATUS},
        when=reads,
        times=99,
    )

    with pytest.raises(RateLimited, match="read shards/a: Cosmos DB answered 429") as raised:
        await store.read("shards", "a", "t1")

    assert raised.value.retry_after == pytest.approx(0.007)


async def test_create_many_keeps_a_bounded_number_of_creates_in_flight(
    store: CosmosDocumentStore, account: CosmosAccount
) -> None:
    await store.create("shards", task("warm-up", "t1"))  # the container is open: what follows is the creates alone
    account.most_in_flight = 0

    outcomes = await store.create_many("shards", [task(f"d{n}", f"t{n % 7}") for n in range(200)])

    assert outcomes == [None] * 200
    assert 1 < account.most_in_flight <= CREATE_CONCURRENCY


# ---------------------------------------------------------------- the managed identity: containers come from infra/


@pytest.fixture
async def provisioned(account: CosmosAccount) -> AsyncIterator[tuple[CosmosDocumentStore, StaticToken]]:
    """A store on the identity, over an account whose containers the infrastructure created with our policies."""
    for container, partition_key in CONTAINER_PARTITION_KEYS.items():
        account.provision("castiel", container, f"/{partition_key}", indexing_policy(container))
    credential = StaticToken()
    identity_store = CosmosDocumentStore(ENDPOINT, "castiel", credential=credential, transport=account)  # type: ignore[arg-type]
    yield identity_store, credential
    await identity_store.close()


async def test_on_the_identity_the_store_creates_nothing_and_signs_with_the_entra_token(
    provisioned: tuple[CosmosDocumentStore, StaticToken], account: CosmosAccount
) -> None:
    store, credential = provisioned

    await store.create("shards", task("a", "t1"))
    await store.close()

    assert not [request for request in account.requests if request.method == "POST" and "/docs" not in request.url]
    [create] = document_requests(account)
    assert create.headers["authorization"] == "type=aad&ver=1.0&sig=entra-token"
    assert credential.closed == 0  # the process's credential, shared with the other clients


async def test_on_the_identity_a_container_missing_from_the_account_is_a_config_error(
    provisioned: tuple[CosmosDocumentStore, StaticToken], account: CosmosAccount
) -> None:
    store, _ = provisioned
    await store.create("shards", task("a", "t1"))
    del account.containers["castiel", "conflicts"]
    del account.containers["castiel", "shards"]  # deleted while the store had it open

    with pytest.raises(ConfigError, match="container castiel/conflicts does not exist"):
        await store.read("conflicts", "c1", "t1")
    with pytest.raises(ConfigError, match="shards/a: Cosmos DB has no such container"):
        await store.read("shards", "a", "t1")


@pytest.mark.parametrize(("where", "container"), ORDERED_QUERIES.items(), ids=[f[0] for f in ORDERED_QUERIES])
async def test_every_ordered_query_of_the_code_is_served_by_the_declared_indexes(
    provisioned: tuple[CosmosDocumentStore, StaticToken], where: tuple[str, Any], container: str
) -> None:
    store, _ = provisioned
    key = CONTAINER_PARTITION_KEYS[container]
    for n in range(3):
        await store.create(container, {"id": f"d{n}", key: "p1", "n": n})
    _, ordering = where

    first = await store.query(container, Query(order_by=ordering, limit=2))
    rest = await store.query(container, Query(order_by=ordering, limit=2, continuation=first.continuation))

    assert len(first.items) + len(rest.items) == 3


async def test_an_order_without_its_composite_index_is_refused_by_the_service(
    provisioned: tuple[CosmosDocumentStore, StaticToken], account: CosmosAccount
) -> None:
    store, _ = provisioned
    account.containers["castiel", "webhook-audit"].indexing_policy = indexing_policy("webhook-audit", orderings=())

    with pytest.raises(PermanentError, match="composite index"):
        await store.query("webhook-audit", Query(partition_key="r1", order_by=(("receivedAt", "desc"),), limit=5))
