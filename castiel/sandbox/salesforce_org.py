"""The Salesforce stand-in's org: Accounts and Contacts, seeded on demand, and the writes made to them.

Three seeded records share each ``SystemModstamp`` (to the millisecond), so ties at a page boundary happen; Ids of one
sObject order as their numbers do. A write keeps what it does not change, moves ``SystemModstamp`` and
``LastModifiedDate`` to now, and a delete keeps the record with ``IsDeleted`` (the Recycle Bin). The HTTP side is
``salesforce.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from castiel.clock import Clock
from castiel.sandbox.dataset import Dataset, Item, Key

SEED_MILLIS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
SYSTEM_FIELDS = frozenset({"Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"})
_CITIES = ("Paris", "Lyon", "Berlin", "Austin", "Osaka", "Lagos", "Lima")
_INDUSTRIES = ("Energy", "Retail", "Banking", "Media", "Biotechnology")
_NOT_FOUND = ("NOT_FOUND", "The requested resource does not exist")

Problem = tuple[str, str]
"""Salesforce's ``errorCode`` (or ``statusCode``) and message."""


@dataclass(frozen=True, slots=True)
class SObject:
    """An sObject type: key prefix, label, and fields with their types (``required`` on create)."""

    name: str
    prefix: str
    fields: dict[str, str]
    required: str


SOBJECTS = {
    "Account": SObject(
        "Account",
        "001",
        {
            "Id": "id",
            "IsDeleted": "boolean",
            "Name": "string",
            "Industry": "picklist",
            "AnnualRevenue": "currency",
            "BillingCity": "string",
            "CreatedDate": "datetime",
            "LastModifiedDate": "datetime",
            "SystemModstamp": "datetime",
        },
        "Name",
    ),
    "Contact": SObject(
        "Contact",
        "003",
        {
            "Id": "id",
            "IsDeleted": "boolean",
            "FirstName": "string",
            "LastName": "string",
            "Email": "email",
            "AccountId": "reference",
            "CreatedDate": "datetime",
            "LastModifiedDate": "datetime",
            "SystemModstamp": "datetime",
        },
        "LastName",
    ),
}


def record_id(sobject: SObject, n: int) -> str:
    """The 18-character Id of record ``n``; Ids of one sObject order as their numbers do."""
    return f"{sobject.prefix}SB{n:010d}AAA"


def stamp(millis: int) -> str:
    """A Salesforce datetime: milliseconds and ``+0000``."""
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}+0000"


class Org:
    """``count`` seeded records of each sObject, and the writes made since."""

    def __init__(self, count: int, clock: Clock) -> None:
        self.objects = {
            name: Dataset(count, _seeder(sobject), _seed_key(sobject), _indexer(sobject))
            for name, sobject in SOBJECTS.items()
        }
        self._clock = clock
        self._created = itertools.count(count)

    def new_id(self, sobject: SObject) -> str:
        """An Id no record has."""
        return record_id(sobject, next(self._created))

    def check_fields(self, sobject: SObject, values: dict[str, Any], *, create: bool) -> Problem | None:
        """Why ``values`` cannot be written to ``sobject``, None when they can."""
        for name in values:
            if name not in sobject.fields:
                return "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject.name}"
            if name in SYSTEM_FIELDS:
                return "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {name}."
        if create and not values.get(sobject.required):
            return "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{sobject.required}]"
        return None

    def write(self, sobject: SObject, item_id: str | None, values: dict[str, Any], *, delete: bool = False) -> Item:
        """Create (``item_id`` None), update or delete a record now."""
        now = int(self._clock() * 1000)
        dataset = self.objects[sobject.name]
        found = None if item_id is None else dataset.get(item_id)
        item_id = item_id or self.new_id(sobject)
        kept = {} if found is None else {name: v for name, v in found.body.items() if name not in SYSTEM_FIELDS}
        body = _body(item_id, now, {**kept, **values}, deleted=delete)
        body["CreatedDate"] = stamp(now) if found is None else found.body["CreatedDate"]
        item = Item(item_id, (now, item_id), body, deleted=delete)
        dataset.put(item)
        return item

    def live(self, sobject: SObject, item_id: str) -> Item | Problem:
        """The record, or why it cannot be written (not found, deleted)."""
        item = self.objects[sobject.name].get(item_id)
        if item is None:
            return _NOT_FOUND
        if item.deleted:
            return "ENTITY_IS_DELETED", "entity is deleted"
        return item

    def plan(self, method: str, record: Any) -> Callable[[], Item] | Problem:
        """One record of an sObject Collections request: the write to run, or why it cannot run."""
        if not isinstance(record, dict):
            return "JSON_PARSER_ERROR", "a record must be an object"
        if method == "DELETE":
            sobject = sobject_of(str(record["id"]))
            if sobject is None:
                return "MALFORMED_ID", f"malformed id {record['id']}"
            found = self.live(sobject, str(record["id"]))
            if isinstance(found, tuple):
                return found
            return lambda: self.write(sobject, found.id, {}, delete=True)
        typed = SOBJECTS.get(str((record.get("attributes") or {}).get("type")))
        if typed is None:
            return "INVALID_TYPE", "each record needs attributes.type naming an sObject"
        values = {k: v for k, v in record.items() if k not in ("attributes", "id")}
        problem = self.check_fields(typed, values, create=method == "POST")
        if problem is not None:
            return problem
        if method == "POST":
            return lambda: self.write(typed, None, values)
        existing = self.live(typed, str(record.get("id")))
        if isinstance(existing, tuple):
            return existing
        return lambda: self.write(typed, existing.id, values)


def sobject_of(item_id: str) -> SObject | None:
    """The sObject an Id's key prefix names."""
    return next((sobject for sobject in SOBJECTS.values() if item_id.startswith(sobject.prefix)), None)


def _seed_key(sobject: SObject) -> Callable[[int], Key]:
    return lambda i: (SEED_MILLIS + 3_600_000 + 1000 * (i // 3), record_id(sobject, i))


def _seeder(sobject: SObject) -> Callable[[int], Item]:
    key_of = _seed_key(sobject)

    def seed(i: int) -> Item:
        millis, item_id = key_of(i)
        if sobject.name == "Account":
            values: dict[str, Any] = {
                "Name": f"Account {i}",
                "Industry": _INDUSTRIES[i % len(_INDUSTRIES)],
                "AnnualRevenue": 10_000 * (i % 97),
                "BillingCity": _CITIES[i % len(_CITIES)],
            }
        else:
            values = {
                "FirstName": f"Ada{i % 50}",
                "LastName": f"Contact {i}",
                "Email": f"contact{i}@example.com",
                "AccountId": record_id(SOBJECTS["Account"], i),
            }
        return Item(item_id, (millis, item_id), _body(item_id, millis, values, deleted=False))

    return seed


def _indexer(sobject: SObject) -> Callable[[str], int | None]:
    def index_of(item_id: str) -> int | None:
        digits = item_id[5:15]
        if not (item_id.startswith(sobject.prefix + "SB") and digits.isdigit()):
            return None
        return int(digits) if record_id(sobject, int(digits)) == item_id else None

    return index_of


def _body(item_id: str, millis: int, values: dict[str, Any], *, deleted: bool) -> dict[str, Any]:
    return {
        "Id": item_id,
        "IsDeleted": deleted,
        **values,
        "CreatedDate": stamp(SEED_MILLIS),
        "LastModifiedDate": stamp(millis),
        "SystemModstamp": stamp(millis),
    }
