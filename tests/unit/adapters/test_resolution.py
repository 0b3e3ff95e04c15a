"""The default response-resolution table, and a provider's rows taking precedence without replacing it."""

from __future__ import annotations

import httpx
import pytest

from adapters.resolution import DEFAULT_TABLE, Action, ResolutionTable, Rule, has_header
from adapters.wire import Reply
from tests.unit.adapters.support import json_response


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (200, Action.SUCCESS),
        (201, Action.SUCCESS),
        (204, Action.SUCCESS),
        (400, Action.FAIL),
        (401, Action.REFRESH_TOKEN_THEN_RETRY),
        (403, Action.FAIL),
        (404, Action.NOT_FOUND),
        (408, Action.RETRY),
        (410, Action.NOT_FOUND),
        (422, Action.FAIL),
        (429, Action.RATE_LIMITED),
        (500, Action.RETRY),
        (502, Action.RETRY),
        (503, Action.RETRY),
        (302, Action.FAIL),
    ],
)
def test_defaults(status: int, action: Action) -> None:
    assert DEFAULT_TABLE.resolve(Reply(httpx.Response(status))).action is action


def test_provider_rows_come_first_and_the_defaults_still_apply() -> None:
    table = DEFAULT_TABLE.extended(
        [
            Rule(Action.RATE_LIMITED, status=403, when=has_header("retry-after"), reason="secondary limit"),
            Rule(Action.FAIL, status=200, when=lambda reply: reply.field("ok") is False, reason="ok false"),
        ]
    )
    assert table.resolve(Reply(httpx.Response(403, headers={"retry-after": "60"}))).action is Action.RATE_LIMITED
    assert table.resolve(Reply(httpx.Response(403))).action is Action.FAIL
    assert table.resolve(Reply(json_response(200, {"ok": False, "error": "x"}))).action is Action.FAIL
    assert table.resolve(Reply(json_response(200, {"ok": True}))).action is Action.SUCCESS
    assert table.resolve(Reply(httpx.Response(503))).action is Action.RETRY
    assert len(table.rules) == len(DEFAULT_TABLE.rules) + 2


def test_a_table_without_a_catch_all_row_is_refused() -> None:
    with pytest.raises(ValueError, match="last row"):
        ResolutionTable([Rule(Action.SUCCESS, status=200)])


def test_a_reply_that_is_not_json_has_no_body() -> None:
    answer = Reply(httpx.Response(502, text="<html>Bad gateway</html>"))
    assert answer.body is None
    assert answer.field("error") is None
