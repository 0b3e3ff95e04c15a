"""Salesforce REST stand-in: an org with Accounts and Contacts, served under ``/salesforce`` (its instance URL).

``GET /services/data/`` lists the versions (no session needed); under ``/services/data/vXX.X``: ``query`` and
``queryAll`` (the SOQL of ``salesforce_soql.py``, batches of 2,000 or ``Sforce-Query-Options: batchSize``, followed
by ``nextRecordsUrl`` until ``done``), ``sobjects`` (describe global and per object), single-record create, update and
delete, sObject Collections of up to 200, and ``limits``. Three seeded records share each ``SystemModstamp``, so ties
at a page boundary happen. A deletion stays visible to ``queryAll`` as ``IsDeleted: true``. Every answer but the
version list carries ``Sforce-Limit-Info``; errors are a JSON array of ``{"message", "errorCode", "fields"}``.
"""

from __future__ import annotations

import itertools
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from castiel.sandbox.dataset import Dataset, Item, Key
from castiel.sandbox.provider import ProviderApi, json_body, json_response
from castiel.sandbox.salesforce_soql import Soql, SoqlError, parse

VERSIONS = ("64.0", "65.0", "66.0")
_LABELS = {"64.0": "Summer '25", "65.0": "Winter '26", "66.0": "Spring '26"}
DAILY_LIMIT = 15000
BATCH_SIZE = 2000
COLLECTION_LIMIT = 200
SEED_MILLIS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
_VERSION_PATH = re.compile(r"^/salesforce/services/data/v(?P<version>[^/]+)")
_SYSTEM = frozenset({"Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"})
_CITIES = ("Paris", "Lyon", "Berlin", "Austin", "Osaka", "Lagos", "Lima")
_INDUSTRIES = ("Energy", "Retail", "Banking", "Media", "Biotechnology")


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


def _stamp(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}+0000"


