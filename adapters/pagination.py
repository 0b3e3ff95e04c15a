"""Pagination strategies: small objects the fetch loop drives with ``advance(reply)`` and ``next_request``.

Each strategy reads where the provider puts the next page — a ``Link`` header (GitHub), a next-URL field
(Salesforce's ``nextRecordsUrl`` until ``done``), a cursor field (Notion's ``next_cursor`` while ``has_more``,
Slack's ``response_metadata.next_cursor``), a page token (Google's ``nextPageToken``), or an offset — and sets it
on the next request. Every one detects loops: a cursor or URL that comes back a second time stops the fetch with a
``PermanentError`` naming it, never an endless loop (meltano's ``BaseAPIPaginator`` does this with a
``RuntimeError``; ours stays inside the taxonomy). A strategy that reads part of a page again later sets a
``horizon``: the fetch loop holds back the records beyond it until they come again (GitHub's, ``github_paging.py``).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime

from adapters.records import Record
from adapters.wire import Reply, RequestSpec
from castiel.errors import PermanentError

_SHOWN_TOKEN_CHARS = 120


class Paginator(ABC):
    """Where the next page is. ``finished`` once a reply names no next page; ``token`` is the next page's cursor."""

    kind = "cursor"
    """What a token is called in a loop error."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.finished = False
        self.pages = 0
        self.horizon: datetime | None = None
        """Records updated later than this are listed again by a later request of the same pass."""
        # Digests, not the tokens: loop detection costs a few bytes a page however long the tokens are.
        self._seen: set[bytes] = set()

    def advance(self, reply: Reply, where: str) -> None:
        """Read the next page's position from ``reply``; ``PermanentError`` when it was already seen."""
        self.pages += 1
        token = self.next_token(reply)
        if not token:
            self.token, self.finished = None, True
            return
        digest = hashlib.blake2b(token.encode(), digest_size=16).digest()
        if digest in self._seen:
            shown = token if len(token) <= _SHOWN_TOKEN_CHARS else token[:_SHOWN_TOKEN_CHARS] + "…"
            raise PermanentError(
                f"{where}: pagination loop: the provider sent {self.kind} {shown!r} a second time "
                f"after {self.pages} pages; stopping instead of fetching the same pages forever"
            )
        self._seen.add(digest)
        self.token = token

    def within_horizon(self, records: list[Record]) -> list[Record]:
        """``records`` without those beyond ``horizon``: they are emitted when listed again, not now."""
        horizon = self.horizon
        if horizon is None:
            return records
        return [record for record in records if record.updated_at is None or record.updated_at <= horizon]

    @abstractmethod
    def next_token(self, reply: Reply) -> str | None:
        """The next page's position in ``reply``; None or empty when this was the last page."""

    @abstractmethod
    def next_request(self, request: RequestSpec) -> RequestSpec:
        """``request`` moved to the next page (call only when not ``finished``)."""

    def _token(self) -> str:
        if self.token is None:
            raise RuntimeError("next_request called on a finished paginator")
        return self.token


class LinkHeaderPaginator(Paginator):
    """The ``Link`` header's ``rel="next"`` URL, followed as given (GitHub: never build page URLs yourself)."""

    kind = "next link"

    def next_token(self, reply: Reply) -> str | None:
        """The ``next`` link's URL."""
        return reply.response.links.get("next", {}).get("url")

    def next_request(self, request: RequestSpec) -> RequestSpec:
        """The next link, which carries the whole query."""
        return request.at(self._token())


class NextUrlPaginator(Paginator):
    """A URL in the body until a done flag says otherwise (Salesforce ``nextRecordsUrl`` / ``done``)."""

    kind = "next URL"

    def __init__(self, url_field: str = "nextRecordsUrl", done_field: str = "done") -> None:
        super().__init__()
        self._url_field = url_field
        self._done_field = done_field

    def next_token(self, reply: Reply) -> str | None:
        """The next URL, unless the body says it is done."""
        if reply.field(self._done_field) is True:
            return None
        url = reply.field(self._url_field)
        return url if isinstance(url, str) else None

    def next_request(self, request: RequestSpec) -> RequestSpec:
        """A GET of the next URL."""
        return RequestSpec("GET", self._token(), headers=request.headers)


class CursorPaginator(Paginator):
    """An opaque cursor in a body field, sent back as a query parameter or, ``in_body``, a JSON body field.

    With ``has_more_field`` the cursor counts only while that field is true (Notion); otherwise an empty or absent
    cursor ends the listing (Slack, Google).
    """

    def __init__(
        self, cursor_path: Sequence[str], param: str, *, has_more_field: str | None = None, in_body: bool = False
    ) -> None:
        super().__init__()
        self._path = tuple(cursor_path)
        self._param = param
        self._has_more = has_more_field
        self._in_body = in_body

    def next_token(self, reply: Reply) -> str | None:
        """The cursor, when the reply says there is more."""
        if self._has_more is not None and reply.field(self._has_more) is not True:
            return None
        cursor = reply.field(*self._path)
        return cursor if isinstance(cursor, str) else None

    def next_request(self, request: RequestSpec) -> RequestSpec:
        """``request`` with the cursor set."""
        if self._in_body:
            return request.with_json(**{self._param: self._token()})
        return request.with_params(**{self._param: self._token()})


class PageTokenPaginator(CursorPaginator):
    """Google's ``nextPageToken`` sent back as ``pageToken``; the last page has none."""

    kind = "page token"

    def __init__(self) -> None:
        super().__init__(("nextPageToken",), "pageToken")


class OffsetPaginator(Paginator):
    """``offset`` advanced by the page size; a short page is the last one."""

    kind = "offset"

    def __init__(self, limit: int, records_field: str, *, param: str = "offset", start: int = 0) -> None:
        super().__init__()
        self._limit = limit
        self._records_field = records_field
        self._param = param
        self._offset = start

    def next_token(self, reply: Reply) -> str | None:
        """The next offset, None after a page shorter than the limit."""
        records = reply.field(self._records_field)
        count = len(records) if isinstance(records, list) else 0
        if count < self._limit:
            return None
        self._offset += count
        return str(self._offset)

    def next_request(self, request: RequestSpec) -> RequestSpec:
        """``request`` at the next offset."""
        return request.with_params(**{self._param: int(self._token())})
