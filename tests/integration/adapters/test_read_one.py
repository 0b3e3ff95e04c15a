"""What the outbound sync asks of an adapter beyond pages and pushes, against the sandbox over real HTTP: one record
read as it is now (a webhook that carries only ids), the object a write answered with, and a create that is never
re-sent inline once the provider may have applied it."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.records import Change, PushStatus
from castiel.errors import RetryableError
from castiel.models import Operation, Provider
from tests.integration.adapters.conftest import CASES, Case, World, live_ids
from tests.unit.adapters.support import fetch_all

BY_PROVIDER = pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
CREATES: dict[Provider, tuple[str, dict[str, Any]]] = {
    Provider.SALESFORCE: ("Account", {"Name": "Read back"}),
    Provider.NOTION: ("page", {"Name": {"title": [{"text": {"content": "Read back"}}]}}),
    Provider.SLACK: ("message", {"text": "read back"}),
    Provider.GITHUB: ("issue", {"title": "Read back"}),
    Provider.GOOGLE: (
        "event",
        {
            "summary": "Read back",
            "start": {"dateTime": "2025-01-05T10:00:00Z"},
            "end": {"dateTime": "2025-01-05T11:00:00Z"},
        },
    ),
}


def hints_of(case: Case, data: dict[str, Any]) -> dict[str, Any]:
    """What the provider's webhook would carry besides the id (GitHub: the issue number)."""
    return {"number": data["number"]} if case.provider is Provider.GITHUB else {}


@BY_PROVIDER
async def test_a_record_reads_as_the_pull_lists_it(world: World, case: Case) -> None:
    adapter, connection = world.adapter(case), world.connection(case)
    pages = await fetch_all(adapter, connection, case.entity_type)
    listed = {record.external_id: record for page in pages for record in page.records}
    wanted = live_ids(world.sandbox, case)[3]

    record = await adapter.read(connection, case.entity_type, wanted, hints_of(case, listed[wanted].data))

    assert record is not None
    assert (record.external_id, record.entity_type, record.deleted) == (wanted, case.entity_type, False)
    assert record.updated_at == listed[wanted].updated_at
    # Salesforce's SOQL selects the described fields; the record read has those and more.
    assert listed[wanted].data.items() <= record.data.items()


@BY_PROVIDER
async def test_a_deleted_record_reads_as_gone(world: World, case: Case) -> None:
    adapter, connection = world.adapter(case), world.connection(case)
    pages = await fetch_all(adapter, connection, case.entity_type)
    listed = {record.external_id: record for page in pages for record in page.records}
    wanted = live_ids(world.sandbox, case)[4]
    world.sandbox.delete(case.id, ids=[wanted])

    record = await adapter.read(connection, case.entity_type, wanted, hints_of(case, listed[wanted].data))

    # Notion's trash and Google's cancelled events still read, as deletions; the others answer 404.
    assert record is None or record.deleted


@BY_PROVIDER
async def test_a_create_answers_with_what_the_provider_made(world: World, case: Case) -> None:
    adapter, connection = world.adapter(case), world.connection(case)
    entity_type, data = CREATES[case.provider]

    [result] = await adapter.push(connection, [Change(entity_type, Operation.CREATE, data=data)])

    assert result.status is PushStatus.CREATED
    assert result.external_id
    if case.provider in (Provider.GITHUB, Provider.NOTION, Provider.GOOGLE):
        assert result.data is not None
        assert str(result.data["id"]) == result.external_id
        read = await adapter.read(connection, entity_type, result.external_id, hints_of(case, result.data))
        assert read is not None
        assert read.data == result.data
    else:
        assert result.data is None  # Salesforce answers with the id only; Slack's answer is not the history's shape


@BY_PROVIDER
async def test_a_create_met_by_a_server_error_is_not_sent_again_inline(world: World, case: Case) -> None:
    adapter, connection = world.adapter(case), world.connection(case)
    entity_type, data = CREATES[case.provider]
    await adapter.open(connection)  # what a connection resolves once (an API version, a data source) is not at stake
    world.sandbox.faults.configure(case.id, next_statuses=[503])

    [result] = await adapter.push(connection, [Change(entity_type, Operation.CREATE, data=data)])

    assert result.status is PushStatus.FAILED
    assert isinstance(result.error, RetryableError)
    assert world.sleeps.delays == []
    assert world.sandbox.pushes == []


async def test_an_update_met_by_a_server_error_is_still_retried_inline(world: World) -> None:
    case = next(case for case in CASES if case.provider is Provider.GITHUB)
    adapter, connection = world.adapter(case), world.connection(case)
    world.sandbox.faults.configure(case.id, next_statuses=[503])
    number = 1

    [result] = await adapter.push(
        connection, [Change("issue", Operation.UPDATE, "1000000001", {"number": number, "title": "Again"})]
    )

    assert result.status is PushStatus.UPDATED
    assert len(world.sleeps.delays) == 1
    assert [push.body for push in world.sandbox.pushes] == [{"title": "Again"}]
