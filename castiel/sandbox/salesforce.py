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
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from castiel.sandbox.dataset import Dataset, Item, Key
from castiel.sandbox.provider import ProviderApi, json_body, json_response
from castiel.sandbox.salesforce_org import SOBJECTS, SYSTEM_FIELDS, Org, SObject, sobject_of
from castiel.sandbox.salesforce_soql import Soql, SoqlError, parse

VERSIONS = ("64.0", "65.0", "66.0")
_LABELS = {"64.0": "Summer '25", "65.0": "Winter '26", "66.0": "Spring '26"}
DAILY_LIMIT = 15000
BATCH_SIZE = 2000
COLLECTION_LIMIT = 200
_VERSION_PATH = re.compile(r"^/salesforce/services/data/v(?P<version>[^/]+)")


def _errors(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response([{"message": message, "errorCode": code, "fields": []}], status, headers)


def _failure(code: str, message: str) -> dict[str, Any]:
    return {"id": None, "success": False, "errors": [{"statusCode": code, "message": message, "fields": []}]}


_ROLLED_BACK = "Record rolled back because not all records were valid and the request was using AllOrNone header"


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
    org: Org

    def reset(self) -> None:
        """The seeded records afresh; open query locators are gone."""
        self.org = Org(self.count, self.shared.clock)
        self.batch_size = BATCH_SIZE
        self._locators: OrderedDict[str, _Locator] = OrderedDict()
        self._locator_ids = itertools.count(1)
        self._used = 0

    @property
    def datasets(self) -> dict[str, Dataset]:
        """``Account`` and ``Contact``."""
        return self.org.objects

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
            Route("/sobjects/{sobject}/{id}", self.endpoint(self.read_one), methods=["GET"]),
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
                "updateable": name not in SYSTEM_FIELDS,
                "createable": name not in SYSTEM_FIELDS,
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
        dataset, sobject = self.org.objects.get(soql.sobject), SOBJECTS.get(soql.sobject)
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
        listed = self.org.objects[locator.soql.sobject].after(locator.last, deleted=locator.deleted)
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

    async def create_one(self, request: Request) -> Response:
        """``POST sobjects/<Name>/``: 201 with the new Id."""
        sobject = SOBJECTS.get(request.path_params["sobject"])
        body = await json_body(request)
        if sobject is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        if not isinstance(body, dict):
            return _errors(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of the request body")
        problem = self.org.check_fields(sobject, body, create=True)
        if problem is not None:
            return _errors(400, *problem)
        self.record_push(request, body)
        return json_response({"id": self.org.write(sobject, None, body).id, "success": True, "errors": []}, 201)

    async def read_one(self, request: Request) -> Response:
        """``GET sobjects/<Name>/<Id>``: every field with its ``attributes``; a deleted record is a 404."""
        sobject = SOBJECTS.get(request.path_params["sobject"])
        if sobject is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        found = self.org.live(sobject, request.path_params["id"])
        if isinstance(found, tuple):
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        return json_response({"attributes": {"type": sobject.name, "url": request.url.path}, **found.body})

    async def update_one(self, request: Request) -> Response:
        """``PATCH sobjects/<Name>/<Id>``: 204."""
        sobject = SOBJECTS.get(request.path_params["sobject"])
        body = await json_body(request)
        if sobject is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        found = self.org.live(sobject, request.path_params["id"])
        if isinstance(found, tuple):
            return _errors(404, *found)
        if not isinstance(body, dict):
            return _errors(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of the request body")
        problem = self.org.check_fields(sobject, body, create=False)
        if problem is not None:
            return _errors(400, *problem)
        self.record_push(request, body)
        self.org.write(sobject, found.id, body)
        return Response(status_code=204)

    async def delete_one(self, request: Request) -> Response:
        """``DELETE sobjects/<Name>/<Id>``: 204, into the Recycle Bin."""
        sobject = SOBJECTS.get(request.path_params["sobject"])
        if sobject is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        found = self.org.live(sobject, request.path_params["id"])
        if isinstance(found, tuple):
            return _errors(404, *found)
        self.record_push(request, None)
        self.org.write(sobject, found.id, {}, delete=True)
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
        planned = [self.org.plan(request.method, record) for record in records]
        failed = any(isinstance(plan, tuple) for plan in planned)
        results = []
        for plan in planned:
            if isinstance(plan, tuple):
                results.append(_failure(*plan))
            elif all_or_none and failed:
                results.append(_failure("ALL_OR_NONE_OPERATION_ROLLED_BACK", _ROLLED_BACK))
            else:
                results.append({"id": plan().id, "success": True, "errors": []})
        return json_response(results)

    # ---------------------------------------------------------------- changes on demand

    def _existing(self, item_id: str) -> tuple[SObject, Item]:
        sobject = sobject_of(item_id)
        found = None if sobject is None else self.org.live(sobject, item_id)
        if sobject is None or not isinstance(found, Item):
            raise KeyError(item_id)
        return sobject, found

    def edit(self, item_id: str) -> dict[str, Any]:
        """The name field gains " (edited)"; ``SystemModstamp`` moves to now."""
        sobject, found = self._existing(item_id)
        return self.org.write(sobject, item_id, {sobject.required: f"{found.body[sobject.required]} (edited)"}).body

    def create(self) -> dict[str, Any]:
        """A new Account."""
        account = SOBJECTS["Account"]
        item_id = self.org.new_id(account)
        return self.org.write(account, item_id, {"Name": f"New account {item_id}"}).body

    def delete(self, item_id: str) -> None:
        """Into the Recycle Bin: ``IsDeleted`` and a new ``SystemModstamp``."""
        sobject, _ = self._existing(item_id)
        self.org.write(sobject, item_id, {}, delete=True)
