"""A connection's entity mappings: provider records → shard fields, derived records and references, and back.

The mapping is the connection's ``entityMappings``, one entry per provider entity type::

    {"Account": {
        "shardType": "account",
        "fields": {"Name": "name",
                   "properties.Due.date.start": {"field": "due", "type": "datetime"},
                   "LastModifiedDate": {"field": "modifiedAt", "type": "datetime", "readOnly": true}},
        "derived": [{"path": "Contacts.records", "entityType": "Contact", "relationship": "account"}],
        "relationships": [{"path": "ParentId", "entityType": "Account", "type": "parent"}],
        "keys": [["name"], ["name", "website"]]}}

- ``fields``: provider field path (``castiel.sync.fieldpath``) → shard field. A value is
  the shard field's name, or ``{"field", "type", "readOnly"}``: ``type`` (string, integer, number, boolean, datetime,
  date, json — the default, as received) coerces on the way in; ``readOnly`` fields are pulled but never pushed, and
  are left out of the push fingerprint that recognises our own writes coming back. Without ``fields``, the record's
  top-level ``data`` fields map to shard fields of the same names. A path absent from a record leaves its field unset.
- ``derived``: a list in the record (``path``) whose items are records of ``entityType`` (id at ``idPath``, default
  ``Id``; modification time at ``updatedAtPath``, default the parent's), mapped by that type's own mapping and related
  to this record's shard as ``relationship``.
- ``relationships``: a field holding another record's external id (``path``) of ``entityType`` → a reference ``type``.
- ``keys``: natural keys over shard fields for composite and fuzzy dedup (default ``[["email"]]``; a key applies to a
  record only when all its fields have a value).

An entity type without an entry maps by identity into its adapter's default shard type. ``compile_mappings`` checks
and compiles a mapping once (``ConfigError`` listing every problem — an unknown entity type, a path that does not
parse); mapping a record is then plain dict work, with no parsing and no model validation per record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from castiel.errors import ConfigError, InvalidMessage
from castiel.sync.canonical import fingerprint
from castiel.sync.fieldpath import COERCIONS, MISSING, FieldPath, FieldType, as_datetime

DEFAULT_KEYS: tuple[tuple[str, ...], ...] = (("email",),)

_SHARD_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---------------------------------------------------------------- the mapping document


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class FieldSpec(_Spec):
    """The long form of a ``fields`` value."""

    field: str
    type: FieldType = "json"
    read_only: bool = False


class DerivedSpec(_Spec):
    """A list in the record whose items become records of another entity type."""

    path: str
    entity_type: str
    relationship: str
    id_path: str = "Id"
    updated_at_path: str | None = None


class RelationshipSpec(_Spec):
    """A field holding another record's external id."""

    path: str
    entity_type: str
    type: str


class EntityMappingSpec(_Spec):
    """One ``entityMappings`` entry as written (``compile_mappings`` checks it and compiles it)."""

    shard_type: str = Field(min_length=1)
    fields: dict[str, str | FieldSpec] | None = None
    derived: list[DerivedSpec] = Field(default_factory=list)
    relationships: list[RelationshipSpec] = Field(default_factory=list)
    keys: list[list[str]] | None = None


# ---------------------------------------------------------------- compiled form


