"""Creates on a target are made once: the new external id is stored at once, a create whose answer was lost is
adopted when the provider reports it, one whose outcome is unknown is not sent again before the confirmation window,
and two workers racing to create the same record make one."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from castiel.models import Operation, Provider
from tests.integration.sync.two_way import CONFIRM_AFTER, TwoWay

GITHUB, NOTION = Provider.GITHUB, Provider.NOTION
RECORDS = 3
NOTION_CREATE = ("notion", "POST", "/notion/v1/pages")


@pytest.fixture(scope="module")
def sandbox_records() -> int:
    return RECORDS


@pytest.fixture
async def two(two: TwoWay) -> TwoWay:
    """Two-way sync between GitHub and Notion."""
    await two.connect(GITHUB)
    await two.connect(NOTION)
    return two


class LosesFirstAnswer(httpx.AsyncBaseTransport):
    """Sends every request; the answer to the first POST to ``path`` is lost on its way back (a read timeout)."""

    def __init__(self, path: str) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.path = path
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == self.path and not self.lost:
            self.lost += 1
            await response.aread()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_create_whose_answer_was_lost_is_adopted_when_the_provider_reports_it(two: TwoWay) -> None:
    lossy = LosesFirstAnswer("/notion/v1/pages")
    async with httpx.AsyncClient(transport=lossy, timeout=10.0) as http:
        two.outbound = two.outbound_service(http)
        await two.pull(GITHUB)
        await two.drain()
    assert lossy.lost == 1
    assert two.pushes() == [NOTION_CREATE] * RECORDS  # the lost one landed; nothing was re-sent
    shards = await two.shards()
    [waiting] = [shard for shard in shards if "notion" not in shard["externalIds"]]
    assert waiting["sync"]["notion"]["pendingCreateAt"]

    linked = {shard["externalIds"].get("notion") for shard in shards}
    [page] = [item.body for item in two.world.sandbox.notion.pages.after(None) if item.id not in linked
              and item.body["properties"]["Name"]["title"][0]["plain_text"] == waiting["data"]["title"]]  # fmt: skip
    two.outbound = two.outbound_service()
    [report] = two.webhook(NOTION, Operation.CREATE, page)
    await two.deliver(report)

    adopted = await two.world.store.read("shards", waiting["id"], "t1")
    assert adopted["externalIds"]["notion"] == page["id"]
    assert "pendingCreateAt" not in adopted["sync"]["notion"]
    two.world.clock.advance(10)
    assert await two.drain() == 1  # the lost create's retry finds Notion in step
    assert two.pushes() == [NOTION_CREATE] * RECORDS
    assert len(await two.shards()) == RECORDS


async def test_a_create_of_unknown_outcome_is_sent_again_only_after_the_confirmation_window(two: TwoWay) -> None:
    await two.pull(GITHUB)
    await two.drain()
    two.world.sandbox.pushes.clear()
    two.world.sandbox.faults.configure("notion", next_statuses=[503])

    issue_id = await new_issue_retried(two)
    waited = 0.0
    while not two.pushes():
        two.world.clock.advance(5)
        waited += 5
        await two.drain()
        assert waited <= CONFIRM_AFTER.total_seconds() + 10
    assert waited >= CONFIRM_AFTER.total_seconds() - 5
    assert two.pushes() == [NOTION_CREATE]
    shard = await two.shard_of(GITHUB, issue_id)
    assert "notion" in shard["externalIds"]
    assert "pendingCreateAt" not in shard["sync"]["notion"]


async def new_issue_retried(two: TwoWay) -> str:
    """A new issue whose webhook goes through the queue (its retries come back through it)."""
    [issue] = two.world.sandbox.create("github")
    [change] = two.webhook(GITHUB, Operation.CREATE, issue)
    await two.deliver(change)
    assert two.pushes() == []  # the 503 never landed, but the worker cannot know that
    return str(issue["id"])


async def test_two_workers_racing_to_create_make_one_record(two: TwoWay) -> None:
    await two.pull(GITHUB)
    await two.drain()
    two.world.sandbox.pushes.clear()
    [issue] = two.world.sandbox.create("github")
    [change] = two.webhook(GITHUB, Operation.CREATE, issue)
    other = two.outbound_service()

    await asyncio.gather(two.outbound.process(change, "first"), other.process(change, "second"),
                         return_exceptions=True)  # fmt: skip

    assert two.pushes() == [NOTION_CREATE]
    shard = await two.shard_of(GITHUB, str(issue["id"]))
    assert "notion" in shard["externalIds"]
