"""Removing a connection: refused while tasks, webhook registrations or credentials use it, unless cascading.

A cascade removes them first (registrations through ``WebhookAdmin``, which deletes their secrets as ``webhooks
remove`` does; credentials value and metadata), and the connection last, so an interrupted cascade is finished by
running it again.
"""

from __future__ import annotations

from castiel.cli.common import with_secrets
from castiel.cli.lookup import find_named
from castiel.cli.webhooks import admin_on
from castiel.credentials.records import CredentialRecords, list_credentials
from castiel.errors import PreconditionFailed
from castiel.models import Connection, CredentialMetadata, SyncTask, TaskStatus, WebhookRegistration
from castiel.ports import DocumentStore, Filter, Query, SecretStore
from castiel.telemetry import log_event
from castiel.webhooks.admin import WebhookAdmin
from castiel.webhooks.registrations import WebhookRegistrations


async def remove_connection(store: DocumentStore, connection_id: str, tenant: str, *, cascade: bool) -> str:
    """Delete a connection (by id, in ``tenant`` or found across tenants when empty); refused while tasks, webhook
    registrations or credentials use it, unless ``cascade``: then they go first. Returns what was removed."""
    connection = await find_named(store, Connection, "connection", connection_id, tenant)
    name = f"connection {connection.id!r} of tenant {connection.tenant_id!r}"
    tasks, registrations = await _users(store, connection)
    credentials = await _credentials(store, connection, registrations)
    if (tasks or registrations or credentials) and not cascade:
        users = _describe(tasks, registrations, credentials)
        raise PreconditionFailed(f"{name} is used by {users}: remove them first, or pass --cascade")
    running = [task.id for task in tasks if task.status is TaskStatus.RUNNING]
    if running:
        raise PreconditionFailed(f"{name} has running tasks ({', '.join(running)}): pause them first")
    if registrations:
        await with_secrets(lambda secrets: _remove_registrations(store, secrets, registrations))
    if credentials:
        await with_secrets(lambda secrets: _remove_credentials(CredentialRecords(store, secrets), credentials))
    try:
        for task in tasks:
            await store.delete(SyncTask.container, task.id, task.tenant_id, if_match=task.etag)
        await store.delete(Connection.container, connection.id, connection.tenant_id, if_match=connection.etag)
    except PreconditionFailed:
        raise PreconditionFailed(f"{name} or one of its tasks changed meanwhile: run the command again") from None
    used = tasks or registrations or credentials
    return f"removed {name}" + (f" and its {_describe(tasks, registrations, credentials)}" if used else "")


async def _users(store: DocumentStore, connection: Connection) -> tuple[list[SyncTask], list[WebhookRegistration]]:
    """The tasks and webhook registrations of ``connection``."""
    query = Query(partition_key=connection.tenant_id, filters=(Filter("connectionId", "==", connection.id),))
    tasks = [SyncTask.model_validate(doc) for doc in (await store.query(SyncTask.container, query)).items]
    registrations = [
        registration
        for registration in await WebhookRegistrations(store).list(connection.tenant_id)
        if registration.connection_id == connection.id
    ]
    return tasks, registrations


async def _remove_registrations(
    store: DocumentStore, secrets: SecretStore, registrations: list[WebhookRegistration]
) -> None:
    async def remove_each(admin: WebhookAdmin) -> None:
        for registration in registrations:
            await admin.remove(registration.id)

    await admin_on(store, secrets, remove_each)


async def _credentials(
    store: DocumentStore, connection: Connection, registrations: list[WebhookRegistration]
) -> list[CredentialMetadata]:
    """The credentials that authenticate ``connection`` (its own, and any other still naming it), but not the
    signing secrets of its registrations: removing a registration removes its secret."""
    signing = {registration.credential_id for registration in registrations}
    return [
        credential
        for credential in await list_credentials(store, connection.tenant_id)
        if credential.id not in signing
        and (credential.connection_id == connection.id or credential.id == connection.credential_id)
    ]


async def _remove_credentials(records: CredentialRecords, credentials: list[CredentialMetadata]) -> None:
    for credential in credentials:
        await records.delete(credential)
        log_event("credentials.removed", credential_id=credential.id, reason="connection removed")


def _describe(
    tasks: list[SyncTask], registrations: list[WebhookRegistration], credentials: list[CredentialMetadata]
) -> str:
    """``task(s) t1, t2 and webhook registration(s) r1 and credential(s) c1``: what uses a connection, by id."""
    parts = [f"task(s) {', '.join(task.id for task in tasks)}"] if tasks else []
    if registrations:
        parts.append(f"webhook registration(s) {', '.join(registration.id for registration in registrations)}")
    if credentials:
        parts.append(f"credential(s) {', '.join(credential.id for credential in credentials)}")
    return " and ".join(parts)
