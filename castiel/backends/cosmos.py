"""The Cosmos DB ``DocumentStore``, on azure-cosmos's async client.

Key auth when a key is configured (the emulator, local runs), otherwise ``DefaultAzureCredential`` (a managed
identity in Azure). Containers are opened on first use and created if absent, with the partition key path of
``models.CONTAINER_PARTITION_KEYS``, TTL enabled without a default (``default_ttl=-1``, so a document's own ``ttl``
counts) and the composite indexes its queries order by. Queries page by keyset continuation (see
``cosmos_query``), not by the SDK's tokens, which cannot resume cross-partition ORDER BY queries.

``write_batch`` runs transactional batches (``execute_item_batch``). Cosmos DB caps one at 100 operations and its
payload (the SDK documents 1.2 MB), so a longer batch is committed as consecutive transactions of at most 100
operations and 1 MB of documents: each is all or nothing; a failure stops the rest but leaves the earlier ones
committed, as the port documents. ``read_many`` is one single-partition query per 1,000 ids.

SDK errors are translated here, once: 404 ``NotFound``, 409 ``AlreadyExists``, 412 ``PreconditionFailed``,
429 ``RateLimited``, 408/410/449/5xx and network failures ``RetryableError``, 401/403 ``ConfigError``, any other
4xx ``PermanentError``. A failed batch is reported by the status of the operation that failed (the others answer
424, failed dependency), and the error names that operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.transport import AsyncHttpTransport
from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, CosmosClient, DatabaseProxy
from azure.cosmos.exceptions import CosmosBatchOperationError
from azure.identity.aio import DefaultAzureCredential

from castiel.backends.cosmos_query import CosmosSql, count_sql, ids_sql, indexing_policy, select_sql
from castiel.backends.query_plan import (
    PreparedDocument,
    SortKey,
    check_key,
    decode_continuation,
    encode_continuation,
    partition_key_field,
    prepare_document,
    sort_keys,
    value_at,
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
from castiel.ports import BatchOperation, Query, QueryPage
from castiel.settings import Settings

_SDK_FIELDS = ("_rid", "_self", "_attachments", "_lsn")
_BATCH_MAX_OPERATIONS = 100  # Cosmos DB's limit per transactional batch
_BATCH_MAX_BYTES = 1_000_000  # under the SDK's documented 1.2 MB, leaving room for the operations' framing
_READ_MANY_CHUNK = 1_000
_RETRY_AFTER_HEADER = "x-ms-retry-after-ms"
_RETRYABLE_STATUS = frozenset({408, 410, 449})


class CosmosDocumentStore:
    """``DocumentStore`` on an Azure Cosmos DB for NoSQL database."""

    def __init__(
        self,
        endpoint: str,
        database: str,
        *,
        key: str | None = None,
        orderings: Mapping[str, Sequence[tuple[SortKey, ...]]] | None = None,
        transport: AsyncHttpTransport[Any, Any] | None = None,
    ) -> None:
        """``transport`` replaces azure-core's HTTP transport (tests answer the SDK's requests through it);
        ``orderings`` replaces rows of ``cosmos_query.ORDERINGS`` for the containers this store creates (the
        contract suite orders by its own fields)."""
        self._credential: DefaultAzureCredential | None = None
        if key:
            self._client = CosmosClient(endpoint, credential=key, transport=transport)
        else:
            self._credential = DefaultAzureCredential()
            self._client = CosmosClient(endpoint, credential=self._credential, transport=transport)
        self._database_name = database
        self._orderings = orderings or {}
        self._database: DatabaseProxy | None = None
        self._containers: dict[str, ContainerProxy] = {}
        self._opening = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> CosmosDocumentStore:
        """The store ``COSMOS_ENDPOINT``, ``COSMOS_KEY`` and ``COSMOS_DATABASE`` describe."""
        if settings.cosmos_endpoint is None:
            raise ConfigError("COSMOS_ENDPOINT is not set")
        return cls(settings.cosmos_endpoint, settings.cosmos_database, key=settings.cosmos_key)

    async def create(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert; ``AlreadyExists`` if ``(partition key, id)`` is present."""
        prepared = prepare_document(container, doc)
        proxy = await self._container(container)
        with _translated(f"create {container}/{prepared.doc_id}"):
            return _public(await proxy.create_item(body=prepared.body))

    async def create_many(self, container: str, docs: Sequence[Mapping[str, Any]]) -> list[CastielError | None]:
        """``create`` for each document, concurrently (Cosmos DB has no cross-partition batch); one outcome each."""
        prepared = [prepare_document(container, doc) for doc in docs]
        proxy = await self._container(container)

        async def create(document: PreparedDocument) -> CastielError | None:
            try:
                with _translated(f"create {container}/{document.doc_id}"):
                    await proxy.create_item(body=document.body)
            except CastielError as exc:
                return exc
            return None

        return list(await asyncio.gather(*(create(document) for document in prepared)))

    async def upsert(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert or overwrite unconditionally."""
        prepared = prepare_document(container, doc)
        proxy = await self._container(container)
        with _translated(f"upsert {container}/{prepared.doc_id}"):
            return _public(await proxy.upsert_item(body=prepared.body))

    async def replace(self, container: str, doc: Mapping[str, Any], *, if_match: str | None = None) -> dict[str, Any]:
        """Overwrite an existing document; ``NotFound`` if absent, ``PreconditionFailed`` on a stale etag."""
        prepared = prepare_document(container, doc)
        proxy = await self._container(container)
        with _translated(f"replace {container}/{prepared.doc_id}"):
            replaced = await proxy.replace_item(item=prepared.doc_id, body=prepared.body, **_condition(if_match))
        return _public(replaced)

    async def read(self, container: str, doc_id: str, partition_key: str) -> dict[str, Any]:
        """One document; raises ``NotFound``."""
        doc_id, partition_key = check_key(doc_id, partition_key)
        proxy = await self._container(container)
        with _translated(f"read {container}/{doc_id}"):
            return _public(await proxy.read_item(item=doc_id, partition_key=partition_key))

    async def delete(self, container: str, doc_id: str, partition_key: str, *, if_match: str | None = None) -> None:
        """Remove; ``NotFound`` if absent, ``PreconditionFailed`` on a stale etag."""
        doc_id, partition_key = check_key(doc_id, partition_key)
        proxy = await self._container(container)
        with _translated(f"delete {container}/{doc_id}"):
            await proxy.delete_item(item=doc_id, partition_key=partition_key, **_condition(if_match))

    async def read_many(self, container: str, partition_key: str, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The documents of one partition with these ids (missing ones absent): one query per 1,000 ids."""
        wanted = list(dict.fromkeys(check_key(doc_id, partition_key)[0] for doc_id in doc_ids))
        partition_key_field(container)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), _READ_MANY_CHUNK):
            sql = ids_sql(wanted[start : start + _READ_MANY_CHUNK])
            for item in await self._run(container, sql, partition_key, None):
                found[item["id"]] = _public(item)
        return found

    async def write_batch(
        self, container: str, partition_key: str, operations: Sequence[BatchOperation]
    ) -> list[str | None]:
        """``operations`` in order as transactional batches of at most 100 operations (see the module docstring)."""
        sdk_operations = [_sdk_operation(container, partition_key, operation) for operation in operations]
        if not sdk_operations:
            return []
        proxy = await self._container(container)
        etags: list[str | None] = []
        for start, chunk in _batch_chunks(sdk_operations):
            with _translated_batch(container, partition_key, operations, start):
                results = await proxy.execute_item_batch(batch_operations=chunk, partition_key=partition_key)
            etags += [_result_etag(operation, result) for operation, result in zip(chunk, results, strict=True)]
        return etags

    async def query(self, container: str, query: Query) -> QueryPage:
        """One page of the documents matching ``query``, resuming after its continuation token."""
        sql = select_sql(container, query, decode_continuation(container, query))
        items = [_public(item) for item in await self._run(container, sql, query.partition_key, query.limit)]
        if query.limit is None or len(items) <= query.limit:
            return QueryPage(items)
        items = items[: query.limit]
        after = [value_at(items[-1], path) for path, _ in sort_keys(container, query)]
        return QueryPage(items, encode_continuation(container, query, after))

    async def count(self, container: str, query: Query) -> int:
        """How many documents match ``query``'s filters and partition."""
        # The SDK merges a cross-partition COUNT into one value; sum() also reads an empty result as 0.
        return sum(int(value) for value in await self._run(container, count_sql(query), query.partition_key, None))

    async def close(self) -> None:
        """Close the client (and the credential this store created)."""
        await self._client.close()
        if self._credential is not None:
            await self._credential.close()

    async def _run(self, container: str, sql: CosmosSql, partition_key: str | None, limit: int | None) -> list[Any]:
        proxy = await self._container(container)
        with _translated(f"query {container}"):
            # No partition key means every partition in the async client; it has no enable_cross_partition_query
            # (azure-core would hand that keyword to aiohttp, which refuses it: Azure/azure-sdk-for-python#30735).
            results = proxy.query_items(
                query=sql.text,
                parameters=sql.parameters,
                partition_key=partition_key,
                max_item_count=None if limit is None else limit + 1,
            )
            return [item async for item in results]

    async def _container(self, name: str) -> ContainerProxy:
        """The container's client, creating the database and container on first use if they are absent."""
        proxy = self._containers.get(name)
        if proxy is not None:
            return proxy
        pk_field = partition_key_field(name)
        async with self._opening:
            if name not in self._containers:
                with _translated(f"open container {name}"):
                    if self._database is None:
                        self._database = await self._client.create_database_if_not_exists(self._database_name)
                    self._containers[name] = await self._database.create_container_if_not_exists(
                        id=name,
                        partition_key=PartitionKey(path=f"/{pk_field}"),
                        default_ttl=-1,
                        indexing_policy=indexing_policy(name, self._orderings.get(name)),
                    )
            return self._containers[name]


