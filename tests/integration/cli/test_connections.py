"""``castiel connections remove``: refused while tasks or webhook registrations use the connection, unless
``--cascade``, which removes them (registrations with their secrets) and touches nothing else."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.errors import NotFound
from castiel.models import Connection, SyncTask, TaskStatus, WebhookRegistration
from castiel.ports import Query
from castiel.runtime import build_secrets
from castiel.settings import load_settings
from tests.integration.cli.helpers import castiel, castiel_json, invoke


def documents(data_dir: Path, container: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        store = SqliteDocumentStore(data_dir / DATABASE_FILE)
        try:
            return (await store.query(container, Query(order_by=(("id", "asc"),)))).items
        finally:
            await store.close()

    return asyncio.run(read())


def secret_exists(name: str) -> bool:
    async def look() -> bool:
        secrets = build_secrets(load_settings())
        try:
            await secrets.get_secret(name)
        except NotFound:
            return False
        finally:
            await secrets.close()
        return True

    return asyncio.run(look())


def register_webhook(connection: str, tenant: str = "acme") -> dict[str, Any]:
    return castiel_json(  # type: ignore[no-any-return]
        "webhooks", "add", "--tenant", tenant, "--connection", connection, "--provider", "github", "--secret", "s3cret"
    )


def secret_name_of(data_dir: Path, registration: dict[str, Any]) -> str:
    """Where a registration's secret lives: its webhook_secret credential's secret name."""
    (credential,) = (doc for doc in documents(data_dir, "credentials") if doc["id"] == registration["credentialId"])
    return str(credential["secretName"])


def everything(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    containers = (Connection.container, SyncTask.container, WebhookRegistration.container)
    return {container: documents(data_dir, container) for container in containers}


def test_a_connection_nothing_uses_is_removed(seeded: Path) -> None:
    assert castiel("connections", "remove", "gh") == "removed connection 'gh' of tenant 'acme'\n"
    assert castiel_json("connections", "list", "--json") == []


@pytest.mark.parametrize("user", ["task", "webhook"])
def test_a_connection_in_use_is_refused_naming_its_users_and_nothing_changes(seeded: Path, user: str) -> None:
    if user == "task":
        castiel("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t1")
        named = "is used by task(s) t1: remove them first, or pass --cascade"
    else:
        registration = register_webhook("gh")
        named = f"is used by webhook registration(s) {registration['id']}: remove them first, or pass --cascade"
    before = everything(seeded)

    result = invoke("connections", "remove", "gh")

    assert result.exit_code == 1
    assert result.stderr == f"error: connection 'gh' of tenant 'acme' {named}\n"
    assert everything(seeded) == before


def test_cascade_removes_the_tasks_registrations_and_their_secrets_and_nothing_else(seeded: Path) -> None:
    castiel("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "other")
    castiel("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t1")
    castiel("tasks", "add", "--tenant", "acme", "--connection", "other", "--id", "t2")
    removed = register_webhook("gh")
    kept = register_webhook("other")
    removed_secret, kept_secret = secret_name_of(seeded, removed), secret_name_of(seeded, kept)
    assert secret_exists(removed_secret)

    output = castiel("connections", "remove", "gh", "--cascade")

    assert output == (
        f"removed connection 'gh' of tenant 'acme' and its task(s) t1 and webhook registration(s) {removed['id']}\n"
    )
    assert [doc["id"] for doc in documents(seeded, Connection.container)] == ["other"]
    assert [doc["id"] for doc in documents(seeded, SyncTask.container)] == ["t2"]
    assert [doc["id"] for doc in documents(seeded, WebhookRegistration.container)] == [kept["id"]]
    assert not secret_exists(removed_secret)
    assert secret_exists(kept_secret)
    assert [doc["id"] for doc in documents(seeded, "credentials")] == [kept["credentialId"]]


def test_cascade_is_refused_while_a_task_runs(seeded: Path) -> None:
    castiel("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t1")

    async def run_it() -> None:
        store = SqliteDocumentStore(seeded / DATABASE_FILE)
        try:
            task = SyncTask.model_validate(await store.read(SyncTask.container, "t1", "acme"))
            running = task.model_copy(update={"status": TaskStatus.RUNNING})
            await store.replace(SyncTask.container, running.to_doc(), if_match=task.etag)
        finally:
            await store.close()

    asyncio.run(run_it())
    before = everything(seeded)

    result = invoke("connections", "remove", "gh", "--cascade")

    assert result.exit_code == 1
    assert result.stderr == "error: connection 'gh' of tenant 'acme' has running tasks (t1): pause them first\n"
    assert everything(seeded) == before


def test_an_id_in_two_tenants_needs_tenant(seeded: Path) -> None:
    castiel("connections", "add", "--tenant", "globex", "--provider", "github", "--id", "gh")

    ambiguous = invoke("connections", "remove", "gh")
    assert ambiguous.exit_code == 2
    assert "connection 'gh' exists in tenants acme, globex: name one with --tenant" in ambiguous.stderr

    castiel("connections", "remove", "gh", "--tenant", "globex")
    assert [item["tenantId"] for item in castiel_json("connections", "list", "--json")] == ["acme"]
