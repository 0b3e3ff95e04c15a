"""GitHub issues paged by ``since`` through ``httpx.MockTransport``, against a listing that pages by position as GitHub
does: issues edited or deleted between two page requests shift the list, and nothing is missed or emitted twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from adapters.github import GitHubAdapter
from adapters.records import Page
from castiel.clock import ManualClock
from castiel.errors import PermanentError
from castiel.models import Provider
from tests.unit.adapters.support import collect, connection, engine, fetch_all, json_response

CONN = connection(Provider.GITHUB, base_url=None, repository="octo-org/octo-repo")
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
PER_PAGE = 100


def at(second: int) -> datetime:
    return T0 + timedelta(seconds=second)


@dataclass
class Listing:
    """A repository's issues as GitHub lists them: ``sort=updated&direction=asc`` (ties by number), ``since``
    inclusive to the second, page n = positions (n-1)·per_page … of the list as it stands at that request."""

    updated: dict[int, int] = field(default_factory=dict)
    """Issue number → second of its ``updated_at``."""
    versions: Counter[int] = field(default_factory=Counter)
    pulls: set[int] = field(default_factory=set)
    before: dict[int, Callable[[], None]] = field(default_factory=dict)
    """Changes to make before serving the request of that index (0 is the first)."""
    date: datetime | None = None
    page_size: int | None = None
    """Items a page holds whatever ``per_page`` asks (to make small ties)."""
    requests: list[httpx.Request] = field(default_factory=list)

    def edit(self, number: int, second: int) -> None:
        self.updated[number] = second
        self.versions[number] += 1

    def delete(self, number: int) -> None:
        del self.updated[number]

    def body(self, number: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": 1000 + number,
            "number": number,
            "title": f"issue {number} v{self.versions[number]}",
            "updated_at": at(self.updated[number]).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if number in self.pulls:
            item["pull_request"] = {"url": f"https://api.github.com/repos/octo-org/octo-repo/pulls/{number}"}
        return item

    def __call__(self, request: httpx.Request) -> httpx.Response:
        change = self.before.get(len(self.requests))
        self.requests.append(request)
        if change is not None:
            change()
        params = request.url.params
        since = (datetime.fromisoformat(params["since"]) - T0).total_seconds() if "since" in params else None
        per_page, page = self.page_size or int(params.get("per_page", "30")), int(params.get("page", "1"))
        order = sorted((second, number) for number, second in self.updated.items() if since is None or second >= since)
        shown = order[(page - 1) * per_page : page * per_page]
        headers = {} if self.date is None else {"date": format_datetime(self.date, usegmt=True)}
        if len(order) > page * per_page:
            headers["link"] = f'<{request.url.copy_merge_params({"page": page + 1})}>; rel="next"'
        return json_response(200, [self.body(number) for _, number in shown], headers)

    def live_issues(self) -> dict[str, str]:
        """External id → the title of its current version, for every issue (not pull request) listed now."""
        return {str(1000 + n): f"issue {n} v{self.versions[n]}" for n in self.updated if n not in self.pulls}


Make = Callable[[Listing], GitHubAdapter]


@pytest.fixture
def make(redis_client: aioredis.Redis) -> Make:
    return lambda listing: GitHubAdapter(engine(listing, redis_client, ManualClock()))


def emitted(pages: list[Page]) -> list[tuple[str, str]]:
    return [(record.external_id, record.data["title"]) for page in pages for record in page.records]


def assert_each_version_once(pages: list[Page], listing: Listing) -> None:
    """Every issue's current version emitted, no version of any issue emitted twice."""
    versions = emitted(pages)
    assert [version for version, count in Counter(versions).items() if count > 1] == []
    assert set(listing.live_issues().items()) <= set(versions)


def one_per_second(count: int, *, pulls_every: int = 10) -> Listing:
    listing = Listing(updated={number: number for number in range(1, count + 1)})
    listing.pulls = {number for number in listing.updated if number % pulls_every == 0}
    return listing


async def test_an_issue_edited_mid_run_shifts_the_list_and_nothing_is_missed(make: Make) -> None:
    listing = one_per_second(250)
    # Issue 5 was on the first page; edited, it moves to the end, and issue 101 slides onto the first page.
    listing.before[1] = lambda: listing.edit(5, 1000)
    pages = await fetch_all(make(listing), CONN, "issue")

    assert_each_version_once(pages, listing)
    assert ("1101", "issue 101 v0") in emitted(pages)
    assert [r.url.params.get("since") for r in listing.requests] == [
        None,
        "2026-01-05T12:01:40Z",  # the first page's last item, pull request 100
        "2026-01-05T12:03:19Z",  # issues 100 to 199: issue 5 is no longer before them
    ]
    assert all("page" not in r.url.params for r in listing.requests)


