"""A pull's fan-out survives the window between a page's save and its checkpoint: the run dies (or its fan-out fails)
after the page is saved, the queue delivers the task's message again, the resumed run finds the page's records
unchanged — and the other tool still gets each of them exactly once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from castiel.clock import now_utc
from castiel.devhost.convert import sdk_message_from
from castiel.errors import RetryableError
from castiel.models import Provider, SyncMode, SyncResult, SyncTaskMessage, TaskStatus
from castiel.ports import OutgoingMessage
from castiel.sync.fanout import PullFanout
from castiel.sync.pull import PageSaved
from castiel.sync.targets import TargetFinder
from castiel.triggers import delivery_from
from tests.integration.sync.two_way import OUTBOUND, TENANT, TwoWay

GITHUB, NOTION = Provider.GITHUB, Provider.NOTION
RECORDS = 6  # one page of GitHub issues
INBOUND = "sync-inbound"
NOTION_PAGES = "/notion/v1/pages"


class Crash(Exception):
    """The worker process dying: not an error the service knows, so nothing settles the message."""


@pytest.fixture(scope="module")
def sandbox_records() -> int:
    return RECORDS


@pytest.fixture
async def two(two: TwoWay) -> TwoWay:
    """Two-way sync between GitHub and Notion."""
    await two.connect(GITHUB)
    await two.connect(NOTION)
    return two


Failure = Callable[[PageSaved, PullFanout], Awaitable[None]]


async def dies_before_the_send(saved: PageSaved, fanout: PullFanout) -> None:
    raise Crash


async def dies_after_the_send(saved: PageSaved, fanout: PullFanout) -> None:
    await fanout(saved)
    raise Crash


async def send_fails(saved: PageSaved, fanout: PullFanout) -> None:
    raise RetryableError("sync-outbound is unavailable")


def failing_once(two: TwoWay, failure: Failure) -> None:
    """The inbound service's page hook: the pull fan-out, failing as ``failure`` on the first page it sees."""
    fanout = PullFanout(two.world.queue, OUTBOUND, TargetFinder(two.world.store, two.registry()), clock=two.world.clock)
    failed: list[int] = []

    async def hook(saved: PageSaved) -> None:
        if not failed:
            failed.append(saved.number)
            await failure(saved, fanout)
            return
        await fanout(saved)

    two.world.with_hook(hook)


async def enqueue_pull(two: TwoWay) -> None:
    """The scheduler's work for GitHub's task: the task queued, its message on ``sync-inbound``."""
    world = two.world
    task = await world.task(two.connections["github"])
    await world.store.replace("sync-tasks", {**task.to_doc(), "status": TaskStatus.QUEUED.value}, if_match=task.etag)
    message = SyncTaskMessage(integration_id="github", tenant_id=TENANT, connection_id="github",
                              sync_mode=SyncMode.BIDIRECTIONAL, correlation_id="corr-pull",
                              enqueued_at=now_utc(world.clock), task_id=task.id)  # fmt: skip
    await world.queue.send(INBOUND, [OutgoingMessage(body=message.to_json_bytes(), message_id="pull-github")])


async def work_inbound(two: TwoWay) -> None:
    """The inbound worker on what ``sync-inbound`` delivers now, as the host runs it (a crash leaves it locked)."""
    world = two.world
    for received in await world.queue.receive(INBOUND):
        await world.inbound.handle(delivery_from(sdk_message_from(received), INBOUND))
        await world.queue.complete(INBOUND, received)


@pytest.mark.parametrize("failure", [dies_before_the_send, dies_after_the_send, send_fails])
async def test_a_page_saved_before_its_fanout_failed_reaches_the_other_tool_once(two: TwoWay, failure: Failure) -> None:
    failing_once(two, failure)
    await enqueue_pull(two)

    if failure is send_fails:
        await work_inbound(two)  # the worker retries: a copy of the message, scheduled after a backoff
    else:
        with pytest.raises(Crash):
            await work_inbound(two)
    task = await two.world.task(two.connections["github"])
    assert task.status is TaskStatus.RUNNING
    assert "issue" not in task.cursors  # the page was saved, never checkpointed
    assert len(await two.shards()) == RECORDS

    two.world.clock.advance(61)  # the dead worker's peek-lock expires (or the retry's backoff passes)
    await work_inbound(two)
    task = await two.world.task(two.connections["github"])
    assert task.status is TaskStatus.PENDING
    resumed = SyncResult.model_validate(await two.world.store.read("sync-results", str(task.last_result_id), TENANT))
    assert (resumed.counts.unchanged, resumed.counts.created) == (RECORDS, 0)

    await two.drain()
    assert two.pushes() == [("notion", "POST", NOTION_PAGES)] * RECORDS
    shards = await two.shards()
    assert all(set(shard["externalIds"]) == {"github", "notion"} for shard in shards)


async def test_a_resumed_run_past_its_first_page_fans_out_only_what_changed(two: TwoWay) -> None:
    failing_once(two, dies_before_the_send)
    await enqueue_pull(two)
    with pytest.raises(Crash):
        await work_inbound(two)
    two.world.clock.advance(61)
    await work_inbound(two)
    await two.drain()
    two.world.sandbox.pushes.clear()

    # A later, ordinary run finds everything unchanged: nothing goes out.
    await enqueue_pull(two)
    await work_inbound(two)
    assert await two.queued() == 0
    assert two.pushes() == []
