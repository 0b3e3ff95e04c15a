"""Finding what a command names, by tenant and id or by id alone across tenants, and creating it.

Errors name what the operator typed (``connection 'nope' of tenant 't1' not found``), never a storage path.
"""

from __future__ import annotations

from typing import Any, TypeVar

import typer

from castiel.errors import AlreadyExists, NotFound
from castiel.models import TenantDocument
from castiel.ports import DocumentStore, Filter, Query

D = TypeVar("D", bound=TenantDocument)


async def read_named(store: DocumentStore, model: type[D], what: str, doc_id: str, tenant: str) -> D:
    """The ``model`` document ``doc_id`` of ``tenant``; ``NotFound`` naming ``what`` (``connection``, ``task``)."""
    return model.model_validate(await read_document(store, model.container, what, doc_id, tenant))


async def find_named(store: DocumentStore, model: type[D], what: str, doc_id: str, tenant: str) -> D:
    """Like ``read_named``, or by id alone across every tenant when ``tenant`` is empty.

    Documents are partitioned by tenant, so an id alone may name one in several tenants: that is a usage error
    asking for ``--tenant``, never a guess.
    """
    return model.model_validate(await find_document(store, model.container, what, doc_id, tenant))


async def read_document(store: DocumentStore, container: str, what: str, doc_id: str, tenant: str) -> dict[str, Any]:
    """``read_named`` for a container whose documents are of several kinds: the stored document as it is."""
    try:
        return await store.read(container, doc_id, tenant)
    except NotFound:
        raise NotFound(f"{what} {doc_id!r} of tenant {tenant!r} not found") from None


async def find_document(store: DocumentStore, container: str, what: str, doc_id: str, tenant: str) -> dict[str, Any]:
    """``find_named`` for a container whose documents are of several kinds: the stored document as it is."""
    if tenant:
        return await read_document(store, container, what, doc_id, tenant)
    page = await store.query(container, Query(filters=(Filter("id", "==", doc_id),)))
    if not page.items:
        raise NotFound(f"{what} {doc_id!r} not found")
    if len(page.items) > 1:
        tenants = ", ".join(sorted(str(doc["tenantId"]) for doc in page.items))
        raise typer.BadParameter(f"{what} {doc_id!r} exists in tenants {tenants}: name one with --tenant")
    return page.items[0]


async def create_named(store: DocumentStore, document: TenantDocument, what: str) -> dict[str, Any]:
    """Store a new ``document``; ``AlreadyExists`` naming ``what`` when its id is taken in its tenant."""
    try:
        return await store.create(document.container, document.to_doc())
    except AlreadyExists:
        raise AlreadyExists(f"{what} {document.id!r} of tenant {document.tenant_id!r} already exists") from None