def _errors(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response([{"message": message, "errorCode": code, "fields": []}], status, headers)


@dataclass(slots=True)
class _Locator:
    soql: Soql
    version: str
    deleted: bool
    last: Key | None
    served: int
    total: int


class SalesforceApi(ProviderApi):
    """Accounts and Contacts, ``count`` of each seeded."""

    name = "salesforce"
    objects: dict[str, Dataset]

    def reset(self) -> None:
        """The seeded records afresh; open query locators are gone."""
        self.objects = {
            name: Dataset(self.count, self._seeder(sobject), self._seed_key(sobject), self._indexer(sobject))
            for name, sobject in SOBJECTS.items()
        }
        self.batch_size = BATCH_SIZE
        self._created = itertools.count(self.count)
        self._locators: OrderedDict[str, _Locator] = OrderedDict()
        self._locator_ids = itertools.count(1)
        self._used = 0

    @property
    def datasets(self) -> dict[str, Dataset]:
        """``Account`` and ``Contact``."""
        return self.objects

    @staticmethod
    def _seed_key(sobject: SObject) -> Any:
        return lambda i: (SEED_MILLIS + 3_600_000 + 1000 * (i // 3), record_id(sobject, i))

    def _seeder(self, sobject: SObject) -> Any:
        key_of = self._seed_key(sobject)

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
            return Item(item_id, (millis, item_id), self._body(sobject, item_id, millis, values, deleted=False))

        return seed

    @staticmethod
    def _indexer(sobject: SObject) -> Any:
        def index_of(item_id: str) -> int | None:
            digits = item_id[5:15]
            if not (item_id.startswith(sobject.prefix + "SB") and digits.isdigit()):
                return None
            return int(digits) if record_id(sobject, int(digits)) == item_id else None

        return index_of

    @staticmethod
    def _body(sobject: SObject, item_id: str, millis: int, values: dict[str, Any], *, deleted: bool) -> dict[str, Any]:
        return {
            "Id": item_id,
            "IsDeleted": deleted,
            **values,
            "CreatedDate": _stamp(SEED_MILLIS),
            "LastModifiedDate": _stamp(millis),
            "SystemModstamp": _stamp(millis),
        }

    # ---------------------------------------------------------------- routes

    def routes(self) -> list[BaseRoute]:
        """Versions, then everything under a version."""
        versioned = [
            Route("/", self.endpoint(self.resources), methods=["GET"]),
            Route("/limits", self.endpoint(self.limits), methods=["GET"]),
            Route("/query", self.endpoint(self.query), methods=["GET"]),
            Route("/queryAll", self.endpoint(self.query_all), methods=["GET"]),
            Route("/query/{locator}", self.endpoint(self.more), methods=["GET"]),
            Route("/queryAll/{locator}", self.endpoint(self.more), methods=["GET"]),
            Route("/sobjects/", self.endpoint(self.describe_global), methods=["GET"]),
            Route("/sobjects/{sobject}/describe", self.endpoint(self.describe), methods=["GET"]),
            Route("/sobjects/{sobject}/", self.endpoint(self.create_one), methods=["POST"]),
            Route("/sobjects/{sobject}/{id}", self.endpoint(self.update_one), methods=["PATCH"]),
            Route("/sobjects/{sobject}/{id}", self.endpoint(self.delete_one), methods=["DELETE"]),
            Route("/composite/sobjects", self.endpoint(self.collection), methods=["POST", "PATCH", "DELETE"]),
        ]
        return [
            Route("/salesforce/services/data/", self.endpoint(self.versions, authenticated=False), methods=["GET"]),
            Mount("/salesforce/services/data/v{version}", routes=versioned),
        ]

    def refuse_token(self, request: Request) -> Response:
        """401 ``INVALID_SESSION_ID``."""
        return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def check_request(self, request: Request) -> Response | None:
        """A version the org does not offer is a 404."""
        match = _VERSION_PATH.match(request.url.path)
        if match is not None and match["version"] not in VERSIONS:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        return None

    def fault(self, status: int, retry_after: int) -> Response:
        """The daily quota (403 ``REQUEST_LIMIT_EXCEEDED``, ``api-usage`` at its limit), or a server error."""
        if status == 429:
            headers = {"sforce-limit-info": f"api-usage={DAILY_LIMIT}/{DAILY_LIMIT}"}
            return _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", headers)
        if status == 503:
            return _errors(503, "SERVER_UNAVAILABLE", "Server unavailable, try again later")
        return _errors(status, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId.")

    def decorate(self, response: Response) -> None:
        """``Sforce-Limit-Info: api-usage=used/limit``."""
        self._used += 1
        if "sforce-limit-info" not in response.headers:
            response.headers["sforce-limit-info"] = f"api-usage={min(self._used, DAILY_LIMIT)}/{DAILY_LIMIT}"

    async def versions(self, request: Request) -> Response:
        """The versions the org offers."""
        listed = [{"label": _LABELS[v], "url": f"/services/data/v{v}", "version": v} for v in VERSIONS]
        return json_response(listed)

    async def resources(self, request: Request) -> Response:
        """The resources of a version."""
        base = f"/services/data/v{request.path_params['version']}"
        names = ("sobjects", "query", "queryAll", "limits", "composite")
        return json_response({name: f"{base}/{name}" for name in names})

    async def limits(self, request: Request) -> Response:
        """The daily API quota."""
        return json_response({"DailyApiRequests": {"Max": DAILY_LIMIT, "Remaining": max(0, DAILY_LIMIT - self._used)}})

    async def describe_global(self, request: Request) -> Response:
        """Every sObject."""
        listed = [
            {"name": s.name, "label": s.name, "keyPrefix": s.prefix, "queryable": True} for s in SOBJECTS.values()
        ]
        return json_response({"encoding": "UTF-8", "maxBatchSize": COLLECTION_LIMIT, "sobjects": listed})

    async def describe(self, request: Request) -> Response:
        """One sObject's fields."""
        sobject = SOBJECTS.get(request.path_params["sobject"])
        if sobject is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        fields = [
            {
                "name": name,
                "type": kind,
                "label": name,
                "updateable": name not in _SYSTEM,
                "createable": name not in _SYSTEM,
            }
            for name, kind in sobject.fields.items()
        ]
        return json_response({"name": sobject.name, "label": sobject.name, "queryable": True, "fields": fields})

    async def query(self, request: Request) -> Response:
        """``query``: live records only."""
        return self._start(request, deleted=False)

    async def query_all(self, request: Request) -> Response:
        """``queryAll``: deleted records too."""
        return self._start(request, deleted=True)

    def _start(self, request: Request, *, deleted: bool) -> Response:
        try:
            soql = parse(request.query_params.get("q", ""))
        except SoqlError as exc:
            return _errors(400, exc.code, str(exc))
        dataset, sobject = self.objects.get(soql.sobject), SOBJECTS.get(soql.sobject)
        if dataset is None or sobject is None:
            return _errors(400, "INVALID_TYPE", f"sObject type '{soql.sobject}' is not supported.")
        unknown = [name for name in soql.fields if name not in sobject.fields]
        if unknown:
            return _errors(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on entity '{soql.sobject}'.")
        total = dataset.count_after(soql.after, deleted=deleted)
        locator = _Locator(
            soql, request.path_params["version"], deleted, soql.after, 0, min(total, soql.limit or total)
        )
        return self._batch(request, locator)

    async def more(self, request: Request) -> Response:
        """The next batch of a query (``nextRecordsUrl``)."""
        locator_id, _, served = request.path_params["locator"].rpartition("-")
        locator = self._locators.get(locator_id)
        if locator is None or str(locator.served) != served:
            return _errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        del self._locators[locator_id]
        return self._batch(request, locator, locator_id)

    def expire_query_locators(self) -> None:
        """Every open query's ``nextRecordsUrl`` is answered with ``INVALID_QUERY_LOCATOR`` from now on."""
        self._locators.clear()

    def _batch(self, request: Request, locator: _Locator, locator_id: str | None = None) -> Response:
        options = request.headers.get("sforce-query-options", "")
        match = re.search(r"batchSize=(\d+)", options)
        size = max(200, min(BATCH_SIZE, int(match[1]))) if match else self.batch_size
        size = min(size, locator.total - locator.served)
        listed = self.objects[locator.soql.sobject].after(locator.last, deleted=locator.deleted)
        items = [item for _, item in zip(range(size), listed, strict=False)]
        locator.served += len(items)
        locator.last = items[-1].key if items else locator.last
        done = locator.served >= locator.total or not items
        body: dict[str, Any] = {
            "totalSize": locator.total,
            "done": done,
            "records": [self._shown(locator, item) for item in items],
        }
        if not done:
            locator_id = locator_id or f"01gSB{next(self._locator_ids):013d}"
            self._locators[locator_id] = locator
            if len(self._locators) > 1000:
                self._locators.popitem(last=False)
            body["nextRecordsUrl"] = f"/services/data/v{locator.version}/query/{locator_id}-{locator.served}"
        return json_response(body)

    @staticmethod
    def _shown(locator: _Locator, item: Item) -> dict[str, Any]:
        sobject = locator.soql.sobject
        url = f"/services/data/v{locator.version}/sobjects/{sobject}/{item.id}"
        return {
            "attributes": {"type": sobject, "url": url},
            **{name: item.body.get(name) for name in locator.soql.fields},
        }

    # ---------------------------------------------------------------- writes

    def _check_fields(self, sobject: SObject, values: dict[str, Any], *, create: bool) -> tuple[str, str] | None:
        for name in values:
            if name not in sobject.fields:
                return "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject.name}"
            if name in _SYSTEM:
                return "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {name}."
        if create and not values.get(sobject.required):
            return "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{sobject.required}]"
        return None

    def _write(self, sobject: SObject, item_id: str | None, values: dict[str, Any], *, delete: bool = False) -> Item:
        now = int(self.shared.clock() * 1000)
        dataset = self.objects[sobject.name]
        found = None if item_id is None else dataset.get(item_id)
        item_id = item_id or record_id(sobject, next(self._created))
        kept = {} if found is None else {name: v for name, v in found.body.items() if name not in _SYSTEM}
        body = self._body(sobject, item_id, now, {**kept, **values}, deleted=delete)
        body["CreatedDate"] = _stamp(now) if found is None else found.body["CreatedDate"]
        item = Item(item_id, (now, item_id), body, deleted=delete)
        dataset.put(item)
        return item

    def _live(self, sobject: SObject, item_id: str) -> Item | tuple[str, str]:
        item = self.objects[sobject.name].get(item_id)
        if item is None:
            return "NOT_FOUND", "The requested resource does not exist"
        if item.deleted:
            return "ENTITY_IS_DELETED", "entity is deleted"
        return item

    async def create_one(self, request: Request) -> Response:
        """``POST sobjects/<Name>/``: 201 with the new Id."""
        sobject = SOBJECTS.get(request.path_params["sobject"])
        body = await json_body(request)
        if sobject is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        if not isinstance(body, dict):
            return _errors(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of the request body")
        problem = self._check_fields(sobject, body, create=True)
        if problem is not None:
            return _errors(400, *problem)
        self.record_push(request, body)
        return json_response({"id": self._write(sobject, None, body).id, "success": True, "errors": []}, 201)

    async def update_one(self, request: Request) -> Response:
        """``PATCH sobjects/<Name>/<Id>``: 204."""
        sobject = SOBJECTS.get(request.path_params["sobject"])
        body = await json_body(request)
        if sobject is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        found = self._live(sobject, request.path_params["id"])
        if isinstance(found, tuple):
            return _errors(404, *found)
        if not isinstance(body, dict):
            return _errors(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of the request body")
        problem = self._check_fields(sobject, body, create=False)
        if problem is not None:
            return _errors(400, *problem)
        self.record_push(request, body)
        self._write(sobject, found.id, body)
        return Response(status_code=204)

    async def delete_one(self, request: Request) -> Response:
        """``DELETE sobjects/<Name>/<Id>``: 204, into the Recycle Bin."""
        sobject = SOBJECTS.get(request.path_params["sobject"])
        if sobject is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        found = self._live(sobject, request.path_params["id"])
        if isinstance(found, tuple):
            return _errors(404, *found)
        self.record_push(request, None)
        self._write(sobject, found.id, {}, delete=True)
        return Response(status_code=204)

    async def collection(self, request: Request) -> Response:
        """sObject Collections: up to 200 creates, updates or deletes, one result each."""
        if request.method == "DELETE":
            ids = [item_id for item_id in request.query_params.get("ids", "").split(",") if item_id]
            all_or_none = request.query_params.get("allOrNone") == "true"
            records: list[Any] = [{"id": item_id} for item_id in ids]
        else:
            body = await json_body(request)
            if not isinstance(body, dict) or not isinstance(body.get("records"), list):
                return _errors(400, "JSON_PARSER_ERROR", "the body needs records")
            records, all_or_none = body["records"], body.get("allOrNone") is True
        if len(records) > COLLECTION_LIMIT:
            return _errors(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
            )
        self.record_push(request, {"allOrNone": all_or_none, "records": records})
        planned = [self._plan(request.method, record) for record in records]
        failed = any(isinstance(plan, dict) for plan in planned)
        results = []
        for plan in planned:
            if isinstance(plan, dict):
                results.append(plan)
            elif all_or_none and failed:
                rolled_back = {
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the request was using "
                    "AllOrNone header",
                    "fields": [],
                }
                results.append({"id": None, "success": False, "errors": [rolled_back]})
            else:
                results.append({"id": plan().id, "success": True, "errors": []})
        return json_response(results)

    def _plan(self, method: str, record: Any) -> Any:
        """A write to run (a function) or its failure (a result object)."""

        def failure(code: str, message: str) -> dict[str, Any]:
            return {"id": None, "success": False, "errors": [{"statusCode": code, "message": message, "fields": []}]}

        if not isinstance(record, dict):
            return failure("JSON_PARSER_ERROR", "a record must be an object")
        if method == "DELETE":
            sobject = next((s for s in SOBJECTS.values() if str(record["id"]).startswith(s.prefix)), None)
            if sobject is None:
                return failure("MALFORMED_ID", f"malformed id {record['id']}")
            found = self._live(sobject, str(record["id"]))
            if isinstance(found, tuple):
                return failure(*found)
            return lambda: self._write(sobject, found.id, {}, delete=True)
        sobject = SOBJECTS.get(str((record.get("attributes") or {}).get("type")))
        if sobject is None:
            return failure("INVALID_TYPE", "each record needs attributes.type naming an sObject")
        values = {k: v for k, v in record.items() if k not in ("attributes", "id")}
        problem = self._check_fields(sobject, values, create=method == "POST")
        if problem is not None:
            return failure(*problem)
        if method == "POST":
            return lambda: self._write(sobject, None, values)
        found = self._live(sobject, str(record.get("id")))
        if isinstance(found, tuple):
            return failure(*found)
        return lambda: self._write(sobject, found.id, values)

    # ---------------------------------------------------------------- changes on demand

    def _sobject_of(self, item_id: str) -> SObject:
        for sobject in SOBJECTS.values():
            if item_id.startswith(sobject.prefix):
                return sobject
        raise KeyError(item_id)

    def edit(self, item_id: str) -> dict[str, Any]:
        """The name field gains " (edited)"; ``SystemModstamp`` moves to now."""
        sobject = self._sobject_of(item_id)
        found = self._live(sobject, item_id)
        if isinstance(found, tuple):
            raise KeyError(item_id)
        return self._write(sobject, item_id, {sobject.required: f"{found.body[sobject.required]} (edited)"}).body

    def create(self) -> dict[str, Any]:
        """A new Account."""
        n = next(self._created)
        return self._write(SOBJECTS["Account"], record_id(SOBJECTS["Account"], n), {"Name": f"New account {n}"}).body

    def delete(self, item_id: str) -> None:
        """Into the Recycle Bin: ``IsDeleted`` and a new ``SystemModstamp``."""
        sobject = self._sobject_of(item_id)
        if isinstance(self._live(sobject, item_id), tuple):
            raise KeyError(item_id)
        self._write(sobject, item_id, {}, delete=True)