class SourceRecord(Protocol):
    """A record as adapters produce it: ``{entityType, externalId, updatedAt, deleted, data}``."""

    @property
    def entity_type(self) -> str: ...
    @property
    def external_id(self) -> str: ...
    @property
    def updated_at(self) -> datetime | None: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def data(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Reference:
    """A relationship of a mapped record to another provider record, by that record's external id."""

    type: str
    entity_type: str
    external_id: str


@dataclass(slots=True)
class MappedRecord:
    """A provider record in shard terms. ``parent`` is set on a derived record (related to it as ``relationship``).

    Three fingerprints (``canonical.fingerprint``): ``content_hash`` of the fields; ``fingerprint``, what changes
    when anything the record says changes (its fields, references and parent); ``push_fingerprint`` of the fields a
    push may write, which is what a provider reports back after our own push.
    """

    entity_type: str
    external_id: str
    shard_type: str
    updated_at: datetime | None
    deleted: bool
    fields: dict[str, Any]
    content_hash: str
    fingerprint: str
    push_fingerprint: str
    references: tuple[Reference, ...] = ()
    parent: MappedRecord | None = None
    relationship: str | None = None


@dataclass(frozen=True, slots=True)
class _FieldRule:
    path: FieldPath
    shard_field: str
    coerce: Callable[[Any], Any] | None
    read_only: bool


@dataclass(frozen=True, slots=True)
class _DerivedRule:
    path: FieldPath
    entity_type: str
    relationship: str
    id_path: FieldPath
    updated_at_path: FieldPath | None


@dataclass(frozen=True, slots=True)
class _ReferenceRule:
    path: FieldPath
    entity_type: str
    type: str


@dataclass(frozen=True, slots=True)
class EntityMapping:
    """One entity type's compiled mapping; ``rules`` None maps the record's top-level fields by identity."""

    entity_type: str
    shard_type: str
    rules: tuple[_FieldRule, ...] | None = None
    derived: tuple[_DerivedRule, ...] = ()
    references: tuple[_ReferenceRule, ...] = ()
    keys: tuple[tuple[str, ...], ...] = DEFAULT_KEYS
    read_only: frozenset[str] = field(default_factory=frozenset)

    def fields_of(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The shard fields of a provider object; ``ValueError`` naming the field whose value cannot be coerced."""
        if self.rules is None:
            return dict(data)
        fields: dict[str, Any] = {}
        for rule in self.rules:
            value = rule.path.get(data)
            if value is MISSING:
                continue
            if rule.coerce is not None and value is not None:
                try:
                    value = rule.coerce(value)
                except (ValueError, TypeError, OverflowError) as exc:
                    raise ValueError(f"{rule.path.text} → {rule.shard_field}: {exc}") from None
            fields[rule.shard_field] = value
        return fields

    def push_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The subset of shard fields a push may send (and the push fingerprint covers): all but ``readOnly``."""
        if not self.read_only:
            return dict(fields)
        return {name: value for name, value in fields.items() if name not in self.read_only}

    def push_fingerprint(self, fields: Mapping[str, Any]) -> str:
        """The fingerprint of shard ``fields`` as this connection will report them back once pushed: store it as the
        pushed fingerprint, and the pull or webhook that echoes the push matches it (``MappedRecord.push_fingerprint``).
        """
        return fingerprint(self.push_fields(fields))

    def reverse(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The provider payload for shard ``fields`` (those this mapping writes; ``readOnly`` ones never)."""
        if self.rules is None:
            return dict(fields)
        payload: dict[str, Any] = {}
        for rule in self.rules:
            if not rule.read_only and rule.shard_field in fields:
                rule.path.put(payload, fields[rule.shard_field])
        return payload


class ConnectionMapping:
    """Every entity type of one connection, compiled: the forward mapping of records, and routing for pushes."""

    def __init__(self, mappings: Mapping[str, EntityMapping]) -> None:
        self._mappings = dict(mappings)

    @property
    def entity_types(self) -> list[str]:
        """Every entity type of the connection's provider, by name."""
        return sorted(self._mappings)

    def entity(self, entity_type: str) -> EntityMapping:
        """The mapping of ``entity_type``; ``ConfigError`` for a type the connection's adapter does not have."""
        try:
            return self._mappings[entity_type]
        except KeyError:
            raise ConfigError(f"no mapping for entity type {entity_type!r}") from None

    def for_shard_type(self, shard_type: str) -> list[EntityMapping]:
        """The entity types that map onto ``shard_type`` (where a push of such a shard goes), by name."""
        return sorted((m for m in self._mappings.values() if m.shard_type == shard_type), key=lambda m: m.entity_type)

    def map_record(self, record: SourceRecord) -> list[MappedRecord]:
        """``record`` and the records derived from it, parents first; ``InvalidMessage`` when it cannot be mapped."""
        mapped: list[MappedRecord] = []
        try:
            self._map(record.entity_type, record.external_id, record.updated_at, record.deleted, record.data, mapped)
        except ValueError as exc:
            raise InvalidMessage(f"{record.entity_type} {record.external_id}: {exc}") from None
        return mapped

    def _map(
        self,
        entity_type: str,
        external_id: str,
        updated_at: datetime | None,
        deleted: bool,
        data: Mapping[str, Any],
        out: list[MappedRecord],
        parent: MappedRecord | None = None,
        relationship: str | None = None,
    ) -> None:
        mapping = self.entity(entity_type)
        fields = {} if deleted else mapping.fields_of(data)
        references = () if deleted else _references(mapping, data)
        content = fingerprint(fields)
        links = [[ref.type, ref.entity_type, ref.external_id] for ref in references]
        if parent is not None:
            links.append([relationship or "", parent.entity_type, parent.external_id])
        record = MappedRecord(
            entity_type,
            external_id,
            mapping.shard_type,
            updated_at,
            deleted,
            fields,
            content,
            fingerprint({"fields": fields, "links": sorted(links)}) if links else content,
            mapping.push_fingerprint(fields) if mapping.read_only else content,
            references,
            parent,
            relationship,
        )
        out.append(record)
        if deleted:
            return
        for rule in mapping.derived:
            items = rule.path.get(data)
            for item in items if type(items) is list else ():
                child_id = rule.id_path.get(item)
                if not isinstance(child_id, str | int) or isinstance(child_id, bool) or child_id == "":
                    raise ValueError(f"{rule.path.text}: an item without an id at {rule.id_path.text}")
                child_updated = updated_at
                if rule.updated_at_path is not None and (raw := rule.updated_at_path.get(item)) is not MISSING:
                    child_updated = as_datetime(raw)
                self._map(rule.entity_type, str(child_id), child_updated, False, item, out, record, rule.relationship)


def _references(mapping: EntityMapping, data: Mapping[str, Any]) -> tuple[Reference, ...]:
    found: list[Reference] = []
    for rule in mapping.references:
        value = rule.path.get(data)
        for target in value if type(value) is list else (value,):
            if isinstance(target, str | int) and not isinstance(target, bool) and target != "":
                found.append(Reference(rule.type, rule.entity_type, str(target)))
    return tuple(found)


# ---------------------------------------------------------------- checking and compiling


def compile_mappings(raw: Mapping[str, Any] | None, entity_types: Mapping[str, str]) -> ConnectionMapping:
    """Check a connection's ``entityMappings`` against its adapter's entity types (type → default shard type) and
    compile it, with identity defaults for the types it leaves out. ``ConfigError`` listing every problem."""
    problems: list[str] = []
    compiled = {name: EntityMapping(name, shard_type) for name, shard_type in entity_types.items()}
    for entity_type, entry in (raw or {}).items():
        where = f"entityMappings.{entity_type}"
        if entity_type not in entity_types:
            known = ", ".join(sorted(entity_types)) or "none"
            problems.append(f"{where}: unknown entity type (the provider has: {known})")
            continue
        try:
            spec = EntityMappingSpec.model_validate(entry)
        except ValidationError as exc:
            problems += [f"{where}.{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()]
            continue
        compiled[entity_type] = _compile_entity(entity_type, spec, entity_types, where, problems)
    if problems:
        raise ConfigError("invalid entity mapping:\n  " + "\n  ".join(problems))
    return ConnectionMapping(compiled)


def _compile_entity(
    entity_type: str, spec: EntityMappingSpec, entity_types: Mapping[str, str], where: str, problems: list[str]
) -> EntityMapping:
    rules: list[_FieldRule] | None = None
    if spec.fields is not None:
        rules = []
        for path_text, target in spec.fields.items():
            long = FieldSpec(field=target) if isinstance(target, str) else target
            path = _path(path_text, f"{where}.fields", problems)
            if not _SHARD_FIELD.fullmatch(long.field):
                problems.append(f"{where}.fields[{path_text!r}]: shard field {long.field!r} must be an identifier")
            elif any(rule.shard_field == long.field for rule in rules):
                problems.append(f"{where}.fields[{path_text!r}]: shard field {long.field!r} is mapped twice")
            elif path is not None:
                rules.append(_FieldRule(path, long.field, COERCIONS[long.type], long.read_only))
    derived = []
    for number, item in enumerate(spec.derived):
        at = f"{where}.derived[{number}]"
        if item.entity_type not in entity_types:
            problems.append(f"{at}.entityType: unknown entity type {item.entity_type!r}")
        path, id_path = _path(item.path, at, problems), _path(item.id_path, at, problems)
        updated = None if item.updated_at_path is None else _path(item.updated_at_path, at, problems)
        if path is not None and id_path is not None:
            derived.append(_DerivedRule(path, item.entity_type, item.relationship, id_path, updated))
    references = []
    for number, ref in enumerate(spec.relationships):
        at = f"{where}.relationships[{number}]"
        if ref.entity_type not in entity_types:
            problems.append(f"{at}.entityType: unknown entity type {ref.entity_type!r}")
        if (path := _path(ref.path, at, problems)) is not None:
            references.append(_ReferenceRule(path, ref.entity_type, ref.type))
    _check_nesting(rules or (), where, problems)
    keys = _keys(spec.keys, rules, where, problems)
    read_only = frozenset(rule.shard_field for rule in rules or () if rule.read_only)
    frozen_rules = None if rules is None else tuple(rules)
    return EntityMapping(entity_type, spec.shard_type, frozen_rules, tuple(derived), tuple(references), keys, read_only)


def _check_nesting(rules: Sequence[_FieldRule], where: str, problems: list[str]) -> None:
    """A push writes every writable path into one payload, so none may lie inside another."""
    writable = [rule.path for rule in rules if not rule.read_only]
    for outer in writable:
        for inner in writable:
            if len(outer.steps) < len(inner.steps) and inner.steps[: len(outer.steps)] == outer.steps:
                problems.append(f"{where}.fields: {inner.text!r} lies inside {outer.text!r}; mark one readOnly")


def _path(text: str, where: str, problems: list[str]) -> FieldPath | None:
    try:
        return FieldPath.parse(text)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return None


def _keys(
    keys: Sequence[Sequence[str]] | None, rules: Sequence[_FieldRule] | None, where: str, problems: list[str]
) -> tuple[tuple[str, ...], ...]:
    if keys is None:
        return DEFAULT_KEYS
    mapped = None if rules is None else {rule.shard_field for rule in rules}
    for key in keys:
        if not key:
            problems.append(f"{where}.keys: a key needs at least one field")
        for name in key:
            if not _SHARD_FIELD.fullmatch(name) or (mapped is not None and name not in mapped):
                problems.append(f"{where}.keys: {name!r} is not a shard field this mapping sets")
    return tuple(tuple(key) for key in keys)
