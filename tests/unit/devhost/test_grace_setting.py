"""The shutdown grace period of ``castiel serve``: 30 s unless ``CASTIEL_SHUTDOWN_GRACE_SECONDS`` says otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from castiel.errors import ConfigError
from castiel.settings import load_settings


def test_the_grace_period_defaults_to_thirty_seconds(data_dir: Path) -> None:
    assert load_settings().shutdown_grace_seconds == 30


def test_the_grace_period_is_configurable(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASTIEL_SHUTDOWN_GRACE_SECONDS", "2.5")
    assert load_settings().shutdown_grace_seconds == 2.5


@pytest.mark.parametrize("value", ["-1", "soon"])
def test_a_grace_period_that_is_not_a_non_negative_number_is_refused(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CASTIEL_SHUTDOWN_GRACE_SECONDS", value)
    with pytest.raises(ConfigError, match="CASTIEL_SHUTDOWN_GRACE_SECONDS"):
        load_settings()
