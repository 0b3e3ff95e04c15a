"""Salesforce REST: records of any sObject (``Account``, ``Contact``, custom ``Invoice__c`` …).

The API root is the org's instance URL (the credential's ``instance_url``, or the connection's ``baseUrl``); the API
version is the ``apiVersion`` setting or, without one, the newest the org offers (``GET /services/data/``, resolved
once per connection version).

Pull: ``queryAll`` of ``SELECT <fields> FROM <sObject> WHERE SystemModstamp > t OR (SystemModstamp = t AND Id > id)
ORDER BY SystemModstamp, Id``, following ``nextRecordsUrl`` until ``done``. ``SystemModstamp`` is Salesforce's own
replication timestamp and the tie-breaker ``Id`` makes the order total, so the cursor is a ``KeysetCursor``: records
sharing a timestamp across pages or runs are neither skipped nor repeated. ``queryAll`` returns deleted rows
(``IsDeleted = true``) while they are in the Recycle Bin, 15 days at most; a cursor last asked longer ago than that
can no longer see every deletion, so the fetch starts a full pass marked ``resync`` instead. Fields are the
``fields`` setting's list for the sObject, else every field ``describe`` reports except ``base64`` ones (queryable one
record at a time).
``attributes`` is transport noise and is left out of ``data``. A record's entity type is its sObject's API name as
Salesforce spells it (``Account``, the connection's entity type), the name its webhooks carry too
(``castiel/webhooks/parsers/salesforce.py``), so a record reaches the same external-id link whichever way it arrives;
only the default shard type is lower-cased (``account``).

Push: one change goes to ``sobjects/<Name>`` (POST, PATCH, DELETE); consecutive changes of one operation and sObject
go as sObject Collections of up to 200 (``allOrNone: false``), one API call each, with a result per record.

Errors are a JSON array ``[{"message", "errorCode", "fields"}]``. The daily API quota is a 403
``REQUEST_LIMIT_EXCEEDED`` (a rate limit, an hour's pause); an expired query locator (``INVALID_QUERY_LOCATOR``) is
retried from the last checkpoint; an expired session is a 401 ``INVALID_SESSION_ID``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from adapters.base import PUSH_OPERATIONS, BaseAdapter, Stream, items_at
from adapters.cursors import Keyset, KeysetCursor, parse_time
from adapters.engine import Session
from adapters.pagination import NextUrlPaginator
from adapters.records import Change, Discovery, EntityInfo, FieldInfo, JsonObject, PushResult, PushStatus, Record
from adapters.resolution import DEFAULT_TABLE, Action, Rule
from adapters.wire import Reply, RequestSpec
from castiel.clock import now_utc
from castiel.errors import CastielError, ConfigError, NotFound, PermanentError, RetryableError
from castiel.models import Connection, Operation, Provider

RECYCLE_BIN_DAYS = 15
COLLECTION_SIZE = 200
DEFAULT_ENTITY_TYPES = ("Account", "Contact")
_VERSION = "apiVersion"
_SOBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_REQUIRED_FIELDS = ("Id", "SystemModstamp", "IsDeleted")
_READ_ONLY = frozenset(
    {
        "attributes",
        "Id",
        "IsDeleted",
        "SystemModstamp",
        "CreatedDate",
        "CreatedById",
        "LastModifiedDate",
        "LastModifiedById",
        "LastActivityDate",
        "LastViewedDate",
        "LastReferencedDate",
    }
)
_RETRYABLE_RECORD_ERRORS = frozenset({"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE"})


def _error_codes(reply: Reply) -> set[str]:
    body = reply.body
    items = body if isinstance(body, list) else [body]
    return {str(item.get("errorCode")) for item in items if isinstance(item, dict) and item.get("errorCode")}


def _code(name: str) -> Callable[[Reply], bool]:
    return lambda reply: name in _error_codes(reply)


def soql_time(moment: datetime) -> str:
    """A SOQL datetime literal (UTC, milliseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def version_key(version: str) -> tuple[int, ...]:
    """``"66.0"`` as ``(66, 0)``, so versions order as numbers."""
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True, slots=True)
class _Run:
    operation: Operation
    entity_type: str
    indices: list[int]


