"""Fixtures of the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli.helpers import castiel


@pytest.fixture
def seeded(data_dir: Path) -> Path:
    """A data directory with one GitHub connection, ``gh`` of tenant ``acme``."""
    castiel("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh", "--entity-types", "issue")
    return data_dir
