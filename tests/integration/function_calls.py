"""Calling ``function_app``'s functions as the host does (through ``get_user_function()``, with an invocation
context), on the runtime of a test's data directory (the ``runtime`` fixture), and the documents and messages the
calls start from: tenant ``t1``, connection ``conn-1``, task ``task-1``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import function_app
from castiel.clock import now_utc
from castiel.devhost.convert import InvocationContext
from castiel.models import ChangeOrigin, Connection, Operation, OutboundChange, Provider, SyncTask
from castiel.runtime import Runtime
from tests.telemetry_capture import listed_functions

FUNCTIONS = listed_functions(function_app.app)


async def call(name: str, argument: object, invocation_id: str = "invocation-1", **extras: object) -> Any:
    """Invoke function ``name`` with its trigger ``argument``."""
    context = InvocationContext(invocation_id, name, ".", None)
    return await FUNCTIONS[name].get_user_function()(argument, context=context, **extras)


async def add_connection(runtime: Runtime, provider: Provider = Provider.GITHUB, **fields: Any) -> Connection:
    """Connection ``conn-1`` of tenant ``t1`` to ``provider``."""
    connection = Connection(id="conn-1", tenant_id="t1", integration_id=provider.value, provider=provider, **fields)
    await runtime.store.create(Connection.container, connection.to_doc())
    return connection


async def add_due_task(runtime: Runtime, provider: Provider = Provider.GITHUB) -> SyncTask:
    """``add_connection``, and its task ``task-1``, due a minute ago."""
    await add_connection(runtime, provider)
    task = SyncTask(
        id="task-1",
        tenant_id="t1",
        integration_id=provider.value,
        connection_id="conn-1",
        next_run_at=now_utc() - timedelta(minutes=1),
        status_changed_at=now_utc(),
    )
    await runtime.store.create(SyncTask.container, task.to_doc())
    return task


def webhook_change(connection_id: str | None = "conn-1", correlation_id: str = "corr-1") -> OutboundChange:
    """A GitHub webhook's rename of issue 1 that came through ``connection_id``."""
    return OutboundChange(
        integration_id="github",
        tenant_id="t1",
        connection_id=connection_id,
        entity_type="issue",
        entity_id="github:1",
        external_id="1",
        operation=Operation.UPDATE,
        changes={"title": "renamed"},
        timestamp=now_utc(),
        origin=ChangeOrigin.WEBHOOK,
        correlation_id=correlation_id,
    )
