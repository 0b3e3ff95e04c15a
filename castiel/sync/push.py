"""One shard pushed to one target connection (DESIGN §5, the two-way model).

Per target: read the shard and plan against the target's last agreed state (``echo.plan_push``: nothing when it is
in step), write through its adapter, record what it now has (``ledger.PushLedger``).

Before an update the target's record is read as it is now. If it changed since it was last agreed (an edit there
whose webhook has not been processed, or a tool without webhooks), that change is merged into the shard first, under
the target's own conflict strategy — recorded as a conflict where it collides — and the plan is made again: a push
never silently overwrites a change it has not seen. The merge is reported (``Pushed.merged``) so that it goes on to
the other connections.

Creates are guarded against duplicates three ways: the engine never re-sends a create the provider may have applied
(``adapters.engine``); the target's state gets ``pendingCreateAt`` before the POST (etag-conditional: of two racing
workers, one creates, the other waits); a create that failed for sure (a 4xx, a refusal before sending) clears it,
one whose outcome is unknown (a 5xx, a timeout, a crash) keeps it, and no second create goes out for
``confirm_after`` — during which the provider's own report of the record (its webhook) is adopted as this shard's
(``ingest.py``), confirming the create for good.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from adapters.base import AdapterRegistry, BaseAdapter
from adapters.records import Change, PushResult, PushStatus, Record
from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import CastielError, Deferred, NotFound, PreconditionFailed, RateLimited, RetryableError
from castiel.models import Connection, Operation, TargetOutcome
from castiel.sync.canonical import fingerprint
from castiel.sync.echo import PushPlan, Skip, plan_push
from castiel.sync.ledger import SHARDS, WRITE_ATTEMPTS, PushLedger
from castiel.sync.targets import Target
from castiel.telemetry import log_event

_IN_FLIGHT_RECHECK_SECONDS = 5.0

Status = Literal["pushed", "skipped", "failed", "waiting"]
Merge = Callable[[Connection, Record], Awaitable[str | None]]
"""Merges a record of a connection into its shard; the merged record's fingerprint when the shard changed."""


@dataclass(frozen=True, slots=True)
class Pushed:
    """One target's outcome; the error that makes the change come again (None: done with this target); and the
    fingerprint of a change of the target's own that was merged on the way (None: there was none)."""

    outcome: TargetOutcome
    retry: CastielError | None = None
    merged: str | None = None


