"""``connections add`` and ``connections update`` set a connection's sync policy (deletePolicy, sourcePriority,
fieldMergeFallback, fuzzyThreshold); a flag its strategy would ignore, or a strategy without what it needs, is a
usage error that stores nothing; ``update`` changes only what it is given, under the document's etag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.ports import DocumentStore
from tests.integration.cli.helpers import castiel_json, invoke

ADD = ("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh", "--entity-types", "issue")


def stored(connection_id: str = "gh") -> dict[str, Any]:
    (found,) = (item for item in castiel_json("connections", "list", "--json") if item["id"] == connection_id)
    return found  # type: ignore[no-any-return]


def test_add_stores_every_policy_field(data_dir: Path) -> None:
    added = castiel_json(*ADD, "--delete-policy", "propagate", "--conflict-strategy", "source_priority",
                         "--source-priority", "sf, local,gh", "--dedup-strategy", "fuzzy",
                         "--fuzzy-threshold", "75.5")  # fmt: skip
    assert added["deletePolicy"] == "propagate"
    assert added["sourcePriority"] == ["sf", "local", "gh"]
    assert added["fuzzyThreshold"] == 75.5
    assert stored() == added


def test_add_takes_a_field_merge_fallback_and_defaults_stay_without_flags(data_dir: Path) -> None:
    merged = castiel_json(*ADD, "--conflict-strategy", "field_merge", "--field-merge-fallback", "newest_wins")
    assert merged["fieldMergeFallback"] == "newest_wins"
    plain = castiel_json("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "plain")
    assert (plain["deletePolicy"], plain["sourcePriority"], plain["fuzzyThreshold"]) == ("tombstone_only", [], 90.0)


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--source-priority", "sf,gh"], "applies only with --conflict-strategy source_priority"),
        (["--conflict-strategy", "source_priority"], "is needed by --conflict-strategy source_priority"),
        (["--conflict-strategy", "source_priority", "--source-priority", "gh"], "names only this connection (gh)"),
        (["--conflict-strategy", "source_priority", "--source-priority", "sf,sf"], "names a source twice"),
        (["--conflict-strategy", "source_priority", "--source-priority", "SF!"], "is not a valid connection id"),
        (["--field-merge-fallback", "remote_wins"], "applies only with --conflict-strategy field_merge"),
        (["--conflict-strategy", "field_merge", "--field-merge-fallback", "field_merge"], "another strategy than"),
        (["--fuzzy-threshold", "80"], "applies only with --dedup-strategy fuzzy"),
        (["--dedup-strategy", "fuzzy", "--fuzzy-threshold", "101"], "less than or equal to 100"),
        (["--delete-policy", "everything"], "'everything' is not one of"),
    ],
)
def test_add_refuses_policy_flags_that_do_not_fit_and_stores_nothing(
    data_dir: Path, flags: list[str], reason: str
) -> None:
    result = invoke(*ADD, *flags)
    assert result.exit_code == 2, result.output
    assert reason in result.stderr
    assert not (data_dir / DATABASE_FILE).exists()


def test_update_changes_only_what_is_given(data_dir: Path) -> None:
    before = castiel_json(*ADD, "--settings", '{"repository": "acme/widgets"}', "--direction", "pull")
    updated = castiel_json("connections", "update", "gh", "--delete-policy", "propagate",
                           "--conflict-strategy", "source_priority", "--source-priority", "local,gh")  # fmt: skip
    assert updated == before | {
        "deletePolicy": "propagate",
        "conflictStrategy": "source_priority",
        "sourcePriority": ["local", "gh"],
    }
    assert stored() == updated

    again = castiel_json("connections", "update", "gh", "--tenant", "acme", "--settings", '{"repository": "a/b"}',
                         "--direction", "bidirectional", "--dedup-strategy", "fuzzy",
                         "--fuzzy-threshold", "60")  # fmt: skip
    assert again == updated | {
        "settings": {"repository": "a/b"},
        "syncDirection": "bidirectional",
        "dedupStrategy": "fuzzy",
        "fuzzyThreshold": 60.0,
    }


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ([], "nothing to change"),
        (["--conflict-strategy", "source_priority"], "is needed by --conflict-strategy source_priority"),
        (["--source-priority", "sf"], "applies only with --conflict-strategy source_priority, not local_wins"),
        (["--fuzzy-threshold", "50"], "applies only with --dedup-strategy fuzzy"),
        (["--settings", "[1]"], "is not a JSON object"),
    ],
)
def test_update_refuses_what_add_refuses_and_changes_nothing(data_dir: Path, flags: list[str], reason: str) -> None:
    before = castiel_json(*ADD)
    result = invoke("connections", "update", "gh", *flags)
    assert result.exit_code == 2, result.output
    assert reason in result.stderr
    assert stored() == before


def test_update_checks_a_mapping_as_add_does(data_dir: Path) -> None:
    before = castiel_json(*ADD)
    path = data_dir.parent / "mapping.json"
    path.write_text(json.dumps({"pull": {"shardType": "task"}}))
    result = invoke("connections", "update", "gh", "--mapping", str(path))
    assert result.exit_code == 2
    assert "entityMappings.pull: unknown entity type (the provider has: issue)" in result.stderr
    assert stored() == before
    path.write_text(json.dumps({"issue": {"shardType": "task", "fields": {"title": "title"}}}))
    updated = castiel_json("connections", "update", "gh", "--mapping", str(path))
    assert updated["entityMappings"]["issue"]["shardType"] == "task"


def test_update_of_a_missing_connection_is_not_found(data_dir: Path) -> None:
    castiel_json(*ADD)
    result = invoke("connections", "update", "nope", "--tenant", "acme", "--delete-policy", "propagate")
    assert result.exit_code == 1
    assert "connection 'nope' of tenant 'acme' not found" in result.stderr


def test_update_of_a_malformed_id_is_a_usage_error(data_dir: Path) -> None:
    castiel_json(*ADD)
    result = invoke("connections", "update", "Bad Id!", "--delete-policy", "propagate")
    assert result.exit_code == 2
    assert "'Bad Id!' is not a valid id" in result.stderr


def test_update_is_written_under_the_etag_it_read(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A change made between the read and the write is not overwritten: the update fails and says to run again."""
    castiel_json(*ADD)
    real_replace = SqliteDocumentStore.replace

    async def replace_after_someone_else(
        store: DocumentStore, container: str, doc: dict[str, Any], *, if_match: str | None = None
    ) -> dict[str, Any]:
        assert if_match is not None
        meanwhile = await store.read(container, doc["id"], doc["tenantId"])
        await real_replace(store, container, {**meanwhile, "status": "paused"})  # type: ignore[arg-type]
        return await real_replace(store, container, doc, if_match=if_match)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(SqliteDocumentStore, "replace", replace_after_someone_else)
        result = invoke("connections", "update", "gh", "--delete-policy", "propagate")
    assert result.exit_code == 1
    assert "connection 'gh' of tenant 'acme' changed meanwhile: run the command again" in result.stderr
    assert stored()["deletePolicy"] == "tombstone_only"
    assert stored()["status"] == "paused"
