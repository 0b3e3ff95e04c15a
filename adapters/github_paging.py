"""GitHub's issue listing paged by its own ``since`` filter (keyset), following ``Link`` only through a tie.

**Why not follow ``Link``.** ``GET /repos/{o}/{r}/issues?sort=updated&direction=asc`` pages by position: page n is
the n-th hundred of the list as it stands when page n is asked for. An issue edited between two page requests
moves to the end of the list, and every issue after its old place moves one position earlier: the first issue of
the next page slides onto the end of a page already read, and a run that follows ``Link`` never sees it, until it
changes again. A deleted or transferred issue leaves the list and shifts the rest the same way. (GitHub also refuses
page numbers deep into a large listing: 422 "Pagination with the page parameter is not supported for large
datasets".)

**Keyset.** Every request is a first page, ``since`` = the second of the last item listed (``since`` is inclusive,
to the second; every item counts, pull requests included, though only issues become records). One reply is a
consistent prefix of everything updated at or after that second, so whatever moves between two requests, nothing
updated between the previous boundary and the new one is lost: an edited issue only ever moves *later*, where a
later request finds it. What is listed again at the boundary second is dropped by the ``OverlapCursor`` (id and
fingerprint). Outside a tie each item is read at most twice — at its place, and once more if its own second is a
boundary — so a pass costs at most twice the requests of ``Link`` paging, and about one more per hundred pages when
few issues share a second.

**Ties.** When a reply with a next page lists one second S only (more than a page of items updated within one
second: a bulk edit, an import), ``since`` = S would return the same page again, so the tie is walked by ``Link``
(a page number or an ``after`` cursor, followed as given). A change cannot reorder the tie (GitHub lists a tie in
a stable order): nothing can join a second that has passed, and an issue edited now leaves S for a later second.
A change can only *remove* an item, and only the removal of an item the walk has already passed makes it skip one.
So the first disturbance of walk k removes an item walk k had already listed, and that item has left S for good:
walk k+1 cannot list it. Contrapositive: when walk k+1 lists every item walk k listed, walk k was undisturbed and
listed every item still at S. The tie is
therefore walked again until one walk lists everything the walk before it did (twice when nothing happens meanwhile),
and only then does the listing go on at ``since`` = S + 1 s. Items after S on the tie's pages lie beyond the
paginator's ``horizon``: the cursor neither emits them nor moves past S before the tie is known complete (a run
stopped mid-tie resumes at S). A failed comparison needs an item to leave S for good during one of the two walks
compared, and one such departure can fail at most two comparisons (the walk it shifted, and the next walk, which no
longer lists it), so a provider whose walks never agree is stopped with an error once the failures exceed twice the
items ever seen at S. S + 1 s is asked for only once the reply's ``Date`` is past S; until then the fetch ends at S,
and the next run starts there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from adapters.cursors import parse_time
from adapters.pagination import Paginator
from adapters.wire import Reply, RequestSpec
from castiel.errors import PermanentError

_SECOND = timedelta(seconds=1)


@dataclass(slots=True)
class _Tie:
    """A walk through the items of one second: the ids this walk and the previous one listed there."""

    second: datetime
    walk: int = 1
    listed: set[str] = field(default_factory=set)
    previous: set[str] | None = None
    ever: set[str] = field(default_factory=set)
    disagreed: int = 0


class SinceKeysetPaginator(Paginator):
    """The next page is a first page ``since`` the last second listed; ``Link`` only inside a one-second tie.

    ``first_page(since)`` builds the request for everything updated at or after ``since``.
    """

    kind = "next page"

    def __init__(self, first_page: Callable[[datetime], RequestSpec]) -> None:
        super().__init__()
        self._first_page = first_page
        self._tie: _Tie | None = None
        self._planned: tuple[str, RequestSpec] | None = None

    def advance(self, reply: Reply, where: str) -> None:
        """Decide the next request from ``reply`` (see the module docstring), then check it for a loop."""
        self._planned = self._plan(reply, where)
        super().advance(reply, where)

    def next_token(self, reply: Reply) -> str | None:
        """What identifies the next request: its ``since``, or the walk and the link it follows."""
        return None if self._planned is None else self._planned[0]

    def next_request(self, request: RequestSpec) -> RequestSpec:
        """The planned request (call only when not ``finished``)."""
        if self._planned is None:
            raise RuntimeError("next_request called on a finished paginator")
        return self._planned[1]

    def _plan(self, reply: Reply, where: str) -> tuple[str, RequestSpec] | None:
        listed = _listed(reply, where)
        link = reply.response.links.get("next", {}).get("url")
        seconds = {second for _, second in listed}
        if self._tie is None:
            if link and len(seconds) == 1:
                self._tie = _Tie(seconds.pop())
            else:
                self.horizon = None
                if not link:
                    return None
                if not seconds:
                    return f"link {link}", RequestSpec("GET", link)
                return self._since(max(seconds))
        tie = self._tie
        self.horizon = tie.second
        tie.listed.update(item_id for item_id, second in listed if second == tie.second)
        if link and seconds <= {tie.second}:
            return f"walk {tie.walk} {link}", RequestSpec("GET", link)
        if tie.previous is not None and tie.previous <= tie.listed:
            self._tie = None
            return self._since(tie.second + _SECOND) if _second_over(reply, tie.second) else None
        tie.ever.update(tie.listed)
        if tie.previous is not None:
            tie.disagreed += 1
            if tie.disagreed > 2 * len(tie.ever):
                raise PermanentError(
                    f"{where}: {tie.walk} walks through the {len(tie.ever)} items updated at "
                    f"{tie.second.isoformat()} never listed them alike; stopping instead of walking them forever"
                )
        tie.previous, tie.listed, tie.walk = tie.listed, set(), tie.walk + 1
        return f"walk {tie.walk} since {tie.second.isoformat()}", self._first_page(tie.second)

    def _since(self, second: datetime) -> tuple[str, RequestSpec]:
        return f"since {second.isoformat()}", self._first_page(second)


def _listed(reply: Reply, where: str) -> list[tuple[str, datetime]]:
    """(id, second of ``updated_at``) of every item, pull requests included: they hold places in the list too."""
    items = reply.body if isinstance(reply.body, list) else []
    listed = []
    for item in items:
        if not isinstance(item, dict) or item.get("id") is None:
            raise PermanentError(f"{where}: a listed item has no id")
        listed.append(
            (str(item["id"]), parse_time(item.get("updated_at"), f"{where}: updated_at").replace(microsecond=0))
        )
    return listed


def _second_over(reply: Reply, second: datetime) -> bool:
    """True unless the reply's ``Date`` says the provider's clock is still within ``second`` (no ``Date``: over)."""
    value = reply.headers.get("date")
    if not value:
        return True
    try:
        now = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return True
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    return now >= second + _SECOND
