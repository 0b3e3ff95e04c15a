"""Echo suppression, pure: what a target still lacks of a shard (known answers per situation), and what it has once
a push landed — the push fingerprint its next report of the record will carry."""

from __future__ import annotations

from typing import Any

import pytest

from castiel.models import Connection, Operation, Provider
from castiel.sandbox.demo import GITHUB_TASKS, NOTION_TASKS
from castiel.sync.echo import PushPlan, Skip, adoption_key, plan_push, pushed_state
from castiel.sync.mapping import compile_mappings
from castiel.sync.targets import Target

GITHUB = compile_mappings(GITHUB_TASKS, {"issue": "issue"}).entity("issue")
NOTION = compile_mappings(NOTION_TASKS, {"page": "page"}).entity("page")
GH = Target(Connection(id="gh", tenant_id="t", integration_id="github", provider=Provider.GITHUB), GITHUB, ("number",))
NT = Target(Connection(id="nt", tenant_id="t", integration_id="notion", provider=Provider.NOTION), NOTION)


def shard(data: dict[str, Any], **states: dict[str, Any]) -> dict[str, Any]:
    ids = {name: state.pop("id") for name, state in states.items() if "id" in state}
    return {"id": "s1", "tenantId": "t", "shardType": "task", "data": data, "externalIds": ids, "sync": states}


TASK = {"title": "Fix login", "number": 7, "state": "open", "status": "Done", "estimate": 3}
GH_SYNCED = {"id": "1007", "snapshot": {"title": "Fix login", "number": 7, "state": "open"}}
NT_SYNCED = {"id": "p1", "snapshot": {"title": "Fix login", "status": "Done", "estimate": 3}}


@pytest.mark.parametrize(
    ("case", "doc", "target", "gone", "propagate", "expected"),
    [
        ("in step", shard(TASK, gh=dict(GH_SYNCED)), GH, False, False, Skip("in sync")),
        (
            "a field that differs: only it, with GitHub's number",
            shard({**TASK, "title": "Fix login now"}, gh=dict(GH_SYNCED)),
            GH,
            False,
            False,
            PushPlan(Operation.UPDATE, "issue", "1007", {"title": "Fix login now"},
                     {"title": "Fix login now", "number": 7}, address={"number": 7}),
        ),
        (
            "read-only and unmapped fields never go out",
            shard({**TASK, "state": "closed", "status": "Blocked"}, gh=dict(GH_SYNCED)),
            GH,
            False,
            False,
            Skip("in sync"),
        ),
        (
            "not there yet: a create of what it maps",
            shard(TASK),
            NT,
            False,
            False,
            PushPlan(Operation.CREATE, "page", None, {"title": "Fix login", "status": "Done", "estimate": 3},
                     {"properties": {"Name": {"title": [{"text": {"content": "Fix login"}}]},
                                     "Status": {"select": {"name": "Done"}}, "Estimate": {"number": 3}}},
                     adoption_key(NOTION, {"title": "Fix login", "status": "Done", "estimate": 3})),
        ),
        ("nothing it maps", shard({"number": 1}), NT, False, False, Skip("no field this connection maps")),
        (
            "deleted there: never recreated",
            shard(TASK, nt={**NT_SYNCED, "deleted": True}),
            NT,
            False,
            False,
            Skip("deleted on this connection: not recreated"),
        ),
        (
            "a delete under tombstone_only stays local",
            shard(TASK, nt=dict(NT_SYNCED)),
            NT,
            True,
            False,
            Skip("deletePolicy tombstone_only: the delete stays local"),
        ),
        (
            "a delete under propagate, addressed",
            shard(TASK, gh=dict(GH_SYNCED)),
            GH,
            True,
            True,
            PushPlan(Operation.DELETE, "issue", "1007", data={"number": 7}, address={"number": 7}),
        ),
        (
            "a delete of what never reached it",
            shard(TASK),
            NT,
            True,
            True,
            Skip("deleted before it reached this connection"),
        ),
    ],
)  # fmt: skip
def test_plans(
    case: str, doc: dict[str, Any], target: Target, gone: bool, propagate: bool, expected: PushPlan | Skip
) -> None:
    assert plan_push(doc, target, gone=gone, propagate_deletes=propagate) == expected


def test_a_value_the_mapping_cannot_write_is_named() -> None:
    with pytest.raises(ValueError, match="estimate"):
        plan_push(shard({**TASK, "estimate": "lots"}, nt=dict(NT_SYNCED)), NT, gone=False, propagate_deletes=False)


def test_the_state_after_a_push_is_what_the_provider_will_report() -> None:
    plan = plan_push(shard({**TASK, "title": "Fix login now"}, gh=dict(GH_SYNCED)), GH, gone=False,
                     propagate_deletes=False)  # fmt: skip
    assert isinstance(plan, PushPlan)
    answered = {"id": 1007, "number": 7, "title": "Fix login now", "state": "open", "labels": []}
    state = pushed_state({**GH_SYNCED, "pendingCreateAt": "x"}, plan, GITHUB, answered, "2026-01-01T00:00:00.000000Z")

    reported = compile_mappings(GITHUB_TASKS, {"issue": "issue"}).map_record(_Record(answered))[0]
    assert state["pushedFingerprint"] == reported.push_fingerprint
    assert state["snapshot"] == {"title": "Fix login now", "number": 7, "state": "open"}
    assert "pendingCreateAt" not in state
    assert plan_push(shard({**TASK, "title": "Fix login now"}, gh={"id": "1007", **state}), GH, gone=False,
                     propagate_deletes=False) == Skip("in sync")  # fmt: skip


def test_a_delete_answered_with_the_record_kept_there_remembers_what_it_will_report() -> None:
    plan = PushPlan(Operation.DELETE, "issue", "1007", address={"number": 7})
    closed = {"id": 1007, "number": 7, "title": "Fix login", "state": "closed"}
    state = pushed_state(GH_SYNCED, plan, GITHUB, closed, "2026-01-01T00:00:00.000000Z")

    reported = compile_mappings(GITHUB_TASKS, {"issue": "issue"}).map_record(_Record(closed))[0]
    assert (state["deleted"], state["deletedHash"]) == (True, reported.content_hash)
    assert "deletedHash" not in pushed_state(GH_SYNCED, plan, GITHUB, None, "2026-01-01T00:00:00.000000Z")


def test_without_an_answer_the_written_fields_join_the_snapshot() -> None:
    plan = PushPlan(Operation.UPDATE, "page", "p1", {"estimate": 5})
    state = pushed_state(NT_SYNCED, plan, NOTION, None, "2026-01-01T00:00:00.000000Z")
    assert state["snapshot"] == {"title": "Fix login", "status": "Done", "estimate": 5}


def test_the_adoption_key_ignores_what_the_provider_fills_in_with_nulls() -> None:
    assert adoption_key(GITHUB, {"title": "A"}) == adoption_key(GITHUB, {"title": "A", "number": 9, "body": None})
    assert adoption_key(GITHUB, {"title": "A"}) != adoption_key(GITHUB, {"title": "B"})


class _Record:
    entity_type = "issue"
    external_id = "1007"
    updated_at = None
    deleted = False

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
