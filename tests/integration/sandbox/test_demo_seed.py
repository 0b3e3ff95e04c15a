"""Seeding the demo tenant of ``castiel serve --sandbox`` again: against the same sandbox it adds nothing; against a
new one (a restart: the sandbox starts afresh, the records Castiel made in the old one are gone) the demo tenant starts
over, so nothing it knew of the old sandbox reads as deleted on the new one."""

from __future__ import annotations

from typing import Any

from castiel.models import ExternalIdLink, Shard
from castiel.ports import Query
from castiel.runtime import Runtime
from castiel.sandbox.demo import DEMO_TENANT, SANDBOX_INSTANCE, seed_demo
from castiel.sandbox.state import Sandbox

SANDBOX_URL = "http://127.0.0.1:8099"
HOST_URL = "http://127.0.0.1:7071"


async def demo_documents(runtime: Runtime, container: str) -> list[dict[str, Any]]:
    page = await runtime.store.query(container, Query(partition_key=DEMO_TENANT, order_by=(("id", "asc"),)))
    return page.items


async def sync_a_record(runtime: Runtime) -> None:
    """What a pull or a push leaves: a shard and its link to an issue in the sandbox's GitHub."""
    shard = Shard(id="s1", tenant_id=DEMO_TENANT, shard_type="task", data={"title": "made by Castiel"},
                  external_ids={"demo-github": "1000000099"})  # fmt: skip
    link_id = ExternalIdLink.make_id("demo-github", "issue", "1000000099")
    link = ExternalIdLink(id=link_id, tenant_id=DEMO_TENANT, connection_id="demo-github", entity_type="issue",
                          external_id="1000000099", shard_id="s1")  # fmt: skip
    await runtime.store.create(Shard.container, shard.to_doc())
    await runtime.store.create(ExternalIdLink.container, link.to_doc())


async def test_a_second_seeding_against_the_same_sandbox_adds_and_removes_nothing(runtime: Runtime) -> None:
    sandbox = Sandbox(records=2)
    await seed_demo(runtime, sandbox, SANDBOX_URL, HOST_URL)
    await sync_a_record(runtime)
    before = {name: await demo_documents(runtime, name) for name in ("connections", "credentials", "shards")}

    await seed_demo(runtime, sandbox, SANDBOX_URL, HOST_URL)

    assert {name: await demo_documents(runtime, name) for name in before} == before
    assert len(await demo_documents(runtime, "external-ids")) == 1


async def test_seeding_against_a_new_sandbox_starts_the_demo_tenant_over(runtime: Runtime) -> None:
    old_subscriptions = await seed_demo(runtime, Sandbox(records=2), SANDBOX_URL, HOST_URL)
    await sync_a_record(runtime)

    new = Sandbox(records=2)
    subscriptions = await seed_demo(runtime, new, SANDBOX_URL, HOST_URL)

    assert await demo_documents(runtime, "shards") == []
    assert await demo_documents(runtime, "external-ids") == []
    connections = await demo_documents(runtime, "connections")
    assert len(connections) == 5
    assert {connection["settings"][SANDBOX_INSTANCE] for connection in connections} == {new.instance}
    assert len(await demo_documents(runtime, "sync-tasks")) == 5
    assert {doc["id"] for doc in await demo_documents(runtime, "credentials")} >= {"demo-github-key", "demo-notion-key"}
    # registrations made again, each with a new signing secret (the old ones were removed with their values)
    assert len(await runtime.registrations.list(DEMO_TENANT)) == 5
    old_secrets = {subscription.secret for subscription in old_subscriptions if subscription.secret}
    new_secrets = {subscription.secret for subscription in subscriptions if subscription.secret}
    assert len(new_secrets) == 4
    assert not old_secrets & new_secrets


async def test_a_tenant_seeded_before_sandboxes_were_told_apart_starts_over(runtime: Runtime) -> None:
    sandbox = Sandbox(records=2)
    await seed_demo(runtime, sandbox, SANDBOX_URL, HOST_URL)
    await sync_a_record(runtime)
    doc = await runtime.store.read("connections", "demo-github", DEMO_TENANT)
    settings = {key: value for key, value in doc["settings"].items() if key != SANDBOX_INSTANCE}
    await runtime.store.replace("connections", doc | {"settings": settings}, if_match=doc["_etag"])

    await seed_demo(runtime, sandbox, SANDBOX_URL, HOST_URL)

    assert await demo_documents(runtime, "shards") == []
    assert (await runtime.store.read("connections", "demo-github", DEMO_TENANT))["settings"][SANDBOX_INSTANCE]
