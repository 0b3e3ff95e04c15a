"""Fault plans: exact statuses first, then seeded draws at the configured rates."""

from __future__ import annotations

import pytest

from castiel.errors import ConfigError
from castiel.sandbox.faults import SERVER_ERRORS, Faults


def test_no_plan_means_no_faults() -> None:
    assert {Faults().draw("github") for _ in range(100)} == {None}


def test_the_next_statuses_come_first_and_in_order() -> None:
    faults = Faults()
    faults.configure("slack", next_statuses=[429, 503])
    assert [faults.draw("slack") for _ in range(3)] == [429, 503, None]
    assert faults.draw("github") is None


def test_rates_are_drawn_from_a_seeded_generator() -> None:
    def run() -> list[int | None]:
        faults = Faults(seed=7)
        faults.configure("notion", rate_429=0.2, rate_5xx=0.3)
        return [faults.draw("notion") for _ in range(2000)]

    drawn = run()
    assert drawn == run()
    assert 300 < drawn.count(429) < 500
    assert 500 < sum(1 for status in drawn if status in SERVER_ERRORS) < 700


def test_clear_removes_every_plan() -> None:
    faults = Faults()
    faults.configure("google", rate_5xx=1.0)
    faults.clear()
    assert faults.draw("google") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_429": 1.5}, "rate429 must be between 0 and 1"),
        ({"rate_5xx": -0.1}, "rate5xx must be between 0 and 1"),
        ({"retry_after": -1}, "retryAfter must not be negative"),
        ({"next_statuses": [404]}, "next statuses must be 429 or 5xx"),
    ],
)
def test_nonsense_is_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Faults().configure("github", **options)  # type: ignore[arg-type]