def translate_error(exc: AzureError, action: str) -> CastielError:
    """The Castiel error for an azure-core / azure-cosmos failure of ``action``."""
    if isinstance(exc, ClientAuthenticationError):
        return ConfigError(f"Cosmos DB refused the credential to {action}: {_one_line(exc.message)}")
    if not isinstance(exc, HttpResponseError) or exc.status_code is None:
        return RetryableError(f"Cosmos DB unreachable to {action}: {_one_line(exc.message)}")
    status = exc.status_code
    message = f"Cosmos DB {status} on {action}: {_one_line(exc.message)}"
    if status == 404:
        return NotFound(message)
    if status == 409:
        return AlreadyExists(message)
    if status == 412:
        return PreconditionFailed(message)
    if status == 429:
        return RateLimited(message, retry_after=_retry_after_seconds(exc))
    if status in _RETRYABLE_STATUS or status >= 500:
        return RetryableError(message)
    if status in (401, 403):
        return ConfigError(message)
    return PermanentError(message)


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except AzureError as exc:
        raise translate_error(exc, action) from exc
    except TimeoutError as exc:
        raise RetryableError(f"Cosmos DB timed out to {action}") from exc


SdkOperation = tuple[str, tuple[Any, ...], dict[str, Any]]
"""One operation as ``execute_item_batch`` takes it: ``(kind, args, kwargs)``."""


