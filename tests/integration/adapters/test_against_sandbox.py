"""Each adapter end to end against the sandbox over real HTTP: full and incremental pulls, a fetch interrupted by a
429 and resumed from its checkpoint, 5xx retried, pushes applied, health checks, and tokens refused as the
provider would refuse them."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
import redis.asyncio as aioredis

from adapters.records import Change, Page, PushStatus
from castiel.clock import ManualClock
from castiel.errors import RateLimited
from castiel.models import Connection, Operation, Provider
from castiel.sandbox.server import SandboxServer
from tests.integration.adapters.conftest import CASES, Case, World, adapters_for, live_ids
from tests.unit.adapters.support import BearerAuth, StaticAuth, fetch_all

BY_PROVIDER = pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)


def ids_of(pages: list[Page]) -> list[str]:
    return [record.external_id for page in pages for record in page.records]


def each_once(pages: list[Page], expected: list[str]) -> bool:
    """Every expected record exactly once, in whatever order the provider lists (Slack: newest first)."""
    return Counter(ids_of(pages)) == Counter(expected)


@BY_PROVIDER
async def test_a_full_pull_then_incremental_pulls_see_each_change_once(world: World, case: Case) -> None:
    adapter, connection = world.adapter(case), world.connection(case)
    pages = await fetch_all(adapter, connection, case.entity_type)
    assert len(pages) > 1
    assert each_once(pages, live_ids(world.sandbox, case))
    cursor = pages[-1].cursor

    listed = live_ids(world.sandbox, case)
    world.clock.advance(120)
    edited = world.sandbox.edit(case.id, ids=listed[:2])
    [deleted] = world.sandbox.delete(case.id, ids=[listed[2]])
    created = world.sandbox.create(case.id)
    changes = await fetch_all(adapter, connection, case.entity_type, cursor)

    seen = {record.external_id: record for page in changes for record in page.records}
    expected = {live_ids_of(case, body) for body in created}
    if case.sees_edits:
        expected |= {live_ids_of(case, body) for body in edited}
    if case.sees_deletions:
        expected.add(deleted)
        assert seen[deleted].deleted
    assert set(seen) == expected
    assert len(ids_of(changes)) == len(seen)

    again = await fetch_all(adapter, connection, case.entity_type, changes[-1].cursor)
    assert ids_of(again) == []


def live_ids_of(case: Case, body: dict[str, object]) -> str:
    key = {Provider.SALESFORCE: "Id", Provider.SLACK: "ts"}.get(case.provider, "id")
    return str(body[key])


@BY_PROVIDER
async def test_a_fetch_stopped_by_a_429_resumes_from_its_checkpoint_without_loss_or_repeat(
    world: World, case: Case
) -> None:
    adapter, connection = world.adapter(case), world.connection(case)
    pages = adapter.fetch(connection, case.entity_type)
    first = await anext(pages)
    world.sandbox.faults.configure(case.id, next_statuses=[429])
    with pytest.raises(RateLimited) as raised:
        await anext(pages)
    assert raised.value.retry_after == case.retry_after
    assert f"{case.id} connection sbx-{case.id}" in str(raised.value)

    world.clock.advance(case.retry_after + 1)
    rest = await fetch_all(adapter, connection, case.entity_type, first.cursor)
    assert each_once([first, *rest], live_ids(world.sandbox, case))


@BY_PROVIDER
async def test_injected_server_errors_are_retried(world: World, case: Case) -> None:
    adapter, connection = world.adapter(case), world.connection(case)
    pages = adapter.fetch(connection, case.entity_type)
    first = await anext(pages)
    world.sandbox.faults.configure(case.id, next_statuses=[503, 502])
    rest = [page async for page in pages]
    assert each_once([first, *rest], live_ids(world.sandbox, case))
    assert len(world.sleeps.delays) == 2


@BY_PROVIDER
async def test_a_random_share_of_faults_still_ends_with_every_record_once(world: World, case: Case) -> None:
    adapter, connection = world.adapter(case), world.connection(case)
    world.sandbox.faults.configure(case.id, rate_5xx=0.2)
    pages = await fetch_all(adapter, connection, case.entity_type)
    assert each_once(pages, live_ids(world.sandbox, case))


PUSHES = {
    Provider.SALESFORCE: ({"Name": "Pushed"}, {"Name": "Pushed again"}),
    Provider.NOTION: (
        {"Name": {"title": [{"text": {"content": "Pushed"}}]}},
        {"Name": {"title": [{"text": {"content": "Pushed again"}}]}},
    ),
    Provider.SLACK: ({"text": "Pushed"}, {"text": "Pushed again"}),
    Provider.GITHUB: ({"title": "Pushed"}, {"title": "Pushed again"}),
    Provider.GOOGLE: (
        {
            "summary": "Pushed",
            "start": {"dateTime": "2025-01-04T10:00:00Z"},
            "end": {"dateTime": "2025-01-04T11:00:00Z"},
        },
        {"summary": "Pushed again"},
    ),
}


@BY_PROVIDER
async def test_pushes_create_update_and_delete_in_the_sandbox(world: World, case: Case) -> None:
    adapter, connection = world.adapter(case), world.connection(case)
    create, update = PUSHES[case.provider]
    [created] = await adapter.push(connection, [Change(case.entity_type, Operation.CREATE, data=create)])
    assert created.status is PushStatus.CREATED, created.reason
    external_id = created.external_id
    assert external_id is not None
    number = {"number": int(external_id) - 1_000_000_000} if case.provider is Provider.GITHUB else {}
    [updated] = await adapter.push(
        connection, [Change(case.entity_type, Operation.UPDATE, external_id, {**update, **number})]
    )
    [removed] = await adapter.push(connection, [Change(case.entity_type, Operation.DELETE, external_id, number)])
    assert (updated.status, removed.status) == (PushStatus.UPDATED, PushStatus.DELETED), (updated, removed)
    pushes = [push for push in world.sandbox.pushes if push.provider == case.id]
    assert len(pushes) == 3
    item = case.api(world.sandbox).datasets[case.entity_type].get(external_id)
    assert item is not None
    # GitHub cannot delete an issue: a delete closes it.
    assert item.body["state"] == "closed" if case.provider is Provider.GITHUB else item.deleted


async def test_salesforce_batches_go_as_one_collection(world: World) -> None:
    [case] = [case for case in CASES if case.provider is Provider.SALESFORCE]
    changes = [Change("Account", Operation.CREATE, data={"Name": f"Batch {n}"}) for n in range(3)]
    changes.append(Change("Account", Operation.CREATE, data={"Bogus__c": 1}))
    results = await world.adapter(case).push(world.connection(case), changes)
    assert [result.status for result in results] == [PushStatus.CREATED] * 3 + [PushStatus.FAILED]
    assert "INVALID_FIELD" in (results[3].reason or "")
    [push] = [push for push in world.sandbox.pushes if push.provider == "salesforce"]
    assert push.path.endswith("/composite/sobjects")


@BY_PROVIDER
async def test_health_check_and_discovery(world: World, case: Case) -> None:
    report = await world.adapter(case).health_check(world.connection(case))
    assert report.ok, report.error
    assert report.discovery is not None
    assert report.discovery.entities[0].fields


@BY_PROVIDER
async def test_a_misconfigured_object_fails_the_health_check_with_the_providers_message(
    world: World, case: Case
) -> None:
    wrong = {
        Provider.SALESFORCE: {},
        Provider.NOTION: {"databaseId": "00000000-0000-0000-0000-000000000000"},
        Provider.SLACK: {"channel": "C0NOSUCH00"},
        Provider.GITHUB: {"repository": "acme/nothing"},
        Provider.GOOGLE: {"calendarId": "nobody@example.com"},
    }[case.provider]
    connection = world.connection(case, **wrong)
    if case.provider is Provider.SALESFORCE:
        connection = connection.model_copy(update={"entity_types": ["Invoice__c"]})
    report = await world.adapter(case).health_check(connection)
    assert not report.ok
    expected = {
        Provider.SALESFORCE: "NOT_FOUND",
        Provider.NOTION: "object_not_found",
        Provider.SLACK: "channel_not_found",
        Provider.GITHUB: "Not Found",
        Provider.GOOGLE: "notFound",
    }[case.provider]
    assert expected in (report.error or "")


class RotatingAuth(StaticAuth):
    """Hands out the stale token first and the fresh one after: what the credentials do across a refresh."""

    def __init__(self, *tokens: str) -> None:
        super().__init__(tokens[0])
        self.tokens = list(tokens)

    async def auth_for_connection(self, connection: Connection) -> httpx.Auth:
        self.asked += 1
        return BearerAuth(self.tokens[min(self.asked, len(self.tokens)) - 1])


@BY_PROVIDER
async def test_a_rejected_token_is_replaced_once_and_the_call_retried(
    server: SandboxServer, redis_client: aioredis.Redis, clock: ManualClock, case: Case
) -> None:
    auth = RotatingAuth("expired-token", "fresh-token")
    async with adapters_for(server, redis_client, clock, auth) as world:
        world.sandbox.tokens.strict = True
        world.sandbox.tokens.accepted.add("fresh-token")
        world.sandbox.tokens.revoked.add("expired-token")
        pages = await fetch_all(world.adapter(case), world.connection(case), case.entity_type)
    assert each_once(pages, live_ids(world.sandbox, case))
    assert auth.asked == 2
