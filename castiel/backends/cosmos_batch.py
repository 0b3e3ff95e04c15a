"""Transactional batches for the Cosmos store: the port's ``BatchOperation``s spelled for ``execute_item_batch``, cut
into runs Cosmos DB accepts, and a failed run reported by the operation that failed. No I/O.

Cosmos DB caps one transactional batch at 100 operations and its payload (the SDK documents 1.2 MB), so a longer
batch is committed as consecutive transactions of at most 100 operations and 1 MB of documents.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from castiel.backends.query_plan import check_key, prepare_document
from castiel.ports import BatchOperation

MAX_OPERATIONS = 100  # Cosmos DB's limit per transactional batch
MAX_BYTES = 1_000_000  # under the SDK's documented 1.2 MB, leaving room for the operations' framing

SdkOperation = tuple[str, tuple[Any, ...], dict[str, Any]]
"""One operation as ``execute_item_batch`` takes it: ``(kind, args, kwargs)``."""


def sdk_operation(container: str, partition_key: str, operation: BatchOperation) -> SdkOperation:
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


def chunks(operations: Sequence[SdkOperation]) -> Iterator[tuple[int, list[SdkOperation]]]:
    """``(offset, operations)`` runs of at most 100 operations and about 1 MB of documents, in order."""
    start, size = 0, 0
    chunk: list[SdkOperation] = []
    for position, operation in enumerate(operations):
        body = operation[1][-1]
        weight = len(orjson.dumps(body)) if isinstance(body, dict) else len(body)
        if chunk and (len(chunk) == MAX_OPERATIONS or size + weight > MAX_BYTES):
            yield start, chunk
            start, chunk, size = position, [], 0
        chunk.append(operation)
        size += weight
    yield start, chunk


def result_etag(operation: SdkOperation, result: Mapping[str, Any]) -> str | None:
    """The etag a batch operation's result reports (None for a delete)."""
    if operation[0] == "delete":
        return None
    etag = result.get("eTag") or (result.get("resourceBody") or {}).get("_etag")
    return None if etag is None else str(etag)


def failed_operation(container: str, partition_key: str, operations: Sequence[BatchOperation], position: int) -> str:
    """The action to name in the error of a batch whose operation ``position`` failed."""
    failed = operations[position]
    doc_id = failed.doc_id or (failed.doc or {}).get("id")
    return f"apply batch operation {position} ({failed.kind} {doc_id}) to {container}/{partition_key}"
