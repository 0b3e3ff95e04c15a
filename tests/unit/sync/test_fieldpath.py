"""Field paths and coercions: known answers, refusals with a reason, and a parse/put/get round trip."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from castiel.sync.fieldpath import COERCIONS, MISSING, FieldPath, FieldType, as_datetime

PATHS = [
    ("Name", ("Name",)),
    ("properties.Name.title[0].plain_text", ("properties", "Name", "title", 0, "plain_text")),
    ("properties.Due Date.date.start", ("properties", "Due Date", "date", "start")),
    ('properties["a.b"].value', ("properties", "a.b", "value")),
    ('["x[0]"][2][10]', ("x[0]", 2, 10)),
    ("matrix[1][0]", ("matrix", 1, 0)),
    ('a["quote \\" inside"]', ("a", 'quote " inside')),
]


@pytest.mark.parametrize(("text", "steps"), PATHS)
def test_paths_parse_into_keys_and_indexes(text: str, steps: tuple[str | int, ...]) -> None:
    assert FieldPath.parse(text).steps == steps


BAD_PATHS = [
    ("", "empty"),
    ("a..b", "empty segment at position 2"),
    ("a.", "ends with a dot"),
    (".a", "empty segment at position 0"),
    ("a[0]b", "a name must follow a dot at position 4"),
    ("a.[0]", "a bracket cannot follow a dot at position 2"),
    ("a[-1]", "unexpected '\\[' at position 1"),
    ("a[x]", "unexpected '\\[' at position 1"),
    ("a]", "unexpected '\\]' at position 1"),
    ('a["\\q"]', "is not a JSON string"),
]


@pytest.mark.parametrize(("text", "reason"), BAD_PATHS)
def test_unparseable_paths_are_refused_with_where_they_go_wrong(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        FieldPath.parse(text)


RECORD = {
    "Name": "Acme",
    "Owner": None,
    "properties": {"Name": {"title": [{"plain_text": "Ship it"}, {"plain_text": "second"}]}},
    "tags": ["a", "b"],
    "text": "abc",
}

GETS = [
    ("Name", "Acme"),
    ("Owner", None),
    ("properties.Name.title[0].plain_text", "Ship it"),
    ("properties.Name.title[1].plain_text", "second"),
    ("tags[1]", "b"),
    ("Missing", MISSING),
    ("properties.Name.title[5].plain_text", MISSING),
    ("Owner.Name", MISSING),  # through a null
    ("Name.first", MISSING),  # a key into a string
    ("text[0]", MISSING),  # an index into a string is not its first character
    ("tags.length", MISSING),  # a key into a list
    ("properties[0]", MISSING),  # an index into an object
]


@pytest.mark.parametrize(("text", "expected"), GETS)
def test_get_reads_the_value_or_missing(text: str, expected: Any) -> None:
    assert FieldPath.parse(text).get(RECORD) == expected  # MISSING equals only itself


def test_put_builds_the_objects_and_lists_on_the_way() -> None:
    payload: dict[str, Any] = {}

    FieldPath.parse("properties.Name.title[0].plain_text").put(payload, "Ship it")
    FieldPath.parse("properties.Tags.multi_select[2]").put(payload, "c")
    FieldPath.parse("properties.Name.type").put(payload, "title")
    FieldPath.parse("status").put(payload, None)

    assert payload == {
        "properties": {
            "Name": {"title": [{"plain_text": "Ship it"}], "type": "title"},
            "Tags": {"multi_select": [None, None, "c"]},
        },
        "status": None,
    }


COERCION_CASES: list[tuple[FieldType, Any, Any]] = [
    ("string", "x", "x"),
    ("string", 12, "12"),
    ("string", True, "true"),
    ("integer", 3, 3),
    ("integer", 3.0, 3),
    ("integer", " 42 ", 42),
    ("number", "2.5", 2.5),
    ("number", "7", 7),
    ("number", 1.25, 1.25),
    ("boolean", "TRUE", True),
    ("boolean", "false", False),
    ("boolean", 0, False),
    ("datetime", "2026-03-01T10:00:00.000+0000", "2026-03-01T10:00:00.000000Z"),  # Salesforce
    ("datetime", "2026-03-01T12:00:00+02:00", "2026-03-01T10:00:00.000000Z"),
    ("datetime", "2026-03-01", "2026-03-01T00:00:00.000000Z"),
    ("datetime", "1772359200.000200", "2026-03-01T10:00:00.000200Z"),  # Slack ts
    ("datetime", 1772359200, "2026-03-01T10:00:00.000000Z"),
    ("date", "2026-03-01T23:30:00Z", "2026-03-01"),
    ("date", "2026-03-01", "2026-03-01"),
    ("json", {"a": [1]}, {"a": [1]}),
]


@pytest.mark.parametrize(("kind", "value", "expected"), COERCION_CASES)
def test_coercions(kind: FieldType, value: Any, expected: Any) -> None:
    coerce = COERCIONS[kind]
    assert (value if coerce is None else coerce(value)) == expected


COERCION_FAILURES: list[tuple[FieldType, Any]] = [
    ("string", {"a": 1}),
    ("integer", 2.5),
    ("integer", True),
    ("integer", "two"),
    ("number", "lots"),
    ("number", False),
    ("boolean", "yes"),
    ("boolean", 2),
    ("datetime", "next tuesday"),
    ("datetime", True),
    ("datetime", ["2026-01-01"]),
    ("date", 20260101),
]


@pytest.mark.parametrize(("kind", "value"), COERCION_FAILURES)
def test_values_that_do_not_coerce_raise_value_error(kind: FieldType, value: Any) -> None:
    coerce = COERCIONS[kind]
    assert coerce is not None
    with pytest.raises(ValueError):  # noqa: PT011 (each coercion words its own message)
        coerce(value)


def test_times_without_an_offset_are_utc() -> None:
    assert as_datetime("2026-03-01T10:00:00") == as_datetime("2026-03-01T10:00:00Z")


# ---------------------------------------------------------------- properties

keys = st.text(min_size=1, max_size=8)
steps = st.lists(st.one_of(keys, st.integers(min_value=0, max_value=3)), min_size=1, max_size=5).filter(
    lambda path: not isinstance(path[0], int)
)
_PLAIN = re.compile(r'[^.\[\]"]+')


def render(path: list[str | int]) -> str:
    """A path's text: plain names where they parse as names, JSON-quoted keys in brackets elsewhere."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        elif _PLAIN.fullmatch(step):
            text += f".{step}" if text else step
        else:
            text += f"[{json.dumps(step)}]"
    return text


@given(steps, st.one_of(st.none(), st.integers(), st.text()))
def test_a_rendered_path_parses_back_and_reads_what_was_put(path: list[str | int], value: Any) -> None:
    parsed = FieldPath.parse(render(path))
    payload: dict[str, Any] = {}

    parsed.put(payload, value)

    assert parsed.steps == tuple(path)
    assert parsed.get(payload) == value
