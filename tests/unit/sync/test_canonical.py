"""The canonical form: which spellings are one value, known-answer fingerprints, and its invariants."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from castiel.sync.canonical import canonical_bytes, fingerprint, normalise, same

SAME = [
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    (1, 1.0),
    (100, 1e2),
    (0, -0.0),
    ("Ada", "  Ada\n"),
    ("line one\r\nline two", "line one\nline two"),
    ([1.0, {"x": " y "}], [1, {"x": "y"}]),
    (None, None),
]
DIFFERENT = [
    (1, True),
    (0, False),
    ("1", 1),
    ("a b", "a  b"),  # only the ends of a string are trimmed
    ([1, 2], [2, 1]),
    (None, ""),
    ({"a": None}, {}),
    (1.5, 1),
]


@pytest.mark.parametrize(("left", "right"), SAME)
def test_spellings_of_one_value_are_the_same(left: Any, right: Any) -> None:
    assert same(left, right)
    assert same(right, left)
    assert canonical_bytes(left) == canonical_bytes(right)


@pytest.mark.parametrize(("left", "right"), DIFFERENT)
def test_different_values_are_not_the_same(left: Any, right: Any) -> None:
    assert not same(left, right)
    assert canonical_bytes(left) != canonical_bytes(right)


def test_fingerprint_known_answer() -> None:
    assert canonical_bytes({"b": [1.0, " x "], "a": True}) == b'{"a":true,"b":[1,"x"]}'
    assert fingerprint({"b": [1.0, " x "], "a": True}) == fingerprint({"a": True, "b": [1, "x"]})
    assert len(fingerprint({})) == 32


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=6), st.randoms())
def test_a_fingerprint_does_not_depend_on_key_order(fields: dict[str, Any], rnd: random.Random) -> None:
    shuffled = list(fields.items())
    rnd.shuffle(shuffled)

    assert fingerprint(dict(shuffled)) == fingerprint(fields)


@given(json_values, json_values)
def test_same_agrees_with_the_canonical_bytes_and_normalising_is_idempotent(left: Any, right: Any) -> None:
    assert same(left, right) == (canonical_bytes(left) == canonical_bytes(right))
    assert normalise(normalise(left)) == normalise(left)
    assert same(left, normalise(left))
