"""A Cosmos DB for NoSQL account in memory, answering the real ``azure.cosmos.aio`` client over its transport seam.

It speaks the REST API as documented (learn.microsoft.com/rest/api/cosmos-db): resources under
``dbs/{db}/colls/{coll}``, the partition key as ``x-ms-documentdb-partitionkey: ["value"]``, ``If-Match`` for
conditional writes, ``x-ms-documentdb-is-upsert``, queries as ``application/query+json`` POSTs with their
parameters, ``x-ms-max-item-count`` and ``x-ms-continuation`` paging, transactional batches
(``x-ms-cosmos-is-batch-request``, 207 with a 424 for every operation but the failing one), errors as
``{"code", "message"}`` with ``x-ms-substatus``, and the gateway's cross-partition protocol: a query it cannot serve
across partitions (ORDER BY, TOP, aggregates) is refused with 400/1004, the SDK then asks for the query plan
(``x-ms-cosmos-is-query-plan-request``) and the partition key ranges (a change feed ended by 304), and runs the
plan's rewritten query per range, merging the ranges' ``orderByItems`` itself.

The account has one physical partition (one key range), and the containers keep what they were created with:
an ORDER BY over several paths without a matching composite index is refused with 400, as the service refuses it.
Documents expire ``ttl`` seconds after their last write by the account's clock (reads and queries stop seeing them
at once, as the service documents). Queries run through ``cosmos_sql``.
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from azure.core.pipeline.transport import AsyncHttpResponse

from tests.contract.azure_wire import AzureWire, WireResponse, request_body
from tests.contract.cosmos_sql import SqlError, parse

ENDPOINT = "https://castiel-test.documents.azure.com:443/"
PK_RANGE_ID = "0"

_DOCS = re.compile(r"dbs/([^/]+)/colls/([^/]+)/docs")
_DOC = re.compile(r"dbs/([^/]+)/colls/([^/]+)/docs/([^/]+)")
_COLL = re.compile(r"dbs/([^/]+)/colls/([^/]+)")
_PKRANGES = re.compile(r"dbs/([^/]+)/colls/([^/]+)/pkranges")
_DB = re.compile(r"dbs/([^/]+)")

NOT_SERVABLE_SUBSTATUS = "1004"  # CrossPartitionQueryNotServable
THROTTLED_SUBSTATUS = "3200"  # RU budget exceeded
OWNER_MISSING = "1003"  # the container (or database) of a document operation does not exist


class CosmosFault(Exception):
    """An error answer: status, the service's error code and message, and extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}


@dataclass
class Container:
    """One container: its properties as created, and its documents by (partition key, id)."""

    name: str
    rid: str
    partition_key_path: str
    indexing_policy: dict[str, Any]
    default_ttl: int | None
    documents: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def expired(self, doc: Mapping[str, Any], now: float) -> bool:
        """Whether ``doc`` has outlived its ``ttl`` (or the container's default); never when TTL is off."""
        ttl = doc.get("ttl", self.default_ttl)
        if self.default_ttl is None or not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
            return False
        return now >= doc["_ts"] + ttl

    def properties(self, database_rid: str) -> dict[str, Any]:
        return {
            "id": self.name,
            "indexingPolicy": self.indexing_policy,
            "partitionKey": {"paths": [self.partition_key_path], "kind": "Hash", "version": 2},
            "defaultTtl": self.default_ttl,
            "_rid": self.rid,
            "_self": f"dbs/{database_rid}/colls/{self.rid}/",
            "_etag": f'"{self.rid}-etag"',
            "_docs": "docs/",
            "_ts": 1_700_000_000,
        }


