"""The Cosmos DB ``DocumentStore``, on azure-cosmos's async client.

Two ways in. With ``COSMOS_KEY`` (the emulator, a key-auth account) the store opens the database and each container
on first use and creates them if absent, with the partition key path of ``models.CONTAINER_PARTITION_KEYS``, TTL
on without a default (``default_ttl=-1``, so a document's own ``ttl`` counts) and ``cosmos_query.indexing_policy``.
With a token credential (the managed identity in Azure) it creates nothing: data-plane RBAC cannot create or
replace a database or container, so ``infra/`` declares them with that same policy, and a missing one is a
``ConfigError`` naming it. ``create_container_if_not_exists`` never updates an existing container's policy either,
which is why the infrastructure, not this module, is where a new index reaches a deployed account.

Queries page by keyset continuation (``cosmos_query``), not by the SDK's tokens, which cannot resume cross-partition
ORDER BY queries. ``write_batch`` runs transactional batches (``cosmos_batch``): each run of at most 100 operations is
all or nothing; a failure stops the rest but leaves the earlier runs committed, as the port documents. ``read_many``
is one single-partition query per 1,000 ids. ``create_many`` keeps at most ``CREATE_CONCURRENCY`` creates in flight:
a serverless account answers a burst with 429s.

SDK errors are translated here, once, by the table ``ERRORS`` (``castiel.error_table``): 404 ``NotFound`` (or
``ConfigError`` when the container itself is missing), 409 ``AlreadyExists``, 412 ``PreconditionFailed``, 429
``RateLimited`` with the service's ``x-ms-retry-after-ms`` (after the SDK's own retries), 408/410/449/5xx and network
failures ``RetryableError``, 401/403 and a refused credential ``ConfigError``, any other 4xx ``PermanentError``. A
failed batch is reported by the status of the operation that failed (the others answer 424, failed dependency), and
the error names that operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.transport import AsyncHttpTransport
from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, CosmosClient
from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosResourceNotFoundError
from azure.identity.aio import DefaultAzureCredential

from castiel.backends import cosmos_batch
from castiel.backends.cosmos_query import CosmosSql, count_sql, ids_sql, indexing_policy, keyset_after, select_sql
from castiel.backends.query_plan import (
    PreparedDocument,
    SortKey,
    check_key,
    decode_continuation,
    encode_continuation,
    partition_key_field,
    prepare_document,
)
from castiel.error_table import SERVER_ERRORS, ErrorTable, Rule, headers_of
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

CREATE_CONCURRENCY = 16
"""Creates ``create_many`` keeps in flight at once."""

_SDK_FIELDS = ("_rid", "_self", "_attachments", "_lsn")
_READ_MANY_CHUNK = 1_000
_OWNER_MISSING = "1003"  # sub-status of a 404: the container (or database) itself does not exist


def _owner_missing(exc: BaseException) -> bool:
    return str(headers_of(exc).get("x-ms-substatus", "")) == _OWNER_MISSING


ERRORS = ErrorTable(
    "Cosmos DB",
    [
        Rule((AzureError,), RetryableError, "unreachable"),
        Rule((TimeoutError,), RetryableError, "timed out"),
        Rule((ClientAuthenticationError,), ConfigError, "refused the credential (COSMOS_KEY or the managed identity)"),
        Rule((HttpResponseError,), PermanentError, "answered {status}", statuses=range(400, 500)),
        Rule(
            (HttpResponseError,),
            ConfigError,
            "answered {status} (check COSMOS_KEY or the identity's data role)",
            statuses=(401, 403),
        ),
        Rule((HttpResponseError,), NotFound, "answered {status}", statuses=(404,)),
        Rule(
            (HttpResponseError,),
            ConfigError,
            "has no such container (infra/ declares every one)",
            statuses=(404,),
            when=_owner_missing,
        ),
        Rule((HttpResponseError,), AlreadyExists, "answered {status}", statuses=(409,)),
        Rule((HttpResponseError,), PreconditionFailed, "answered {status}", statuses=(412,)),
        Rule((HttpResponseError,), RateLimited, "answered {status}", statuses=(429,)),
        Rule((HttpResponseError,), RetryableError, "answered {status}", statuses=(408, 410, 449)),
        Rule((HttpResponseError,), RetryableError, "answered {status}", statuses=SERVER_ERRORS),
    ],
)
"""What each Cosmos DB failure becomes (the most specific matching rule wins)."""


class CosmosDocumentStore:
    """``DocumentStore`` on an Azure Cosmos DB for NoSQL database."""

    def __init__(
        self,
        endpoint: str,
        database: str,
        *,
        key: str | None = None,
        credential: AsyncTokenCredential | None = None,
        orderings: Mapping[str, Sequence[tuple[SortKey, ...]]] | None = None,
        transport: AsyncHttpTransport[Any, Any] | None = None,
    ) -> None:
        """Authenticate with ``key``, else ``credential`` (the process's shared one: not closed here).

        ``transport`` replaces azure-core's HTTP transport (tests answer the SDK's requests through it);
        ``orderings`` replaces rows of ``cosmos_query.ORDERINGS`` for the containers this store creates (the
        contract suite orders by its own fields).
        """
        secret: str | AsyncTokenCredential | None = key or credential
        if secret is None:
            raise ConfigError("the Cosmos DB store needs COSMOS_KEY or a token credential")
        self._client = CosmosClient(endpoint, credential=secret, transport=transport)
        self._creates = bool(key)
        self._database = self._client.get_database_client(database)
        self._orderings = orderings or {}
        self._containers: dict[str, ContainerProxy] = {}
        self._opening = asyncio.Lock()
        self._owned_credential: AsyncTokenCredential | None = None

    @classmethod
    def from_settings(cls, settings: Settings, credential: AsyncTokenCredential | None = None) -> CosmosDocumentStore:
        """The store ``COSMOS_ENDPOINT``, ``COSMOS_KEY`` and ``COSMOS_DATABASE`` describe; without a key it uses
        ``credential``, or a ``DefaultAzureCredential`` of its own (closed with the store) when none is given."""
        if settings.cosmos_endpoint is None:
            raise ConfigError("COSMOS_ENDPOINT is not set")
        if settings.cosmos_key:
            return cls(settings.cosmos_endpoint, settings.cosmos_database, key=settings.cosmos_key)
        own = None
        if credential is None:
            credential = own = DefaultAzureCredential()
        store = cls(settings.cosmos_endpoint, settings.cosmos_database, credential=credential)
        store._owned_credential = own
        return store

    async def create(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert; ``AlreadyExists`` if ``(partition key, id)`` is present."""
        prepared = prepare_document(container, doc)
        proxy = await self._container(container)
        with ERRORS.translating(f"create {container}/{prepared.doc_id}"):
            return _public(await proxy.create_item(body=prepared.body))

    async def create_many(self, container: str, docs: Sequence[Mapping[str, Any]]) -> list[CastielError | None]:
        """``create`` for each document, ``CREATE_CONCURRENCY`` at a time (Cosmos DB has no cross-partition batch);
        one outcome each."""
        prepared = [prepare_document(container, doc) for doc in docs]
        proxy = await self._container(container)
        slots = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def create(document: PreparedDocument) -> CastielError | None:
            try:
                async with slots:
                    with ERRORS.translating(f"create {container}/{document.doc_id}"):
                        await proxy.create_item(body=document.body)
            except CastielError as exc:
                return exc
            return None

        return list(await asyncio.gather(*(create(document) for document in prepared)))

    async def upsert(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert or overwrite unconditionally."""
        prepared = prepare_document(container, doc)
        proxy = await self._container(container)
        with ERRORS.translating(f"upsert {container}/{prepared.doc_id}"):
            return _public(await proxy.upsert_item(body=prepared.body))

    async def replace(self, container: str, doc: Mapping[str, Any], *, if_match: str | None = None) -> dict[str, Any]:
        """Overwrite an existing document; ``NotFound`` if absent, ``PreconditionFailed`` on a stale etag."""
        prepared = prepare_document(container, doc)
        proxy = await self._container(container)
        with ERRORS.translating(f"replace {container}/{prepared.doc_id}"):
            replaced = await proxy.replace_item(item=prepared.doc_id, body=prepared.body, **_condition(if_match))
        return _public(replaced)

    async def read(self, container: str, doc_id: str, partition_key: str) -> dict[str, Any]:
        """One document; raises ``NotFound``."""
        doc_id, partition_key = check_key(doc_id, partition_key)
        proxy = await self._container(container)
        with ERRORS.translating(f"read {container}/{doc_id}"):
            return _public(await proxy.read_item(item=doc_id, partition_key=partition_key))

    async def delete(self, container: str, doc_id: str, partition_key: str, *, if_match: str | None = None) -> None:
        """Remove; ``NotFound`` if absent, ``PreconditionFailed`` on a stale etag."""
        doc_id, partition_key = check_key(doc_id, partition_key)
        proxy = await self._container(container)
        with ERRORS.translating(f"delete {container}/{doc_id}"):
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
        sdk_operations = [cosmos_batch.sdk_operation(container, partition_key, operation) for operation in operations]
        if not sdk_operations:
            return []
        proxy = await self._container(container)
        etags: list[str | None] = []
        for start, chunk in cosmos_batch.chunks(sdk_operations):
            with _translated_batch(container, partition_key, operations, start):
                results = await proxy.execute_item_batch(batch_operations=chunk, partition_key=partition_key)
            etags += [cosmos_batch.result_etag(op, result) for op, result in zip(chunk, results, strict=True)]
        return etags

    async def query(self, container: str, query: Query) -> QueryPage:
        """One page of the documents matching ``query``, resuming after its continuation token."""
        sql = select_sql(container, query, decode_continuation(container, query))
        items = [_public(item) for item in await self._run(container, sql, query.partition_key, query.limit)]
        if query.limit is None or len(items) <= query.limit:
            return QueryPage(items)
        items = items[: query.limit]
        return QueryPage(items, encode_continuation(container, query, keyset_after(container, query, items[-1])))

    async def count(self, container: str, query: Query) -> int:
        """How many documents match ``query``'s filters and partition."""
        # The SDK merges a cross-partition COUNT into one value; sum() also reads an empty result as 0.
        return sum(int(value) for value in await self._run(container, count_sql(query), query.partition_key, None))

    async def close(self) -> None:
        """Close the client (and the credential, when this store made its own)."""
        await self._client.close()
        if self._owned_credential is not None:
            await self._owned_credential.close()

    async def _run(self, container: str, sql: CosmosSql, partition_key: str | None, limit: int | None) -> list[Any]:
        proxy = await self._container(container)
        with ERRORS.translating(f"query {container}"):
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
        """The container's client, opened once: with key auth created first if absent, else checked to exist."""
        proxy = self._containers.get(name)
        if proxy is not None:
            return proxy
        pk_field = partition_key_field(name)
        async with self._opening:
            if name not in self._containers:
                with ERRORS.translating(f"open container {name}"):
                    self._containers[name] = await (self._create(name, pk_field) if self._creates else self._find(name))
            return self._containers[name]

    async def _create(self, name: str, pk_field: str) -> ContainerProxy:
        database = await self._client.create_database_if_not_exists(self._database.id)
        return await database.create_container_if_not_exists(
            id=name,
            partition_key=PartitionKey(path=f"/{pk_field}"),
            default_ttl=-1,
            indexing_policy=indexing_policy(name, self._orderings.get(name)),
        )

    async def _find(self, name: str) -> ContainerProxy:
        """The container the infrastructure made; reading it once tells a missing one from a missing document."""
        proxy = self._database.get_container_client(name)
        try:
            await proxy.read()
        except CosmosResourceNotFoundError as exc:
            where = f"{self._database.id}/{name}"
            raise ConfigError(f"Cosmos DB container {where} does not exist (infra/ declares every one)") from exc
        return proxy


@contextmanager
def _translated_batch(
    container: str, partition_key: str, operations: Sequence[BatchOperation], start: int
) -> Iterator[None]:
    """``ERRORS.translating``, with a failed operation of the batch starting at ``start`` named in the error."""
    try:
        with ERRORS.translating(f"write a batch to {container}/{partition_key}"):
            yield
    except CastielError as error:
        failure = error.__cause__
        if not isinstance(failure, CosmosBatchOperationError):
            raise
        action = cosmos_batch.failed_operation(container, partition_key, operations, start + (failure.error_index or 0))
        translated = ERRORS.translate(failure, action)
        raise (translated or error) from failure


def _condition(if_match: str | None) -> dict[str, Any]:
    """The SDK's keywords for an etag-conditional write (none when unconditional)."""
    if if_match is None:
        return {}
    return {"etag": if_match, "match_condition": MatchConditions.IfNotModified}


def _public(item: Mapping[str, Any]) -> dict[str, Any]:
    """The document as the port returns it: with ``_etag`` and ``_ts``, without the SDK's other system fields."""
    return {name: value for name, value in item.items() if name not in _SDK_FIELDS}