async def test_the_boundary_second_of_pull_requests_and_issues_is_read_again_without_repeats(make: Make) -> None:
    listing = Listing(updated={number: number // 3 for number in range(1, 400)})  # three issues per second
    listing.pulls = {7, 99, 100}
    pages = await fetch_all(make(listing), CONN, "issue")
    assert_each_version_once(pages, listing)
    assert len(emitted(pages)) == len(listing.live_issues())


def tie(size: int, after: int) -> Listing:
    """``size`` issues updated within second 50, then ``after`` issues one a second."""
    return Listing(updated={**dict.fromkeys(range(1, size + 1), 50), **{size + n: 50 + n for n in range(1, after + 1)}})


async def test_a_tie_longer_than_a_page_is_walked_by_link_until_two_walks_agree(make: Make) -> None:
    listing = tie(250, 20)
    pages = await fetch_all(make(listing), CONN, "issue")
    assert_each_version_once(pages, listing)
    walk = [None, "2", "3"]
    assert [(r.url.params.get("since"), r.url.params.get("page")) for r in listing.requests] == [
        *((None, page) for page in walk),
        *(("2026-01-05T12:00:50Z", page) for page in walk),
        ("2026-01-05T12:00:51Z", None),
    ]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda listing: listing.edit(3, 1000), id="edited"),
        pytest.param(lambda listing: listing.delete(3), id="deleted"),
    ],
)
async def test_an_issue_leaving_a_tie_mid_walk_is_caught_by_the_next_walk(
    make: Make, change: Callable[[Listing], None]
) -> None:
    listing = tie(250, 20)
    listing.before[1] = lambda: change(listing)  # walk 1, page 2 now starts one place later: issue 101 is skipped
    pages = await fetch_all(make(listing), CONN, "issue")

    assert_each_version_once(pages, listing)
    assert ("1101", "issue 101 v0") in emitted(pages)
    restarts = [
        r
        for r in listing.requests
        if r.url.params.get("since") == "2026-01-05T12:00:50Z" and "page" not in r.url.params
    ]
    assert len(restarts) == 2  # walk 2 missed issue 3 that walk 1 had; walk 3 agreed with walk 2


async def test_a_fetch_stopped_after_any_page_resumes_from_its_cursor_without_loss_or_repeat(make: Make) -> None:
    listing = tie(250, 120)
    whole = await fetch_all(make(listing), CONN, "issue")
    for stop in range(1, len(whole)):
        resumed = whole[:stop] + await fetch_all(make(listing), CONN, "issue", whole[stop - 1].cursor)
        assert_each_version_once(resumed, listing)


async def test_the_listing_goes_past_a_tie_only_once_its_second_is_over(make: Make) -> None:
    listing = tie(150, 5)
    listing.date = at(50) + timedelta(milliseconds=900)
    first = await fetch_all(make(listing), CONN, "issue")
    assert all(r.url.params.get("since") != "2026-01-05T12:00:51Z" for r in listing.requests)
    assert '"since":"2026-01-05T12:00:50.000000Z"' in str(first[-1].cursor)

    listing.date = at(51)
    rest = await fetch_all(make(listing), CONN, "issue", first[-1].cursor)
    assert_each_version_once(first + rest, listing)


async def test_walks_that_never_agree_stop_the_fetch(make: Make) -> None:
    listing = tie(3, 1)
    listing.page_size = 2

    def flip() -> None:  # the tie's issues change at every walk, though none is edited: no walk can agree
        tied = [number for number, second in listing.updated.items() if second == 50]
        for number in tied:
            listing.updated[number + 10 if number < 10 else number - 10] = listing.updated.pop(number)

    listing.before = {index: flip for index in range(2, 100, 2)}
    with pytest.raises(PermanentError, match="never listed them alike"):
        await collect(make(listing).fetch(CONN, "issue"))
    # Twice the 6 issues ever seen at that second may disagree; the 13th disagreement, ending walk 14, stops it.
    assert len(listing.requests) == 2 * 14