class CosmosAccount(AzureWire):
    """The fake account; ``clock`` (seconds) stamps ``_ts`` and decides expiry."""

    def __init__(self, clock: Callable[[], float] = lambda: 1_700_000_000.0) -> None:
        super().__init__()
        self.clock = clock
        self.databases: dict[str, str] = {}  # name -> rid
        self.containers: dict[tuple[str, str], Container] = {}
        self.queries: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.batches: list[tuple[str, str, list[dict[str, Any]]]] = []
        self._sequence = itertools.count(1)

    # ------------------------------------------------------------------ provisioning (as the infrastructure does)

    def provision(
        self, database: str, container: str, partition_key_path: str, indexing_policy: dict[str, Any]
    ) -> None:
        """Create ``database``/``container`` out of band, as a deployment does before the app runs."""
        self.databases.setdefault(database, self._rid())
        self.containers[database, container] = Container(
            container, self._rid(), partition_key_path, indexing_policy, default_ttl=-1
        )

    def stored(self, database: str, container_name: str, partition: str) -> dict[str, dict[str, Any]]:
        """The live documents of one partition, by id."""
        now = self.clock()
        found = self.containers[database, container_name].documents.items()
        container = self.containers[database, container_name]
        return {key[1]: doc for key, doc in found if key[0] == partition and not container.expired(doc, now)}

    # ------------------------------------------------------------------ the REST API

    def answer(self, request: Any) -> AsyncHttpResponse:
        path = request.url.removeprefix(ENDPOINT).split("?")[0].strip("/")
        try:
            status, body, headers = self._route(request, path)
        except CosmosFault as fault:
            body = {"code": fault.code, "message": f'Message: {{"Errors":["{fault}"]}}\r\nActivityId: fake'}
            status, headers = fault.status, fault.headers
        common = {"x-ms-activity-id": "00000000-0000-0000-0000-000000000001", "x-ms-request-charge": "1.0"}
        return WireResponse(request, status, body, {**common, **headers})

    def _route(self, request: Any, path: str) -> tuple[int, Any, dict[str, str]]:
        method = request.method
        if path == "" and method == "GET":
            return 200, _ACCOUNT, {}
        if path == "dbs" and method == "POST":
            return self._create_database(_json(request))
        if match := _DB.fullmatch(path):
            return self._database(match[1])
        if path.endswith("/colls") and method == "POST":
            return self._create_container(path.split("/")[1], _json(request))
        if (match := _COLL.fullmatch(path)) and method == "GET":
            container = self._container(match[1], match[2])
            return 200, container.properties(self.databases[match[1]]), {}
        if match := _PKRANGES.fullmatch(path):
            return self._partition_key_ranges(request, self._container(match[1], match[2]))
        if (match := _DOCS.fullmatch(path)) and method == "POST":
            return self._post_documents(request, self._owner(match[1], match[2]))
        if match := _DOC.fullmatch(path):
            return self._document(request, self._owner(match[1], match[2]), match[3])
        raise CosmosFault(400, "BadRequest", f"the fake account does not serve {method} {path}")

    def _create_database(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        name = body["id"]
        if name in self.databases:
            raise CosmosFault(409, "Conflict", "Entity with the specified id already exists in the system.")
        self.databases[name] = self._rid()
        return 201, {"id": name, "_rid": self.databases[name], "_self": f"dbs/{self.databases[name]}/"}, {}

    def _database(self, name: str) -> tuple[int, Any, dict[str, str]]:
        if name not in self.databases:
            raise CosmosFault(404, "NotFound", "Resource Not Found")
        return 200, {"id": name, "_rid": self.databases[name], "_self": f"dbs/{self.databases[name]}/"}, {}

    def _create_container(self, database: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if database not in self.databases:
            raise CosmosFault(404, "NotFound", "Resource Not Found")
        if (database, body["id"]) in self.containers:
            raise CosmosFault(409, "Conflict", "Resource with specified id, name, or unique index already exists.")
        [path] = body["partitionKey"]["paths"]
        policy = body.get("indexingPolicy") or {"indexingMode": "consistent", "compositeIndexes": []}
        self.containers[database, body["id"]] = Container(body["id"], self._rid(), path, policy, body.get("defaultTtl"))
        return 201, self.containers[database, body["id"]].properties(self.databases[database]), {}

    def _container(self, database: str, name: str) -> Container:
        container = self.containers.get((database, name))
        if container is None:
            raise CosmosFault(404, "NotFound", "Resource Not Found")
        return container

    def _owner(self, database: str, name: str) -> Container:
        """The container a document operation addresses; 404 with sub-status 1003 when it does not exist."""
        container = self.containers.get((database, name))
        if container is None:
            raise CosmosFault(404, "NotFound", "Owner resource does not exist", {"x-ms-substatus": OWNER_MISSING})
        return container

    def _partition_key_ranges(self, request: Any, container: Container) -> tuple[int, Any, dict[str, str]]:
        etag = f'"{container.rid}-ranges"'
        if request.headers.get("If-None-Match") == etag:
            return 304, None, {"etag": etag}  # the change feed of ranges is drained
        ranges = [{"id": PK_RANGE_ID, "minInclusive": "", "maxExclusive": "FF", "parents": [], "status": "online",
                   "_rid": f"{container.rid}range0", "_etag": etag, "_ts": 1_700_000_000}]  # fmt: skip
        return 200, {"_rid": container.rid, "PartitionKeyRanges": ranges, "_count": 1}, {"etag": etag}

    # ------------------------------------------------------------------ documents

    def _post_documents(self, request: Any, container: Container) -> tuple[int, Any, dict[str, str]]:
        headers = request.headers
        if headers.get("x-ms-cosmos-is-query-plan-request", "").lower() == "true":
            return self._query_plan(_json(request))
        if headers.get("x-ms-documentdb-isquery", "").lower() == "true":
            return self._query(request, container)
        partition = _partition(request)
        if headers.get("x-ms-cosmos-is-batch-request", "").lower() == "true":
            return self._batch(container, partition, _json(request))
        doc = _json(request)
        if _partition_value(container, doc) != partition:
            raise CosmosFault(400, "BadRequest", "PartitionKey extracted from document doesn't match the one specified")
        key = (partition, doc["id"])
        upsert = headers.get("x-ms-documentdb-is-upsert", "").lower() == "true"
        if self._live(container, key) is not None and not upsert:
            raise CosmosFault(409, "Conflict", "Entity with the specified id already exists in the system.")
        created = self._live(container, key) is None
        stored = self._write(container, key, doc)
        return (201 if created else 200), stored, {"etag": stored["_etag"]}

    def _document(self, request: Any, container: Container, doc_id: str) -> tuple[int, Any, dict[str, str]]:
        key = (_partition(request), doc_id)
        current = self._live(container, key)
        if current is None:
            raise CosmosFault(404, "NotFound", "Entity with the specified id does not exist in the system.")
        if request.method == "GET":
            return 200, current, {"etag": current["_etag"]}
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match != current["_etag"]:
            raise CosmosFault(412, "PreconditionFailed", "One of the specified pre-condition is not met.")
        if request.method == "DELETE":
            del container.documents[key]
            return 204, None, {}
        doc = _json(request)
        if doc.get("id") != doc_id or _partition_value(container, doc) != key[0]:
            raise CosmosFault(400, "BadRequest", "the document's id or partition key differs from the request's")
        stored = self._write(container, key, doc)
        return 200, stored, {"etag": stored["_etag"]}

    def _batch(self, container: Container, partition: str, operations: list[dict[str, Any]]) -> tuple[int, Any, dict]:
        self.batches.append((container.name, partition, operations))
        staged = dict(container.documents)
        results: list[dict[str, Any]] = []
        for operation in operations:
            status, result = self._apply(container, staged, partition, operation)
            if status >= 400:
                failed: list[dict[str, Any]] = [{"statusCode": 424, "requestCharge": 0.0} for _ in operations]
                failed[len(results)] = {"statusCode": status, "requestCharge": 0.0}
                return 207, failed, {}
            results.append({"statusCode": status, "requestCharge": 1.0, **result})
        container.documents = staged  # every operation succeeded: they commit together
        return 200, results, {}

    def _apply(
        self, container: Container, staged: dict[tuple[str, str], dict[str, Any]], partition: str, op: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        kind = op["operationType"]
        doc_id = op["id"] if "id" in op else op["resourceBody"]["id"]
        key = (partition, doc_id)
        current = staged.get(key)
        if current is not None and container.expired(current, self.clock()):
            current = None
        if kind == "Create" and current is not None:
            return 409, {}
        if kind in ("Replace", "Delete") and current is None:
            return 404, {}
        if "ifMatch" in op and (current is None or current["_etag"] != op["ifMatch"]):
            return 412, {}
        if kind == "Delete":
            del staged[key]
            return 204, {}
        if _partition_value(container, op["resourceBody"]) != partition:
            return 400, {}
        staged[key] = self._stamped(op["resourceBody"])
        return (201 if current is None else 200), {"eTag": staged[key]["_etag"], "resourceBody": staged[key]}

    def _write(self, container: Container, key: tuple[str, str], doc: dict[str, Any]) -> dict[str, Any]:
        container.documents[key] = self._stamped(doc)
        return container.documents[key]

    def _stamped(self, doc: dict[str, Any]) -> dict[str, Any]:
        sequence = next(self._sequence)
        system = {"_rid": self._rid(), "_self": "docs/", "_etag": f'"{sequence:016x}"', "_attachments": "attachments/"}
        return {**doc, **system, "_ts": int(self.clock())}

    def _live(self, container: Container, key: tuple[str, str]) -> dict[str, Any] | None:
        doc = container.documents.get(key)
        return None if doc is None or container.expired(doc, self.clock()) else doc

    # ------------------------------------------------------------------ queries

    def _query(self, request: Any, container: Container) -> tuple[int, Any, dict[str, str]]:
        body = _json(request)
        self.queries.append((container.name, dict(request.headers), body))
        try:
            parsed = parse(body["query"])
        except SqlError as exc:
            raise CosmosFault(400, "BadRequest", f"Syntax error: {exc}") from None
        parameters = {parameter["name"]: parameter["value"] for parameter in body.get("parameters", [])}
        partition = request.headers.get("x-ms-documentdb-partitionkey")
        in_range = request.headers.get("x-ms-documentdb-partitionkeyrangeid") == PK_RANGE_ID
        if partition is None and request.headers.get("x-ms-documentdb-query-enablecrosspartition") != "True":
            message = "Cross partition query is required but disabled."
            raise CosmosFault(400, "BadRequest", message, {"x-ms-substatus": "1001"})
        if partition is None and not in_range and (parsed.order_by or parsed.top is not None or parsed.aggregates):
            message = "The provided cross partition query can not be directly served by the gateway."
            raise CosmosFault(400, "BadRequest", message, {"x-ms-substatus": NOT_SERVABLE_SUBSTATUS})
        self._check_composite_index(container, parsed.order_paths, [d for _, d in parsed.order_by])
        now = self.clock()
        docs = [
            doc
            for (pk, _), doc in container.documents.items()
            if not container.expired(doc, now) and (partition is None or orjson.dumps([pk]) == _compact(partition))
        ]
        results = parsed.run(docs, parameters)
        return self._page(request, results)

    def _page(self, request: Any, results: list[Any]) -> tuple[int, Any, dict[str, str]]:
        size = int(request.headers.get("x-ms-max-item-count", "-1"))
        size = 100 if size <= 0 else size
        start = _decode_continuation(request.headers.get("x-ms-continuation"))
        page = results[start : start + size]
        headers = {"x-ms-item-count": str(len(page))}
        if start + size < len(results):
            headers["x-ms-continuation"] = _encode_continuation(start + size)
        return 200, {"_rid": "coll", "Documents": page, "_count": len(page)}, headers

    def _check_composite_index(self, container: Container, paths: list[str], directions: list[str]) -> None:
        if len(paths) < 2:
            return
        wanted = [
            (_index_path(path), "ascending" if d == "ASC" else "descending")
            for path, d in zip(paths, directions, strict=True)
        ]
        flipped = [(path, "descending" if order == "ascending" else "ascending") for path, order in wanted]
        for index in container.indexing_policy.get("compositeIndexes", []):
            declared = [(entry["path"], entry.get("order", "ascending")) for entry in index]
            if declared in (wanted, flipped):
                return
        message = "The order by query does not have a corresponding composite index that it can be served from."
        raise CosmosFault(400, "BadRequest", message)

    def _query_plan(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        parsed = parse(body["query"])
        where = f"({parsed.where_text})" if parsed.where_text else ""
        if parsed.aggregates:
            rewritten = 'SELECT VALUE [{"item": COUNT(1)}] FROM c' + (f" WHERE {where}" if where else "")  # noqa: S608
        else:
            top = "" if parsed.top is None else f"TOP {parsed.top} "
            items = ", ".join(f'{{"item": {path}}}' for path in parsed.order_paths)
            flt = "{documentdb-formattableorderbyquery-filter}"
            order = ", ".join(f"{path} {d}" for path, (_, d) in zip(parsed.order_paths, parsed.order_by, strict=True))
            # The gateway's own rewrite of the query it was sent, in the shape the SDK's ORDER BY merge reads.
            select = f"SELECT {top}c._rid, [{items}] AS orderByItems, c AS payload FROM c "  # noqa: S608
            rewritten = select + f"WHERE {where + ' AND ' if where else ''}{flt} ORDER BY {order}"
        info = {
            "distinctType": "None",
            "top": parsed.top,
            "offset": None,
            "limit": None,
            "orderBy": ["Ascending" if d == "ASC" else "Descending" for _, d in parsed.order_by],
            "orderByExpressions": parsed.order_paths,
            "groupByExpressions": [],
            "groupByAliases": [],
            "aggregates": parsed.aggregates,
            "groupByAliasToAggregateType": {},
            "rewrittenQuery": rewritten,
            "hasSelectValue": parsed.value,
            "dCountInfo": None,
            "hasNonStreamingOrderBy": False,
        }
        ranges = [{"min": "", "max": "FF", "isMinInclusive": True, "isMaxInclusive": False}]
        return 200, {"partitionedQueryExecutionInfoVersion": 2, "queryInfo": info, "queryRanges": ranges}, {}

    def _rid(self) -> str:
        return base64.b64encode(next(self._sequence).to_bytes(8, "big")).decode()


_ACCOUNT = {
    "id": "castiel-test",
    "writableLocations": [{"name": "West Europe", "databaseAccountEndpoint": ENDPOINT}],
    "readableLocations": [{"name": "West Europe", "databaseAccountEndpoint": ENDPOINT}],
    "enableMultipleWriteLocations": False,
    "userConsistencyPolicy": {"defaultConsistencyLevel": "Session"},
}


def _json(request: Any) -> Any:
    return orjson.loads(request_body(request) or b"null")


def _compact(header: str) -> bytes:
    return orjson.dumps(orjson.loads(header))


def _partition(request: Any) -> str:
    header = request.headers.get("x-ms-documentdb-partitionkey")
    if header is None:
        raise CosmosFault(400, "BadRequest", "PartitionKey value must be supplied for this operation.")
    [value] = orjson.loads(header)
    return str(value)


def _partition_value(container: Container, doc: Mapping[str, Any]) -> Any:
    return doc.get(container.partition_key_path.strip("/"))


def _index_path(sql_path: str) -> str:
    """``c["a"]["b"]`` or ``c.a.b`` as the indexing policy writes it: ``/a/b``."""
    segments = re.findall(r'\["([^"]+)"\]|\.(\w+)', sql_path.removeprefix("c"))
    return "/" + "/".join(bracketed or dotted for bracketed, dotted in segments)


def _encode_continuation(offset: int) -> str:
    return orjson.dumps(
        {"token": base64.b64encode(str(offset).encode()).decode(), "range": {"min": "", "max": "FF"}}
    ).decode()


def _decode_continuation(token: str | None) -> int:
    if not token:
        return 0
    return int(base64.b64decode(orjson.loads(token)["token"]))