def _sdk_operation(container: str, partition_key: str, operation: BatchOperation) -> SdkOperation:
    """``operation`` checked (its document in the batch's partition) and spelled for the SDK."""
    options = {} if operation.if_match is None else {"if_match_etag": operation.if_match}
    if operation.kind == "delete":
        doc_id, _ = check_key(operation.doc_id, partition_key)
        return ("delete", (doc_id,), options)
    if operation.doc is None:
        raise ValueError(f"a {operation.kind} needs a document")
    prepared = prepare_document(container, operation.doc)
    if prepared.partition_key != partition_key:
        raise ValueError(
            f"{container}/{prepared.partition_key}/{prepared.doc_id} is not in the batch's partition {partition_key!r}"
        )
    if operation.kind == "replace":
        return ("replace", (prepared.doc_id, prepared.body), options)
    return (operation.kind, (prepared.body,), options)


def _batch_chunks(operations: Sequence[SdkOperation]) -> Iterator[tuple[int, list[SdkOperation]]]:
    """``(offset, operations)`` runs of at most 100 operations and about 1 MB of documents, in order."""
    start, size = 0, 0
    chunk: list[SdkOperation] = []
    for position, operation in enumerate(operations):
        body = operation[1][-1]
        weight = len(orjson.dumps(body)) if isinstance(body, dict) else len(body)
        if chunk and (len(chunk) == _BATCH_MAX_OPERATIONS or size + weight > _BATCH_MAX_BYTES):
            yield start, chunk
            start, chunk, size = position, [], 0
        chunk.append(operation)
        size += weight
    yield start, chunk


def _result_etag(operation: SdkOperation, result: Mapping[str, Any]) -> str | None:
    if operation[0] == "delete":
        return None
    etag = result.get("eTag") or (result.get("resourceBody") or {}).get("_etag")
    return None if etag is None else str(etag)


@contextmanager
def _translated_batch(
    container: str, partition_key: str, operations: Sequence[BatchOperation], start: int
) -> Iterator[None]:
    """``_translated``, and a failed operation of the batch starting at ``start`` named in the error."""
    with _translated(f"write a batch to {container}/{partition_key}"):
        try:
            yield
        except CosmosBatchOperationError as exc:
            position = start + (exc.error_index or 0)
            failed = operations[position]
            doc_id = failed.doc_id or (failed.doc or {}).get("id")
            action = f"apply batch operation {position} ({failed.kind} {doc_id}) to {container}/{partition_key}"
            raise translate_error(exc, action) from exc


def _condition(if_match: str | None) -> dict[str, Any]:
    """The SDK's keywords for an etag-conditional write (none when unconditional)."""
    if if_match is None:
        return {}
    return {"etag": if_match, "match_condition": MatchConditions.IfNotModified}


def _public(item: Mapping[str, Any]) -> dict[str, Any]:
    """The document as the port returns it: with ``_etag`` and ``_ts``, without the SDK's other system fields."""
    return {name: value for name, value in item.items() if name not in _SDK_FIELDS}


def _retry_after_seconds(exc: HttpResponseError) -> float:
    headers = getattr(exc, "headers", None) or {}
    try:
        return float(headers[_RETRY_AFTER_HEADER]) / 1000
    except (KeyError, TypeError, ValueError):
        return 1.0


def _one_line(message: str | None, limit: int = 300) -> str:
    # SDK messages span lines (status, JSON body, activity id); a log line wants one.
    return " ".join((message or "no message").split())[:limit]
