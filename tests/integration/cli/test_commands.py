"""The ``castiel`` CLI on the embedded backends: connections, tasks, queue inspection and resubmission, status."""

from __future__ import annotations

from pathlib import Path

from tests.integration.cli.helpers import castiel, castiel_json, dead_letter_one


def test_tasks_are_added_and_listed(seeded: Path) -> None:
    task = castiel_json("tasks", "add", "--tenant", "acme", "--connection", "gh", "--priority", "high", "--id", "t1")
    assert task["priority"] == "high"
    assert task["status"] == "pending"
    listed = castiel_json("tasks", "list", "--json")
    assert [item["id"] for item in listed] == ["t1"]
    assert "t1  pending" in castiel("tasks", "list")


def test_queue_stats_json_has_both_queues_with_their_counts(seeded: Path) -> None:
    dead_letter_one(seeded, "sync-inbound", "m-1")
    stats = castiel_json("queue", "stats", "--json")
    assert stats == {
        "sync-inbound": {"active": 0, "scheduled": 0, "dead_lettered": 1},
        "sync-outbound": {"active": 0, "scheduled": 0, "dead_lettered": 0},
    }


def test_dead_letters_show_their_reason_and_resubmit_moves_them_back(seeded: Path) -> None:
    dead_letter_one(seeded, "sync-inbound", "m-1")
    (dead,) = castiel_json("queue", "dead-letters", "sync-inbound", "--json")
    assert dead["deadLetterReason"] == "PermanentError: bad config"
    assert dead["body"] == {"x": 1}

    assert "resubmitted 1 message(s)" in castiel("queue", "resubmit", "sync-inbound")

    (active,) = castiel_json("queue", "peek", "sync-inbound", "--json")
    assert active["body"] == {"x": 1}
    assert active["applicationProperties"]["castiel-resubmitted-reason"] == "PermanentError: bad config"
    assert castiel_json("queue", "dead-letters", "sync-inbound", "--json") == []


def test_status_json_reports_tasks_shards_queues_and_results(seeded: Path) -> None:
    castiel("tasks", "add", "--tenant", "acme", "--connection", "gh", "--id", "t1")
    status = castiel_json("status", "--json")
    assert status["tasks"]["pending"] == 1
    assert set(status["tasks"]) == {"pending", "queued", "running", "failed", "paused", "needs_reauth"}
    assert status["shards"] == {"issue": 0}
    assert set(status["queues"]) == {"sync-inbound", "sync-outbound"}
    assert status["lastResults"] == []
