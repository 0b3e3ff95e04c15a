"""Pagination strategies: where each finds the next page, how it moves the request, and loop detection."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from adapters.pagination import (
    CursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageTokenPaginator,
    Paginator,
)
from adapters.wire import Reply, RequestSpec
from castiel.errors import PermanentError
from tests.unit.adapters.support import json_response


def reply(body: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(json_response(200, body, headers))


def link(url: str) -> dict[str, str]:
    return {"link": f'<{url}>; rel="next", <https://api.github.com/x?page=9>; rel="last"'}


LIST = RequestSpec("GET", "/items", params={"limit": 2})
QUERY = RequestSpec("POST", "/query", json={"page_size": 2})


@pytest.mark.parametrize(
    ("paginator", "replies", "expected_requests"),
    [
        (
            LinkHeaderPaginator,
            [reply([], link("https://api.github.com/x?page=2")), reply([])],
            [RequestSpec("GET", "https://api.github.com/x?page=2")],
        ),
        (
            NextUrlPaginator,
            [reply({"done": False, "nextRecordsUrl": "/services/data/v66.0/query/01g-2000"}), reply({"done": True})],
            [RequestSpec("GET", "/services/data/v66.0/query/01g-2000")],
        ),
        (
            lambda: CursorPaginator(("response_metadata", "next_cursor"), "cursor"),
            [
                reply({"response_metadata": {"next_cursor": "bmV4dA=="}}),
                reply({"response_metadata": {"next_cursor": ""}}),
            ],
            [LIST.with_params(cursor="bmV4dA==")],
        ),
        (
            PageTokenPaginator,
            [reply({"nextPageToken": "p2"}), reply({"nextSyncToken": "s1"})],
            [LIST.with_params(pageToken="p2")],
        ),
        (
            lambda: OffsetPaginator(2, "items"),
            [reply({"items": [1, 2]}), reply({"items": [3]})],
            [LIST.with_params(offset=2)],
        ),
    ],
)
def test_each_strategy_finds_the_next_page_and_the_last(
    paginator: type[Paginator], replies: list[Reply], expected_requests: list[RequestSpec]
) -> None:
    pages = paginator()
    requests = []
    request = LIST
    for answer in replies:
        pages.advance(answer, "where")
        if pages.finished:
            break
        request = pages.next_request(request)
        requests.append(request)
    assert pages.finished
    assert requests == expected_requests


def test_a_cursor_in_the_body_goes_back_in_the_body_only_while_has_more() -> None:
    pages = CursorPaginator(("next_cursor",), "start_cursor", has_more_field="has_more", in_body=True)
    pages.advance(reply({"has_more": True, "next_cursor": "c2"}), "where")
    assert pages.next_request(QUERY) == RequestSpec("POST", "/query", json={"page_size": 2, "start_cursor": "c2"})
    # Notion sends a next_cursor with has_more false on the last page of some lists: it must not be followed.
    pages.advance(reply({"has_more": False, "next_cursor": "c3"}), "where")
    assert pages.finished


@pytest.mark.parametrize(
    ("paginator", "answer"),
    [
        (LinkHeaderPaginator(), reply([], link("https://api.github.com/x?page=2"))),
        (NextUrlPaginator(), reply({"done": False, "nextRecordsUrl": "/q/01g-2000"})),
        (CursorPaginator(("next_cursor",), "cursor"), reply({"next_cursor": "same"})),
        (PageTokenPaginator(), reply({"nextPageToken": "again"})),
    ],
)
def test_a_cursor_or_url_seen_twice_stops_with_a_clear_error(paginator: Paginator, answer: Reply) -> None:
    paginator.advance(answer, "github connection c1: issue")
    with pytest.raises(PermanentError, match=r"github connection c1: issue: pagination loop: .* a second time"):
        paginator.advance(answer, "github connection c1: issue")


def test_loop_detection_remembers_every_token_not_only_the_last() -> None:
    paginator = CursorPaginator(("next_cursor",), "cursor")
    for token in ("a", "b", "c"):
        paginator.advance(reply({"next_cursor": token}), "w")
    with pytest.raises(PermanentError, match="'a' a second time after 4 pages"):
        paginator.advance(reply({"next_cursor": "a"}), "w")


def test_a_long_token_is_shortened_in_the_error() -> None:
    token = "t" * 500
    paginator = CursorPaginator(("next_cursor",), "cursor")
    paginator.advance(reply({"next_cursor": token}), "w")
    with pytest.raises(PermanentError) as raised:
        paginator.advance(reply({"next_cursor": token}), "w")
    assert len(str(raised.value)) < 300


def test_no_link_header_is_the_last_page() -> None:
    paginator = LinkHeaderPaginator()
    paginator.advance(Reply(httpx.Response(200, json=[])), "w")
    assert paginator.finished
