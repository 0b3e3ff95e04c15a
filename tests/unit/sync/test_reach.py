"""``reach``, pure: where a local edit's fields go among the connections syncing the shard type, and which are
refused (owned read-only somewhere, written nowhere)."""

from __future__ import annotations

from typing import Any

import pytest

from castiel.sync.mapping import EntityMapping, compile_mappings
from castiel.sync.reach import PULL_ONLY, READ_ONLY, UNMAPPED, Syncing, Withheld, reach


def entity(fields: dict[str, Any]) -> EntityMapping:
    return compile_mappings({"issue": {"shardType": "task", "fields": fields}}, {"issue": "task"}).entity("issue")


GH = Syncing("gh", True, entity({"title": "title", "number": {"field": "number", "readOnly": True}}))
NOTION = Syncing("notion", True, entity({"title": "title", "number": "number"}))
ARCHIVE = Syncing("archive", False, entity({"title": "title", "number": "number"}))
IDENTITY = Syncing("hub", True, EntityMapping("issue", "task"))


@pytest.mark.parametrize(
    ("fields", "syncing", "withheld", "refused"),
    [
        pytest.param(["title"], [GH], [], {}, id="written"),
        pytest.param(
            ["number", "title"],
            [GH],
            [Withheld("gh", ("number",), READ_ONLY)],
            {"number": ("gh",)},
            id="read-only-everywhere",
        ),
        pytest.param(["number"], [GH, NOTION], [Withheld("gh", ("number",), READ_ONLY)], {}, id="another-writes-it"),
        pytest.param(
            ["number"],
            [GH, ARCHIVE],
            [Withheld("archive", ("number",), PULL_ONLY), Withheld("gh", ("number",), READ_ONLY)],
            {"number": ("gh",)},
            id="pull-only-does-not-take-it",
        ),
        pytest.param(["note"], [GH], [Withheld("gh", ("note",), UNMAPPED)], {}, id="unmapped-stays-local"),
        pytest.param(["note", "number"], [IDENTITY], [], {}, id="identity-mapping-writes-all"),
        pytest.param(["number"], [], [], {}, id="no-connection"),
    ],
)
def test_where_each_field_goes(
    fields: list[str], syncing: list[Syncing], withheld: list[Withheld], refused: dict[str, tuple[str, ...]]
) -> None:
    found = reach(fields, syncing)

    assert list(found.withheld) == withheld
    assert found.refused == refused
    assert found.targets == tuple(sorted(one.connection_id for one in syncing if one.pushes))