class SalesforceAdapter(BaseAdapter):
    """Any sObject of one org."""

    provider = Provider.SALESFORCE
    default_api_root = None
    resolution = DEFAULT_TABLE.extended(
        (Rule(Action.RATE_LIMITED, status=403, when=_code("REQUEST_LIMIT_EXCEEDED"), reason="API quota used up"),)
    )
    default_rate_limit_pause = 3600.0
    entity_types: ClassVar[dict[str, str]] = {}

    @classmethod
    def entity_types_of(cls, connection: Connection) -> Mapping[str, str]:
        """Any sObject: the connection's entity types (default ``Account`` and ``Contact``), shard type lower-cased."""
        return {name: name.lower() for name in connection.entity_types or DEFAULT_ENTITY_TYPES}

    async def on_connect(self, session: Session) -> None:
        """The API version: the setting, else the newest the org offers."""
        configured = session.connection.settings.get(_VERSION)
        if configured:
            version = session.setting(_VERSION).removeprefix("v")
            if not re.match(r"^\d+\.\d+$", version):
                raise ConfigError(f"{session.where}: {_VERSION} {configured!r} is not like 66.0")
        else:
            reply = await self.send(session, "fetch", RequestSpec("GET", "/services/data/"))
            offered = [
                str(item["version"]) for item in reply.body or [] if isinstance(item, dict) and "version" in item
            ]
            if not offered:
                raise PermanentError(f"{session.where}: GET /services/data/ listed no API versions")
            version = max(offered, key=version_key)
        session.values[_VERSION] = version

    def error_message(self, reply: Reply) -> str:
        """``errorCode: message`` of every error in the array."""
        body = reply.body
        items = body if isinstance(body, list) else [body]
        found = [
            f"{item.get('errorCode')}: {item.get('message')}"
            for item in items
            if isinstance(item, dict) and ("errorCode" in item or "message" in item)
        ]
        return "; ".join(found) if found else super().error_message(reply)

    def on_error(self, session: Session, error: CastielError, reply: Reply | None) -> CastielError:
        """An expired query locator is retried from the last checkpoint, not given up."""
        if reply is not None and "INVALID_QUERY_LOCATOR" in _error_codes(reply):
            return RetryableError(f"{error} (the query locator expired: resuming from the last checkpoint)")
        return error

    @staticmethod
    def _prefix(session: Session) -> str:
        return f"/services/data/v{session.values[_VERSION]}"

    def _sobject(self, session: Session, entity_type: str) -> str:
        if not _SOBJECT.match(entity_type):
            raise ConfigError(f"{session.where}: {entity_type!r} is not an sObject name")
        return entity_type

    async def _fields(self, session: Session, sobject: str) -> list[str]:
        configured = session.connection.settings.get("fields", {})
        if not isinstance(configured, dict):
            raise ConfigError(f"{session.where}: the setting 'fields' must map sObject names to field lists")
        names = configured.get(sobject)
        if names is None:
            described = await self._describe(session, sobject)
            names = [name for name, kind in described[1] if kind != "base64"]
        if not isinstance(names, list) or not all(isinstance(n, str) and _SOBJECT.match(n) for n in names):
            raise ConfigError(f"{session.where}: fields of {sobject} must be a list of field names")
        return [*_REQUIRED_FIELDS, *(name for name in names if name not in _REQUIRED_FIELDS)]

    async def _describe(self, session: Session, sobject: str) -> tuple[str | None, list[tuple[str, str]]]:
        spec = RequestSpec("GET", f"{self._prefix(session)}/sobjects/{sobject}/describe")
        try:
            reply = await self.send(session, "fetch", spec)
        except NotFound as exc:
            raise PermanentError(f"{exc} (no sObject {sobject} in this org)") from exc
        fields = reply.field("fields")
        described = [
            (str(item["name"]), str(item.get("type")))
            for item in (fields if isinstance(fields, list) else [])
            if isinstance(item, dict) and "name" in item
        ]
        label = reply.field("label")
        return (str(label) if label else None), described

    def needs_full_pass(self, session: Session, state: Any) -> bool:
        """A cursor last asked longer ago than the Recycle Bin keeps can no longer see every deletion.

        How long ago it was last asked, not its last record's time: a quiet sObject (no change in weeks) keeps an old
        ``since`` while the hourly pulls still see every deletion. A cursor from before ``checked`` goes by ``since``.
        """
        if not isinstance(state, Keyset):
            return False
        asked = state.checked or state.since
        return asked is not None and asked < now_utc(self.engine.clock) - timedelta(days=RECYCLE_BIN_DAYS)

    async def stream(self, session: Session, entity_type: str) -> Stream[Keyset]:
        """``queryAll`` after the cursor's (SystemModstamp, Id), in that order."""
        sobject = self._sobject(session, entity_type)
        # Every name in the query matched _SOBJECT and every literal is a checked Id or a formatted time.
        select = f"SELECT {', '.join(await self._fields(session, sobject))} FROM {sobject}"  # noqa: S608
        path = f"{self._prefix(session)}/queryAll"

        def request(state: Keyset) -> RequestSpec:
            where = ""
            if state.since is not None:
                moment = soql_time(state.since)
                if state.last_id is None:
                    where = f" WHERE SystemModstamp >= {moment}"
                elif _RECORD_ID.match(state.last_id):
                    where = (
                        f" WHERE SystemModstamp > {moment} OR (SystemModstamp = {moment} AND Id > '{state.last_id}')"
                    )
                else:
                    raise PermanentError(f"{session.where}: cursor id {state.last_id!r} is not a Salesforce Id")
            return RequestSpec("GET", path, params={"q": f"{select}{where} ORDER BY SystemModstamp ASC, Id ASC"})

        def record(item: JsonObject) -> Record:
            data = {name: value for name, value in item.items() if name != "attributes"}
            return Record(
                sobject, str(item["Id"]), parse_time(item["SystemModstamp"]), item.get("IsDeleted") is True, data
            )

        return Stream(
            entity_type, KeysetCursor(self.engine.clock), request, NextUrlPaginator, items_at("records"), record
        )

    # ---------------------------------------------------------------- push

    def write_request(self, session: Session, change: Change) -> RequestSpec:
        """``sobjects/<Name>`` create, update or delete of one record."""
        sobject = f"{self._prefix(session)}/sobjects/{self._sobject(session, change.entity_type)}"
        if change.operation is Operation.CREATE:
            return RequestSpec("POST", f"{sobject}/", json=_writable(change.data))
        record_id = self._record_id(session, change)
        if change.operation is Operation.DELETE:
            return RequestSpec("DELETE", f"{sobject}/{record_id}")
        return RequestSpec("PATCH", f"{sobject}/{record_id}", json=_writable(change.data))

    def written_id(self, change: Change, reply: Reply) -> str | None:
        """A created record's ``id``."""
        created = reply.field("id")
        return str(created) if change.operation is Operation.CREATE and created else change.external_id

    def read_request(self, session: Session, entity_type: str, external_id: str, hints: JsonObject) -> RequestSpec:
        """``GET sobjects/<Name>/<Id>`` (a deleted record is a 404)."""
        if not _RECORD_ID.match(external_id):
            raise PermanentError(f"{session.where}: {external_id!r} is not a Salesforce Id")
        sobject = self._sobject(session, entity_type)
        return RequestSpec("GET", f"{self._prefix(session)}/sobjects/{sobject}/{external_id}")

    def _record_id(self, session: Session, change: Change) -> str:
        record_id = self.require_external_id(session, change)
        if not _RECORD_ID.match(record_id):
            raise PermanentError(f"{session.where}: {record_id!r} is not a Salesforce Id")
        return record_id

    async def push(self, connection: Connection, changes: Sequence[Change]) -> list[PushResult]:
        """One change alone, consecutive ones of an operation and sObject as Collections of up to 200."""
        session = await self.open(connection)
        results: list[PushResult | None] = [None] * len(changes)
        for run in _runs(changes):
            if len(run.indices) == 1:
                index = run.indices[0]
                results[index] = await self._push_one(session, changes[index])
                continue
            for start in range(0, len(run.indices), COLLECTION_SIZE):
                chunk = run.indices[start : start + COLLECTION_SIZE]
                for index, result in zip(chunk, await self._push_collection(session, run, chunk, changes), strict=True):
                    results[index] = result
        return [result for result in results if result is not None]

    async def _push_collection(
        self, session: Session, run: _Run, chunk: list[int], changes: Sequence[Change]
    ) -> list[PushResult]:
        results: dict[int, PushResult] = {}
        sent: list[int] = []
        records: list[JsonObject] = []
        try:
            sobject = self._sobject(session, run.entity_type)
        except ConfigError as exc:
            return [PushResult(PushStatus.FAILED, changes[index].external_id, exc) for index in chunk]
        for index in chunk:
            change = changes[index]
            try:
                record_id = None if run.operation is Operation.CREATE else self._record_id(session, change)
            except PermanentError as exc:
                results[index] = PushResult(PushStatus.FAILED, change.external_id, exc)
                continue
            sent.append(index)
            records.append({"attributes": {"type": sobject}, **_writable(change.data), "id": record_id})
        if sent:
            path = f"{self._prefix(session)}/composite/sobjects"
            if run.operation is Operation.DELETE:
                ids = ",".join(str(record["id"]) for record in records)
                spec = RequestSpec("DELETE", path, params={"ids": ids, "allOrNone": "false"})
            else:
                body = [{k: v for k, v in record.items() if v is not None} for record in records]
                spec = RequestSpec(
                    "POST" if run.operation is Operation.CREATE else "PATCH",
                    path,
                    json={"allOrNone": False, "records": body},
                )
            try:
                reply = await self.send(session, PUSH_OPERATIONS[run.operation], spec)
            except CastielError as exc:
                results.update(
                    {index: PushResult(PushStatus.FAILED, changes[index].external_id, exc) for index in sent}
                )
            else:
                answers = reply.body if isinstance(reply.body, list) else []
                for position, index in enumerate(sent):
                    answer = answers[position] if position < len(answers) else None
                    results[index] = self._record_result(session, sobject, changes[index], answer)
        return [results[index] for index in chunk]

    @staticmethod
    def _record_result(session: Session, sobject: str, change: Change, answer: object) -> PushResult:
        status = {Operation.CREATE: PushStatus.CREATED, Operation.UPDATE: PushStatus.UPDATED}.get(
            change.operation, PushStatus.DELETED
        )
        if not isinstance(answer, dict):
            error = PermanentError(
                f"{session.where}: sObject Collections gave no result for {sobject} {change.external_id}"
            )
            return PushResult(PushStatus.FAILED, change.external_id, error)
        if answer.get("success") is True:
            return PushResult(status, str(answer.get("id") or change.external_id))
        errors = [item for item in answer.get("errors") or [] if isinstance(item, dict)]
        codes = {str(item.get("statusCode")) for item in errors}
        if change.operation is Operation.DELETE and "ENTITY_IS_DELETED" in codes:
            return PushResult(PushStatus.DELETED, change.external_id)
        detail = "; ".join(f"{item.get('statusCode')}: {item.get('message')}" for item in errors) or "failed"
        message = f"{session.where}: {sobject} {change.external_id or '(new)'}: {detail}"
        failure = RetryableError(message) if codes & _RETRYABLE_RECORD_ERRORS else PermanentError(message)
        return PushResult(PushStatus.FAILED, change.external_id, failure)

    # ---------------------------------------------------------------- discovery

    def auth_probe(self, session: Session) -> RequestSpec:
        """The org's limits: any valid session may read them."""
        return RequestSpec("GET", f"{self._prefix(session)}/limits")

    async def describe(self, session: Session) -> Discovery:
        """Every queryable sObject, and the fields of the connection's entity types."""
        reply = await self.send(session, "fetch", RequestSpec("GET", f"{self._prefix(session)}/sobjects/"))
        listed = reply.field("sobjects")
        available = tuple(
            str(item["name"])
            for item in (listed if isinstance(listed, list) else [])
            if isinstance(item, dict) and item.get("queryable") is True and "name" in item
        )
        entities = []
        for name in session.connection.entity_types or DEFAULT_ENTITY_TYPES:
            label, fields = await self._describe(session, self._sobject(session, name))
            entities.append(EntityInfo(name, name.lower(), tuple(FieldInfo(n, t) for n, t in fields), label))
        return Discovery(tuple(entities), available)


def _writable(data: JsonObject) -> JsonObject:
    return {name: value for name, value in data.items() if name not in _READ_ONLY}


def _runs(changes: Sequence[Change]) -> Iterator[_Run]:
    """Consecutive changes of one operation and sObject, in order."""
    current: _Run | None = None
    for index, change in enumerate(changes):
        if current is not None and (current.operation, current.entity_type) == (change.operation, change.entity_type):
            current.indices.append(index)
            continue
        if current is not None:
            yield current
        current = _Run(change.operation, change.entity_type, [index])
    if current is not None:
        yield current
