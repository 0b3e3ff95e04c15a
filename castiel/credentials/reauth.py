"""A dead grant and its recovery: the credential, its connections and their sync tasks change status together.

``mark_needs_reauth`` moves the credential to ``needs_reauth`` with an etag-conditional write — of concurrent
callers exactly one makes the transition, and only that one raises the alert — then its connections to
``needs_reauth``, and their sync tasks too, so the scheduler stops queueing work that can only fail. ``restore`` is
the way back once a person has re-authorised: connections ``active``, their ``needs_reauth`` tasks ``pending`` and due
now.
"""

from __future__ import annotations

from datetime import datetime

from castiel.clock import Clock, now_utc, system_clock
from castiel.credentials.alerts import AlertCallback, CredentialAlert, CredentialAlertKind, log_credential_alert
from castiel.errors import NotFound, PreconditionFailed
from castiel.models import Connection, CredentialMetadata, CredentialStatus, SyncTask, TaskStatus
from castiel.ports import DocumentStore, Filter, Query
from castiel.telemetry import log_event

NEEDS_REAUTH = "needs_reauth"
ACTIVE = "active"
_PAUSABLE = (TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.PAUSED, TaskStatus.FAILED)
_BATCH = 100
_MAX_ROUNDS = 100


class Reauthorizations:
    """Status changes for credentials whose grant died or came back."""

    def __init__(
        self, store: DocumentStore, *, clock: Clock = system_clock, alert: AlertCallback = log_credential_alert
    ) -> None:
        self._store = store
        self._clock = clock
        self._alert = alert

    async def mark_needs_reauth(self, credential: CredentialMetadata, reason: str) -> bool:
        """Mark the credential, its connections and their tasks; True when this call made the transition."""
        update = {"status": CredentialStatus.NEEDS_REAUTH, "status_reason": reason}
        try:
            await self._store.replace(
                CredentialMetadata.container, credential.model_copy(update=update).to_doc(), if_match=credential.etag
            )
        except PreconditionFailed:
            log_event("credentials.reauth_already_marked", credential_id=credential.id)
            return False
        connection_ids = await self._set_connections(credential, NEEDS_REAUTH)
        paused = await self._move_tasks(credential.tenant_id, connection_ids, _PAUSABLE, TaskStatus.NEEDS_REAUTH)
        log_event(
            "credentials.needs_reauth", credential_id=credential.id, connections=len(connection_ids), tasks=paused
        )
        self._alert(
            CredentialAlert(
                CredentialAlertKind.NEEDS_REAUTH,
                credential.tenant_id,
                credential.id,
                f"{reason}; re-authorise with `castiel credentials connect --tenant {credential.tenant_id} "
                f"--connection {credential.connection_id}`",
                tuple(connection_ids),
            )
        )
        return True

    async def restore(self, credential: CredentialMetadata) -> int:
        """After re-authorisation: its connections active again, their waiting tasks pending and due now."""
        connection_ids = await self._set_connections(credential, ACTIVE)
        resumed = await self._move_tasks(
            credential.tenant_id, connection_ids, (TaskStatus.NEEDS_REAUTH,), TaskStatus.PENDING
        )
        if resumed:
            log_event("credentials.reauthorised", credential_id=credential.id, tasks=resumed)
        return resumed

    async def _set_connections(self, credential: CredentialMetadata, status: str) -> list[str]:
        """Set every connection using the credential to ``status``; their ids (all of them, changed or not)."""
        ids: list[str] = []
        for connection in await connections_using(self._store, credential):
            ids.append(connection.id)
            if connection.status == status:
                continue
            try:
                await self._store.replace(
                    Connection.container,
                    connection.model_copy(update={"status": status}).to_doc(),
                    if_match=connection.etag,
                )
            except (PreconditionFailed, NotFound):
                log_event("credentials.connection_changed", connection_id=connection.id)
        return ids

    async def _move_tasks(
        self, tenant_id: str, connection_ids: list[str], source: tuple[TaskStatus, ...], target: TaskStatus
    ) -> int:
        """Move the connections' tasks in ``source`` states to ``target``; re-queries until a round moves none
        (moved tasks drop out of the query; one that a worker changed meanwhile is tried again next round)."""
        if not connection_ids:
            return 0
        query = Query(
            filters=(
                Filter("connectionId", "in", tuple(connection_ids)),
                Filter("status", "in", tuple(status.value for status in source)),
            ),
            partition_key=tenant_id,
            limit=_BATCH,
        )
        moved = 0
        for _ in range(_MAX_ROUNDS):
            page = await self._store.query(SyncTask.container, query)
            now = now_utc(self._clock)
            moved_here = sum([await self._move(SyncTask.model_validate(doc), target, now) for doc in page.items])
            moved += moved_here
            if moved_here == 0:
                break
        return moved

    async def _move(self, task: SyncTask, target: TaskStatus, now: datetime) -> int:
        update: dict[str, object] = {"status": target, "status_changed_at": now}
        if target is TaskStatus.PENDING:
            update.update(next_run_at=now, last_error=None)
        else:
            update["last_error"] = "the connection's credential needs re-authorisation"
        try:
            await self._store.replace(SyncTask.container, task.model_copy(update=update).to_doc(), if_match=task.etag)
        except (PreconditionFailed, NotFound):
            # The worker moved it meanwhile; the next round of the query sees its new state.
            return 0
        return 1


async def connections_using(store: DocumentStore, credential: CredentialMetadata) -> list[Connection]:
    """The tenant's connections that name ``credential`` as theirs."""
    page = await store.query(
        Connection.container,
        Query(filters=(Filter("credentialId", "==", credential.id),), partition_key=credential.tenant_id),
    )
    return [Connection.model_validate(doc) for doc in page.items]
