"""Entity mappings: checking (every problem, with its reason), defaults, forward mapping, derived records,
references, fingerprints, and the reverse mapping of pushes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from castiel.errors import ConfigError, InvalidMessage
from castiel.sync.canonical import fingerprint
from castiel.sync.mapping import DEFAULT_KEYS, compile_mappings
from tests.unit.sync.records import T0, Rec

SALESFORCE = {"Account": "account", "Contact": "contact", "Opportunity": "opportunity"}
NOTION = {"page": "page"}


ACCOUNTS = {
    "Account": {
        "shardType": "account",
        "fields": {
            "Name": "name",
            "NumberOfEmployees": {"field": "employees", "type": "integer"},
            "LastModifiedDate": {"field": "modifiedAt", "type": "datetime", "readOnly": True},
            "Owner.Email": "ownerEmail",
        },
        "derived": [{"path": "Contacts.records", "entityType": "Contact", "relationship": "account"}],
        "relationships": [{"path": "ParentId", "entityType": "Account", "type": "parent"}],
        "keys": [["name"]],
    },
    "Contact": {
        "shardType": "contact",
        "fields": {
            "Email": "email",
            "LastName": "name",
            "LastModifiedDate": {"field": "modifiedAt", "type": "datetime"},
        },
        "derived": [],
    },
}

ACCOUNT_DATA = {
    "Name": "Acme",
    "NumberOfEmployees": "120",
    "LastModifiedDate": "2026-03-01T10:00:00.000+0000",
    "Owner": None,
    "ParentId": "001P",
    "Contacts": {
        "totalSize": 2,
        "records": [
            {
                "Id": "003A",
                "Email": "ada@acme.test",
                "LastName": "Lovelace",
                "LastModifiedDate": "2026-02-01T00:00:00Z",
            },
            {"Id": "003B", "Email": "bob@acme.test", "LastName": "Babbage"},
        ],
    },
}


# ---------------------------------------------------------------- checking


INVALID_MAPPINGS = [
    pytest.param({"Lead": {"shardType": "lead"}}, ["entityMappings.Lead: unknown entity type"], id="unknown-type"),
    pytest.param({"Account": {"fields": {}}}, ["entityMappings.Account.shardType: Field required"], id="no-shard-type"),
    pytest.param(
        {"Account": {"shardType": "account", "fields": {"a..b": "x"}}},
        ["entityMappings.Account.fields: path 'a..b': empty segment at position 2"],
        id="bad-path",
    ),
    pytest.param(
        {"Account": {"shardType": "account", "fields": {"Name": "first name"}}},
        ["shard field 'first name' must be an identifier"],
        id="bad-shard-field",
    ),
    pytest.param(
        {"Account": {"shardType": "account", "fields": {"Name": "name", "Title": "name"}}},
        ["shard field 'name' is mapped twice"],
        id="mapped-twice",
    ),
    pytest.param(
        {"Account": {"shardType": "account", "fields": {"Name": {"field": "name", "type": "money"}}}},
        ["entityMappings.Account.fields.Name.str: Input should be a valid string"],
        id="bad-type",
    ),
    pytest.param(
        {"Account": {"shardType": "account", "colour": "red"}},
        ["entityMappings.Account.colour: Extra inputs are not permitted"],
        id="unknown-key",
    ),
    pytest.param(
        {
            "Account": {
                "shardType": "account",
                "derived": [{"path": "Cases.records", "entityType": "Case", "relationship": "x"}],
            }
        },
        ["entityMappings.Account.derived[0].entityType: unknown entity type 'Case'"],
        id="unknown-derived-type",
    ),
    pytest.param(
        {
            "Account": {
                "shardType": "account",
                "relationships": [{"path": "Parent[", "entityType": "Account", "type": "p"}],
            }
        },
        ["entityMappings.Account.relationships[0]: path 'Parent['"],
        id="bad-relationship-path",
    ),
    pytest.param(
        {"Account": {"shardType": "account", "fields": {"a": "x", "a.b": "y"}}},
        ["'a.b' lies inside 'a'"],
        id="nested-writable-paths",
    ),
    pytest.param(
        {"Account": {"shardType": "account", "fields": {"Name": "name"}, "keys": [["email"], []]}},
        ["'email' is not a shard field this mapping sets", "a key needs at least one field"],
        id="bad-keys",
    ),
]


@pytest.mark.parametrize(("raw", "reasons"), INVALID_MAPPINGS)
def test_an_invalid_mapping_is_refused_with_every_reason(raw: dict[str, Any], reasons: list[str]) -> None:
    with pytest.raises(ConfigError) as refused:
        compile_mappings(raw, SALESFORCE)

    for reason in reasons:
        assert reason in str(refused.value)


def test_every_problem_of_a_mapping_is_reported_at_once() -> None:
    raw = {"Lead": {"shardType": "lead"}, "Account": {"shardType": "account", "fields": {"a..b": "x", "c": "d e"}}}

    with pytest.raises(ConfigError) as refused:
        compile_mappings(raw, SALESFORCE)

    assert str(refused.value).count("\n  entityMappings.") == 3


def test_a_type_without_an_entry_maps_its_data_by_identity_into_the_default_shard_type() -> None:
    mapping = compile_mappings(None, NOTION)

    [mapped] = mapping.map_record(Rec("page", "p1", {"title": "Ship", "properties": {"Done": True}}))

    assert (mapped.shard_type, mapped.fields) == ("page", {"title": "Ship", "properties": {"Done": True}})
    assert mapping.entity("page").keys == DEFAULT_KEYS
    assert mapping.entity("page").reverse({"title": "Shipped"}) == {"title": "Shipped"}


def test_a_type_the_connection_does_not_have_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no mapping for entity type 'Lead'"):
        compile_mappings(None, SALESFORCE).map_record(Rec("Lead", "00Q1"))


# ---------------------------------------------------------------- forward


def test_a_record_maps_with_coercion_and_its_derived_records_follow_it() -> None:
    mapping = compile_mappings(ACCOUNTS, SALESFORCE)

    account, ada, bob = mapping.map_record(Rec("Account", "001A", ACCOUNT_DATA))

    assert account.fields == {
        "name": "Acme",
        "employees": 120,
        "modifiedAt": "2026-03-01T10:00:00.000000Z",
    }  # Owner.Email runs through a null: the field is left unset
    assert [(r.type, r.entity_type, r.external_id) for r in account.references] == [("parent", "Account", "001P")]
    assert (ada.entity_type, ada.external_id, ada.shard_type) == ("Contact", "003A", "contact")
    assert ada.fields == {"email": "ada@acme.test", "name": "Lovelace", "modifiedAt": "2026-02-01T00:00:00.000000Z"}
    assert (ada.parent, ada.relationship, ada.updated_at) == (account, "account", T0)
    assert bob.fields == {"email": "bob@acme.test", "name": "Babbage"}


def test_a_derived_record_takes_its_own_time_when_the_mapping_says_where() -> None:
    derived = {"path": "Contacts.records", "entityType": "Contact", "relationship": "account"}
    raw = {"Account": {"shardType": "account", "derived": [{**derived, "updatedAtPath": "SystemModstamp"}]}}
    data = {"Contacts": {"records": [{"Id": "003A", "SystemModstamp": "2026-01-05T00:00:00Z"}]}}

    _, contact = compile_mappings(raw, SALESFORCE).map_record(Rec("Account", "001A", data))

    assert contact.updated_at == datetime(2026, 1, 5, tzinfo=UTC)


def test_a_value_that_does_not_coerce_fails_the_record_with_its_id_and_field() -> None:
    mapping = compile_mappings(ACCOUNTS, SALESFORCE)

    with pytest.raises(InvalidMessage, match=r"Account 001A: NumberOfEmployees → employees: .*'lots'"):
        mapping.map_record(Rec("Account", "001A", {"NumberOfEmployees": "lots"}))


def test_a_derived_item_without_an_id_fails_the_record() -> None:
    mapping = compile_mappings(ACCOUNTS, SALESFORCE)

    with pytest.raises(InvalidMessage, match=r"Contacts\.records: an item without an id at Id"):
        mapping.map_record(Rec("Account", "001A", {"Contacts": {"records": [{"Email": "x@y.z"}]}}))


def test_a_deleted_record_maps_to_no_fields_and_no_derived_records() -> None:
    [mapped] = compile_mappings(ACCOUNTS, SALESFORCE).map_record(Rec("Account", "001A", ACCOUNT_DATA, deleted=True))

    assert (mapped.deleted, mapped.fields, mapped.references) == (True, {}, ())


@pytest.mark.parametrize(
    ("value", "expected"),
    [("001P", ["001P"]), (["001P", "", None, 7], ["001P", "7"]), (None, []), ("", []), (True, [])],
)
def test_references_take_every_usable_id(value: Any, expected: list[str]) -> None:
    mapping = compile_mappings(ACCOUNTS, SALESFORCE)

    [account] = mapping.map_record(Rec("Account", "001A", {"ParentId": value}))

    assert [reference.external_id for reference in account.references] == expected


def test_fingerprints_ignore_key_order_and_the_push_fingerprint_ignores_read_only_fields() -> None:
    mapping = compile_mappings(ACCOUNTS, SALESFORCE)
    first = {"Name": "Acme", "LastModifiedDate": "2026-03-01T10:00:00Z"}
    later = {"LastModifiedDate": "2026-03-02T10:00:00Z", "Name": "Acme"}

    [a] = mapping.map_record(Rec("Account", "001A", first))
    [b] = mapping.map_record(Rec("Account", "001A", later))

    assert a.fingerprint != b.fingerprint
    assert a.push_fingerprint == b.push_fingerprint == fingerprint({"name": "Acme"})
    assert a.fingerprint == fingerprint({"modifiedAt": "2026-03-01T10:00:00.000000Z", "name": "Acme"})


def test_a_changed_reference_or_parent_changes_the_fingerprint_but_not_the_content_hash() -> None:
    mapping = compile_mappings(ACCOUNTS, SALESFORCE)
    contacts = {"records": [{"Id": "003A", "Email": "ada@acme.test"}]}

    one, one_child = mapping.map_record(
        Rec("Account", "001A", {"Name": "Acme", "ParentId": "P1", "Contacts": contacts})
    )
    two, two_child = mapping.map_record(
        Rec("Account", "001B", {"Name": "Acme", "ParentId": "P2", "Contacts": contacts})
    )

    assert one.content_hash == two.content_hash == fingerprint({"name": "Acme"})
    assert one.fingerprint != two.fingerprint
    assert one_child.content_hash == two_child.content_hash
    assert one_child.fingerprint != two_child.fingerprint  # another parent


# ---------------------------------------------------------------- reverse


TASKS = {
    "page": {
        "shardType": "task",
        "fields": {
            "properties.Name.title[0].plain_text": "title",
            "properties.Done.checkbox": {"field": "done", "type": "boolean"},
            "last_edited_time": {"field": "editedAt", "type": "datetime", "readOnly": True},
        },
    }
}


def test_reverse_builds_the_provider_payload_without_read_only_fields() -> None:
    mapping = compile_mappings(TASKS, NOTION)

    payload = mapping.entity("page").reverse({"title": "Ship", "done": True, "editedAt": "x", "unmapped": 1})

    assert payload == {"properties": {"Name": {"title": [{"plain_text": "Ship"}]}, "Done": {"checkbox": True}}}
    assert mapping.entity("page").reverse({"done": False}) == {"properties": {"Done": {"checkbox": False}}}


def test_pushes_are_routed_to_the_entity_types_of_a_shard_type() -> None:
    raw = {"Account": {"shardType": "org"}, "Opportunity": {"shardType": "org"}}
    mapping = compile_mappings(raw, SALESFORCE)

    assert [m.entity_type for m in mapping.for_shard_type("org")] == ["Account", "Opportunity"]
    assert [m.entity_type for m in mapping.for_shard_type("contact")] == ["Contact"]
    assert mapping.for_shard_type("issue") == []


titles = st.text(max_size=20)


def test_what_a_push_writes_comes_back_with_the_fingerprint_it_was_pushed_with() -> None:
    entity = compile_mappings(TASKS, NOTION).entity("page")
    shard_fields = {"title": "Ship", "done": True, "editedAt": "2026-03-01T10:00:00.000000Z"}
    pushed = entity.push_fingerprint(shard_fields)
    # The provider answers with the pushed values and its own edit time.
    echoed = {**entity.reverse(shard_fields), "last_edited_time": "2026-03-01T10:00:05.000Z"}

    [record] = compile_mappings(TASKS, NOTION).map_record(Rec("page", "p1", echoed))

    assert record.push_fingerprint == pushed
    assert record.fingerprint != pushed


@given(titles, st.booleans())
def test_reverse_then_forward_gives_back_the_writable_fields(title: str, done: bool) -> None:
    entity = compile_mappings(TASKS, NOTION).entity("page")
    fields = {"title": title, "done": done}

    assert entity.fields_of(entity.reverse(fields)) == fields