class Pusher:
    """Pushes shards to targets through the adapters."""

    def __init__(
        self,
        adapters: AdapterRegistry,
        ledger: PushLedger,
        merge: Merge,
        *,
        confirm_after: timedelta,
        clock: Clock = system_clock,
    ) -> None:
        self._adapters = adapters
        self._ledger = ledger
        self._merge = merge
        self._confirm_after = confirm_after
        self._clock = clock

    async def push(
        self, tenant_id: str, shard_id: str, target: Target, *, gone: bool, propagate_deletes: bool
    ) -> Pushed:
        """Bring ``target`` in step with the shard (see the module docstring)."""
        merged: str | None = None
        checked = False
        for _ in range(WRITE_ATTEMPTS):
            shard = await self._ledger.read(SHARDS, shard_id, tenant_id)
            if shard is None:
                return _outcome(target, "skipped", reason="the shard no longer exists", merged=merged)
            try:
                plan = plan_push(shard, target, gone=gone, propagate_deletes=propagate_deletes)
            except ValueError as exc:
                return _outcome(target, "failed", reason=f"cannot be written through its mapping: {exc}")
            if isinstance(plan, Skip):
                return _outcome(target, "skipped", reason=plan.reason, merged=merged)
            if plan.operation is Operation.CREATE:
                waiting = self._in_flight(shard, target)
                if waiting is not None:
                    return waiting
                try:
                    await self._ledger.mark_pending(shard, target, plan)
                except PreconditionFailed:
                    continue
            elif plan.operation is Operation.UPDATE and not checked:
                checked = True
                try:
                    current = await self._adapter(target).read(
                        target.connection, plan.entity_type, str(plan.external_id), plan.address
                    )
                except CastielError as exc:
                    return _failure(target, plan, exc)
                if current is None or current.deleted:
                    await self._ledger.gone(tenant_id, shard_id, target)
                    return _outcome(target, "skipped", plan.operation, plan.external_id, "deleted on this connection")
                if _changed_there(shard, target, current):
                    merged = await self._merge(target.connection, current)
                    continue
            pushed = await self._send(tenant_id, shard_id, target, plan)
            return Pushed(pushed.outcome, pushed.retry, merged)
        raise RetryableError(f"shard {shard_id} kept changing while pushing it to connection {target.id}")

    def _adapter(self, target: Target) -> BaseAdapter:
        return self._adapters.get(target.connection.provider)

    def _in_flight(self, shard: dict[str, Any], target: Target) -> Pushed | None:
        """A create already under way or unconfirmed: wait for it (its answer, or its webhook) for ``confirm_after``."""
        state = (shard.get("sync") or {}).get(target.id) or {}
        marked = state.get("pendingCreateAt")
        if not marked:
            return None
        remaining = (datetime.fromisoformat(marked) + self._confirm_after - now_utc(self._clock)).total_seconds()
        if remaining <= 0:
            log_event("outbound.create_unconfirmed", connection_id=target.id, shard_id=shard["id"], since=marked)
            return None
        reason = f"a create sent at {marked} is not confirmed yet; sent again after {remaining:.0f} s without it"
        wait = Deferred(reason, min(remaining, _IN_FLIGHT_RECHECK_SECONDS))
        return _outcome(target, "waiting", Operation.CREATE, None, reason, wait)

    async def _send(self, tenant_id: str, shard_id: str, target: Target, plan: PushPlan) -> Pushed:
        change = Change(plan.entity_type, plan.operation, plan.external_id, plan.data)
        try:
            [result] = await self._adapter(target).push(target.connection, [change])
        except CastielError as exc:  # opening the connection failed: its credential, its configuration
            result = PushResult(PushStatus.FAILED, plan.external_id, exc)
        if result.status is PushStatus.FAILED:
            return await self._failed(tenant_id, shard_id, target, plan, result.error)
        external_id = result.external_id or plan.external_id
        if external_id is None:
            return await self._failed(tenant_id, shard_id, target, plan, RetryableError("answered without an id"))
        await self._ledger.written(tenant_id, shard_id, target, plan, external_id, result.data)
        log_event("outbound.pushed", connection_id=target.id, shard_id=shard_id, operation=plan.operation.value,
                  external_id=external_id)  # fmt: skip
        return _outcome(target, "pushed", plan.operation, external_id)

    async def _failed(
        self, tenant_id: str, shard_id: str, target: Target, plan: PushPlan, error: CastielError | None
    ) -> Pushed:
        unknown = isinstance(error, RetryableError) and not isinstance(error, RateLimited)
        if plan.operation is Operation.CREATE and not unknown:
            await self._ledger.not_created(tenant_id, shard_id, target, plan)
        if plan.operation is Operation.UPDATE and isinstance(error, NotFound):
            await self._ledger.gone(tenant_id, shard_id, target)
            return _outcome(target, "skipped", plan.operation, plan.external_id, "deleted on this connection")
        failed = _failure(target, plan, error)
        if unknown and plan.operation is Operation.CREATE:
            note = f" (it may have landed: not sent again for {self._confirm_after.total_seconds():.0f} s)"
            failed = Pushed(failed.outcome.model_copy(update={"reason": f"{failed.outcome.reason}{note}"}), error)
        log_event("outbound.push_failed", level=logging.WARNING, connection_id=target.id, shard_id=shard_id,
                  operation=plan.operation.value, error=failed.outcome.reason)  # fmt: skip
        return failed


def _changed_there(shard: dict[str, Any], target: Target, current: Record) -> bool:
    """Whether the target's record differs from what was last agreed with it (a change not merged yet)."""
    snapshot = ((shard.get("sync") or {}).get(target.id) or {}).get("snapshot") or {}
    try:
        fields = target.mapping.fields_of(current.data)
    except ValueError:
        return False  # unreadable through the mapping: the pull reports it; pushing is still right
    return fingerprint(fields) != fingerprint(snapshot)


def _failure(target: Target, plan: PushPlan, error: CastielError | None) -> Pushed:
    reason = str(error) if error is not None else "the provider refused it"
    retry = error if isinstance(error, RetryableError | Deferred) else None
    return _outcome(target, "failed", plan.operation, plan.external_id, reason, retry)


def _outcome(
    target: Target,
    status: Status,
    operation: Operation | None = None,
    external_id: str | None = None,
    reason: str | None = None,
    retry: CastielError | None = None,
    merged: str | None = None,
) -> Pushed:
    outcome = TargetOutcome(
        connection_id=target.id, status=status, operation=operation, external_id=external_id, reason=reason
    )
    return Pushed(outcome, retry, merged)
