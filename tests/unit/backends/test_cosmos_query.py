"""Query → Cosmos SQL, the shared query plan, and SDK error translation: known answers, no I/O."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import AzureError, ClientAuthenticationError, ServiceRequestError, ServiceResponseError
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosHttpResponseError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from castiel.backends.cosmos import ERRORS
from castiel.backends.cosmos_query import count_sql, indexing_policy, keyset_after, select_sql
from castiel.backends.query_plan import (
    decode_continuation,
    encode_continuation,
    field_segments,
    prepare_document,
    sort_keys,
)
from castiel.errors import (
    AlreadyExists,
    CastielError,
    ConfigError,
    NotFound,
    PermanentError,
    PreconditionFailed,
    RateLimited,
    RetryableError,
)
from castiel.ports import Filter, Query

SELECT_VECTORS = [
    pytest.param("shards", Query(), 'SELECT * FROM c ORDER BY c["id"] ASC, c["tenantId"] ASC', [], id="everything"),
    pytest.param(
        "sync-tasks",
        Query(
            filters=(Filter("status", "==", "pending"), Filter("nextRunAt", "<=", "2026-01-01T00:00:00.000000Z")),
            order_by=(("priorityRank", "asc"), ("nextRunAt", "asc")),
            limit=100,
        ),
        'SELECT TOP 101 * FROM c WHERE c["status"] = @p0 AND c["nextRunAt"] <= @p1'
        ' ORDER BY c["priorityRank"] ASC, c["nextRunAt"] ASC, c["id"] ASC, c["tenantId"] ASC',
        ["pending", "2026-01-01T00:00:00.000000Z"],
        id="scheduler-due-batch",
    ),
    pytest.param(
        "shards",
        Query(filters=(Filter("health.status", "!=", "down"), Filter("value", ">", 2.5), Filter("ok", "<", True))),
        'SELECT * FROM c WHERE c["health"]["status"] != @p0 AND c["value"] > @p1 AND c["ok"] < @p2'
        ' ORDER BY c["id"] ASC, c["tenantId"] ASC',
        ["down", 2.5, True],
        id="dotted-keyword-bool",
    ),
    pytest.param(
        "shards",
        Query(filters=(Filter("n", ">=", 0), Filter("status", "in", ("queued", "running", None)))),
        'SELECT * FROM c WHERE c["n"] >= @p0 AND c["status"] IN (@p1, @p2, @p3)'
        ' ORDER BY c["id"] ASC, c["tenantId"] ASC',
        [0, "queued", "running", None],
        id="in",
    ),
    pytest.param(
        "shards",
        Query(filters=(Filter("s", "in", ()),)),
        'SELECT * FROM c WHERE false ORDER BY c["id"] ASC, c["tenantId"] ASC',
        [],
        id="in-empty",
    ),
    pytest.param(
        "shards",
        Query(filters=(Filter("a", "==", None), Filter("b", "!=", None))),
        'SELECT * FROM c WHERE IS_NULL(c["a"]) AND (IS_DEFINED(c["b"]) AND NOT IS_NULL(c["b"]))'
        ' ORDER BY c["id"] ASC, c["tenantId"] ASC',
        [],
        id="null",
    ),
    pytest.param(
        "webhook-audit",
        Query(order_by=(("receivedAt", "desc"),), limit=1, partition_key="reg-1"),
        'SELECT TOP 2 * FROM c ORDER BY c["receivedAt"] DESC, c["id"] DESC, c["registrationId"] DESC',
        [],
        id="other-partition-key-desc",
    ),
    pytest.param(
        "shards",
        Query(order_by=(("id", "desc"), ("tenantId", "asc"))),
        'SELECT * FROM c ORDER BY c["id"] DESC, c["tenantId"] ASC',
        [],
        id="tie-breaks-already-named",
    ),
]


@pytest.mark.parametrize(("container", "query", "text", "values"), SELECT_VECTORS)
def test_select_sql(container: str, query: Query, text: str, values: list[Any]) -> None:
    sql = select_sql(container, query)

    assert sql.text == text
    assert sql.parameters == [{"name": f"@p{n}", "value": value} for n, value in enumerate(values)]


def test_select_after_a_key_resumes_strictly_after_it_in_the_sort_order() -> None:
    query = Query(filters=(Filter("kind", "==", "contact"),), order_by=(("rank", "desc"),), limit=2)

    sql = select_sql("shards", query, after=[[3], ["k"], ["t1"]])

    assert sql.text == (
        'SELECT TOP 3 * FROM c WHERE c["kind"] = @p0 AND ((c["rank"] < @p1 OR IS_BOOL(c["rank"])'
        ' OR IS_NULL(c["rank"]) OR NOT IS_DEFINED(c["rank"]))'
        ' OR (c["rank"] = @p1 AND c["id"] < @p2)'
        ' OR (c["rank"] = @p1 AND c["id"] = @p2 AND c["tenantId"] < @p3))'
        ' ORDER BY c["rank"] DESC, c["id"] DESC, c["tenantId"] DESC'
    )
    assert [parameter["value"] for parameter in sql.parameters] == ["contact", 3, "k", "t1"]


def test_count_sql_keeps_filters_and_drops_order_and_limit() -> None:
    query = Query(filters=(Filter("shardType", "==", "contact"),), order_by=(("rank", "asc"),), limit=5)

    sql = count_sql(query)

    assert sql.text == 'SELECT VALUE COUNT(1) FROM c WHERE c["shardType"] = @p0'
    assert sql.parameters == [{"name": "@p0", "value": "contact"}]


def test_indexing_policy_has_one_composite_index_per_order_and_its_reverse() -> None:
    orderings = [(("rank", "asc"),), (("rank", "desc"),), (("group", "desc"), ("at", "asc"))]

    policy = indexing_policy("webhook-audit", orderings)

    asc, desc = "ascending", "descending"
    assert policy["compositeIndexes"] == [
        [{"path": "/id", "order": asc}, {"path": "/registrationId", "order": asc}],
        [{"path": "/rank", "order": asc}, {"path": "/id", "order": asc}, {"path": "/registrationId", "order": asc}],
        [
            {"path": "/group", "order": asc},
            {"path": "/at", "order": desc},
            {"path": "/id", "order": desc},
            {"path": "/registrationId", "order": desc},
        ],
    ]
    assert policy["includedPaths"] == [{"path": "/*"}]


def test_nested_paths_index_as_slashes() -> None:
    policy = indexing_policy("shards", [(("health.lastReceivedAt", "asc"),)])

    assert policy["compositeIndexes"][1][0] == {"path": "/health/lastReceivedAt", "order": "ascending"}


@pytest.mark.parametrize(
    ("path", "segments"),
    [("status", ("status",)), ("health.status", ("health", "status")), ("_ts", ("_ts",)), ("a1.b_2", ("a1", "b_2"))],
)
def test_valid_field_paths(path: str, segments: tuple[str, ...]) -> None:
    assert field_segments(path) == segments


@pytest.mark.parametrize("path", ["", "a.", ".a", "a..b", "1a", "a-b", "a b", "a'", 'a"]', "a[0]", "a;drop", "é"])
def test_invalid_field_paths(path: str) -> None:
    with pytest.raises(ValueError, match="invalid field path"):
        field_segments(path)


def test_sort_keys_end_with_id_and_partition_key_in_the_last_direction() -> None:
    query = Query(order_by=(("a", "asc"), ("b", "desc")))

    assert sort_keys("shards", query) == (("a", "asc"), ("b", "desc"), ("id", "desc"), ("tenantId", "desc"))


def test_continuation_round_trips_for_the_same_query_only() -> None:
    query = Query(filters=(Filter("flag", "==", True),), order_by=(("rank", "asc"),), limit=2)
    token = encode_continuation("shards", query, [2.5, "k", "t1"])

    assert decode_continuation("shards", Query(query.filters, None, query.order_by, 2, token)) == [2.5, "k", "t1"]
    # The page size may change between pages; the filters, partition, order and container may not.
    assert decode_continuation("shards", Query(query.filters, None, query.order_by, 9, token)) == [2.5, "k", "t1"]
    for other_container, other in [
        ("shards", Query((Filter("flag", "==", False),), None, query.order_by, 2, token)),
        ("shards", Query(query.filters, "t1", query.order_by, 2, token)),
        ("shards", Query(query.filters, None, (("rank", "desc"),), 2, token)),
        ("connections", Query(query.filters, None, query.order_by, 2, token)),
    ]:
        with pytest.raises(ValueError, match="does not belong"):
            decode_continuation(other_container, other)


@pytest.mark.parametrize("token", ["%%%", "bm90IGpzb24", "W10"])  # not base64, not JSON, a JSON list
def test_malformed_continuations_are_rejected(token: str) -> None:
    with pytest.raises(ValueError, match="continuation"):
        decode_continuation("shards", Query(continuation=token))


def test_prepare_document_drops_store_fields_and_reads_the_ttl() -> None:
    doc = {"id": "a", "tenantId": "t", "ttl": 60, "_etag": "old", "_ts": 1, "_rid": "r", "_self": "s", "x": 1}

    prepared = prepare_document("shards", doc)

    assert prepared.body == {"id": "a", "tenantId": "t", "ttl": 60, "x": 1}
    assert (prepared.doc_id, prepared.partition_key, prepared.ttl) == ("a", "t", 60)
    assert prepare_document("shards", {**doc, "ttl": -1}).ttl is None
    assert prepare_document("shards", {"id": "a", "tenantId": "t"}).ttl is None


@pytest.mark.parametrize("ttl", [0, -2, 1.5, "60", None, False])
def test_prepare_document_rejects_a_ttl_cosmos_would_reject(ttl: object) -> None:
    with pytest.raises(ValueError, match="ttl"):
        prepare_document("shards", {"id": "a", "tenantId": "t", "ttl": ttl})


@pytest.mark.parametrize(
    ("path", "expected"),
    [("a", [1]), ("b.c", ["x"]), ("b.missing", []), ("a.deeper", []), ("missing", []), ("n", [None])],
)
def test_keyset_after_tells_a_missing_field_from_null(path: str, expected: list[object]) -> None:
    doc = {"id": "d1", "tenantId": "t1", "a": 1, "b": {"c": "x"}, "n": None}

    after = keyset_after("shards", Query(order_by=((path, "asc"),)), doc)

    assert after == [expected, ["d1"], ["t1"]]


def _cosmos_error(status: int, headers: dict[str, str] | None = None) -> CosmosHttpResponseError:
    error = CosmosHttpResponseError(status_code=status, message=f"Message: status {status}\nActivityId: 1")
    error.headers = headers or {}
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (CosmosResourceNotFoundError(status_code=404, message="gone"), NotFound),
        (CosmosResourceExistsError(status_code=409, message="dup"), AlreadyExists),
        (CosmosAccessConditionFailedError(status_code=412, message="etag"), PreconditionFailed),
        (_cosmos_error(429), RateLimited),
        (_cosmos_error(408), RetryableError),
        (_cosmos_error(410), RetryableError),
        (_cosmos_error(449), RetryableError),
        (_cosmos_error(500), RetryableError),
        (_cosmos_error(503), RetryableError),
        (_cosmos_error(400), PermanentError),
        (_cosmos_error(413), PermanentError),
        (_cosmos_error(401), ConfigError),
        (_cosmos_error(403), ConfigError),
        (ClientAuthenticationError("no identity"), ConfigError),
        (ServiceRequestError("connection refused"), RetryableError),
        (ServiceResponseError("connection reset"), RetryableError),
        (AzureError("something else"), RetryableError),
    ],
)
def test_translate_error(error: AzureError, expected: type[CastielError]) -> None:
    translated = ERRORS.translate(error, "read shards/a")

    assert type(translated) is expected
    assert "read shards/a" in str(translated)
    assert "\n" not in str(translated)


@pytest.mark.parametrize(("headers", "seconds"), [({"x-ms-retry-after-ms": "1500"}, 1.5), ({}, 1.0)])
def test_throttling_carries_the_retry_after_cosmos_asks_for(headers: dict[str, str], seconds: float) -> None:
    translated = ERRORS.translate(_cosmos_error(429, headers), "upsert shards/a")

    assert isinstance(translated, RateLimited)
    assert translated.retry_after == seconds
