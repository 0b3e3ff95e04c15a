"""``log_event``: one line per event, whatever a field's value holds."""

from __future__ import annotations

import logging

import pytest

from castiel.telemetry import log_event
from castiel.text import printable


def test_a_value_with_control_characters_stays_on_its_line_escaped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="castiel"):
        log_event("adapter.retry", error="boom\n2026-12-01 00:00:00,000 ERROR forged\x00", token="s3cret")
    [line] = [record.getMessage() for record in caplog.records]
    assert line == 'adapter.retry error="boom\\n2026-12-01 00:00:00,000 ERROR forged\\x00" token=***'


def test_printable_bounds_what_it_escapes() -> None:
    assert printable("a\nb" * 100, 5) == "a\\nba\\n…(+295 chars)"
