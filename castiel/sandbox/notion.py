"""Notion stand-in (API 2025-09-03): one database with one data source of task pages.

``POST /v1/data_sources/{id}/query`` with a ``last_edited_time`` timestamp filter and sort, ``start_cursor`` and
``page_size`` (≤ 100); ``last_edited_time`` is rounded down to the minute, as Notion does (seven seeded pages share
each minute). Trashed pages are not listed. ``POST /v1/pages`` creates under the data source, ``PATCH
/v1/pages/{id}`` updates properties or moves to the trash. ``Notion-Version`` is required, as is a bearer token;
errors are ``{"object": "error", "status", "code", "message"}``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from castiel.sandbox.dataset import Dataset, Item, Key
from castiel.sandbox.provider import ProviderApi, json_body, json_response

DATABASE_ID = "842a0286-cef0-46a8-abba-eac4c8ca644e"
DATA_SOURCE_ID = "2f26ee68-df30-4251-aad4-8ddc420cba3d"
VERSIONS = frozenset({"2025-09-03", "2026-03-11"})
SEED_EPOCH = 1_735_689_600  # 2025-01-01T00:00:00Z
PAGES_PER_MINUTE = 7
MAX_PAGE_SIZE = 100
_BOT = {"object": "user", "id": "0c3e9826-b8f7-4f73-927d-2caaf86f1103"}
_STATUSES = ("Not started", "In progress", "Done")
_SCHEMA = {
    "Name": {"id": "title", "name": "Name", "type": "title", "title": {}},
    "Status": {
        "id": "s%3Ast",
        "name": "Status",
        "type": "select",
        "select": {"options": [{"name": name} for name in _STATUSES]},
    },
    "Estimate": {"id": "e%3Aes", "name": "Estimate", "type": "number", "number": {"format": "number"}},
}
_COMPARISONS = ("on_or_after", "after", "on_or_before", "before")


def page_id(n: int) -> str:
    """The id of page ``n``: a UUID whose first group is ``n``, so pages order by id as they were made."""
    return f"{n:08x}-5eed-4a5e-8b0b-{n * 2654435761 % 16**12:012x}"


def _time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:00.000Z")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"object": "error", "status": status, "code": code, "message": message}, status, headers)


def _title(text: str) -> dict[str, Any]:
    return {"id": "title", "type": "title", "title": [{"type": "text", "text": {"content": text}, "plain_text": text}]}


class NotionApi(ProviderApi):
    """Pages of one data source; ``count`` seeded."""

    name = "notion"
    pages: Dataset

    def reset(self) -> None:
        """The seeded pages afresh."""
        self.pages = Dataset(self.count, self._seed, self._seed_key, self._index)
        self._next = self.count

    @property
    def datasets(self) -> dict[str, Dataset]:
        """``page``."""
        return {"page": self.pages}

    @staticmethod
    def _seed_key(i: int) -> Key:
        return (SEED_EPOCH + 3600 + 60 * (i // PAGES_PER_MINUTE), page_id(i))

    def _seed(self, i: int) -> Item:
        edited, item_id = self._seed_key(i)
        properties = {
            "Name": _title(f"Task {i}"),
            "Status": {"id": "s%3Ast", "type": "select", "select": {"name": _STATUSES[i % 3]}},
            "Estimate": {"id": "e%3Aes", "type": "number", "number": i % 13},
        }
        return Item(item_id, (edited, item_id), self._page(item_id, edited, properties, trashed=False))

    @staticmethod
    def _index(item_id: str) -> int | None:
        head = item_id.partition("-")[0]
        try:
            index = int(head, 16)
        except ValueError:
            return None
        return index if page_id(index) == item_id else None

    @staticmethod
    def _page(item_id: str, edited: int, properties: dict[str, Any], *, trashed: bool) -> dict[str, Any]:
        return {
            "object": "page",
            "id": item_id,
            "created_time": _time(SEED_EPOCH),
            "last_edited_time": _time(edited),
            "created_by": _BOT,
            "last_edited_by": _BOT,
            "cover": None,
            "icon": None,
            "parent": {"type": "data_source_id", "data_source_id": DATA_SOURCE_ID, "database_id": DATABASE_ID},
            "archived": trashed,
            "in_trash": trashed,
            "properties": properties,
            "url": f"https://www.notion.so/{item_id.replace('-', '')}",
            "public_url": None,
        }

    # ---------------------------------------------------------------- routes

    def routes(self) -> list[BaseRoute]:
        """Data source query and schema, database, bot user, pages."""
        return [
            Mount(
                "/notion/v1",
                routes=[
                    Route("/data_sources/{id}/query", self.endpoint(self.query), methods=["POST"]),
                    Route("/data_sources/{id}", self.endpoint(self.data_source), methods=["GET"]),
                    Route("/databases/{id}", self.endpoint(self.database), methods=["GET"]),
                    Route("/users/me", self.endpoint(self.me), methods=["GET"]),
                    Route("/pages", self.endpoint(self.create_page), methods=["POST"]),
                    Route("/pages/{id}", self.endpoint(self.read_page), methods=["GET"]),
                    Route("/pages/{id}", self.endpoint(self.update_page), methods=["PATCH"]),
                ],
            )
        ]

    def refuse_token(self, request: Request) -> Response:
        """401 ``unauthorized``."""
        return _error(401, "unauthorized", "API token is invalid.")

    def check_request(self, request: Request) -> Response | None:
        """``Notion-Version`` must name a version this API speaks."""
        version = request.headers.get("notion-version")
        if version is None:
            message = (
                "Notion-Version header failed validation: "
                "Notion-Version header should be defined, instead was `undefined`."
            )
            return _error(400, "missing_version", message)
        if version not in VERSIONS:
            return _error(
                400,
                "validation_error",
                f"Notion-Version {version} is not served here (data sources need 2025-09-03 or later)",
            )
        return None

    def fault(self, status: int, retry_after: int) -> Response:
        """``rate_limited`` with ``Retry-After``, or a server error."""
        if status == 429:
            return _error(
                429,
                "rate_limited",
                "You have been rate limited. Please try again in a few minutes.",
                {"retry-after": str(retry_after)},
            )
        code = {502: "bad_gateway", 503: "service_unavailable"}.get(status, "internal_server_error")
        return _error(status, code, "Unexpected error occurred.")

    async def query(self, request: Request) -> Response:
        """Pages of the data source, filtered and sorted on ``last_edited_time``."""
        if request.path_params["id"] != DATA_SOURCE_ID:
            return _error(404, "object_not_found", f"Could not find data_source with ID: {request.path_params['id']}.")
        body = await json_body(request) or {}
        if not isinstance(body, dict):
            return _error(400, "invalid_json", "Error parsing JSON body.")
        size = body.get("page_size", MAX_PAGE_SIZE)
        if not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
            return _error(400, "validation_error", f"body.page_size should be ≤ {MAX_PAGE_SIZE}, instead was `{size}`.")
        try:
            low, high = _bounds(body.get("filter"))
            descending = _descending(body.get("sorts"))
            start = _cursor_key(body.get("start_cursor"))
        except ValueError as exc:
            return _error(400, "validation_error", str(exc))
        if descending:
            listed = self.pages.before(start if start is not None else high)
            inside = (item for item in listed if low is None or item.key > low)
        else:
            listed = self.pages.after(start if start is not None else low)
            inside = (item for item in listed if high is None or item.key < high)
        items = [item for _, item in zip(range(size + 1), inside, strict=False)]
        more = len(items) > size
        return json_response(
            {
                "object": "list",
                "results": [item.body for item in items[:size]],
                "next_cursor": _encode_cursor(items[size - 1].key, descending) if more else None,
                "has_more": more,
                "type": "page_or_data_source",
                "page_or_data_source": {},
            }
        )

    async def data_source(self, request: Request) -> Response:
        """The data source's schema."""
        if request.path_params["id"] != DATA_SOURCE_ID:
            return _error(404, "object_not_found", f"Could not find data_source with ID: {request.path_params['id']}.")
        return json_response(
            {
                "object": "data_source",
                "id": DATA_SOURCE_ID,
                "title": [{"type": "text", "plain_text": "Tasks", "text": {"content": "Tasks"}}],
                "parent": {"type": "database_id", "database_id": DATABASE_ID},
                "properties": _SCHEMA,
            }
        )

    async def database(self, request: Request) -> Response:
        """The database and its one data source."""
        if request.path_params["id"] != DATABASE_ID:
            return _error(404, "object_not_found", f"Could not find database with ID: {request.path_params['id']}.")
        return json_response(
            {"object": "database", "id": DATABASE_ID, "data_sources": [{"id": DATA_SOURCE_ID, "name": "Tasks"}]}
        )

    async def me(self, request: Request) -> Response:
        """The integration's bot user."""
        return json_response({**_BOT, "type": "bot", "name": "Castiel sandbox", "bot": {}})

    async def read_page(self, request: Request) -> Response:
        """One page, trashed or not."""
        item = self.pages.get(request.path_params["id"])
        if item is None:
            return _error(404, "object_not_found", f"Could not find page with ID: {request.path_params['id']}.")
        return json_response(item.body)

    async def create_page(self, request: Request) -> Response:
        """A page under the data source (or its database)."""
        body = await json_body(request)
        parent = body.get("parent") if isinstance(body, dict) else None
        if not isinstance(parent, dict) or not (
            parent.get("data_source_id") == DATA_SOURCE_ID or parent.get("database_id") == DATABASE_ID
        ):
            return _error(400, "validation_error", "body.parent should be the sandbox data source.")
        given = body.get("properties") if isinstance(body, dict) else None
        properties: dict[str, Any] = given if isinstance(given, dict) else {}
        self.record_push(request, body)
        return json_response(self._store(page_id(self._take_id()), properties, trashed=False))

    async def update_page(self, request: Request) -> Response:
        """New property values, or into (or out of) the trash."""
        item = self.pages.get(request.path_params["id"])
        body = await json_body(request)
        if item is None:
            return _error(404, "object_not_found", f"Could not find page with ID: {request.path_params['id']}.")
        if not isinstance(body, dict):
            return _error(400, "invalid_json", "Error parsing JSON body.")
        self.record_push(request, body)
        properties = {**item.body["properties"], **(body.get("properties") or {})}
        trashed = bool(body.get("in_trash", body.get("archived", item.deleted)))
        return json_response(self._store(item.id, properties, trashed=trashed))

    def _take_id(self) -> int:
        self._next += 1
        return self._next - 1

    def _store(self, item_id: str, properties: dict[str, Any], *, trashed: bool) -> dict[str, Any]:
        now = int(self.shared.clock())
        edited = now - now % 60
        body = self._page(item_id, edited, {name: _rich(value) for name, value in properties.items()}, trashed=trashed)
        self.pages.put(Item(item_id, (edited, item_id), body, deleted=trashed))
        return body

    # ---------------------------------------------------------------- changes on demand

    def edit(self, item_id: str) -> dict[str, Any]:
        """A new title, edited this minute."""
        item = self.pages.get(item_id)
        if item is None or item.deleted:
            raise KeyError(item_id)
        title = item.body["properties"]["Name"]["title"][0]["plain_text"]
        return self._store(item_id, {**item.body["properties"], "Name": _title(f"{title} (edited)")}, trashed=False)

    def create(self) -> dict[str, Any]:
        """A new task page."""
        n = self._take_id()
        return self._store(page_id(n), {"Name": _title(f"New task {n}")}, trashed=False)

    def delete(self, item_id: str) -> None:
        """Into the trash."""
        item = self.pages.get(item_id)
        if item is None or item.deleted:
            raise KeyError(item_id)
        self._store(item_id, item.body["properties"], trashed=True)


def _rich(value: Any) -> Any:
    """A title as Notion stores what it was sent: each text item gains its ``type`` and ``plain_text``."""
    if not isinstance(value, dict) or not isinstance(value.get("title"), list):
        return value
    items = [
        {"type": "text", **item, "plain_text": str((item.get("text") or {}).get("content", ""))}
        if isinstance(item, dict) and "plain_text" not in item
        else item
        for item in value["title"]
    ]
    return {**value, "title": items}


def _bounds(spec: Any) -> tuple[Key | None, Key | None]:
    """The exclusive (low, high) keys a ``last_edited_time`` filter allows."""
    if spec is None:
        return None, None
    if not isinstance(spec, dict) or spec.get("timestamp") != "last_edited_time":
        raise ValueError("body.filter: the sandbox filters on the last_edited_time timestamp only")
    condition = spec.get("last_edited_time")
    if not isinstance(condition, dict) or len(condition) != 1 or next(iter(condition)) not in _COMPARISONS:
        raise ValueError(f"body.filter.last_edited_time should be one of {', '.join(_COMPARISONS)}")
    comparison, value = next(iter(condition.items()))
    moment = int(datetime.fromisoformat(str(value)).timestamp())
    return {
        "on_or_after": ((moment, ""), None),
        "after": ((moment, "~"), None),
        "on_or_before": (None, (moment, "~")),
        "before": (None, (moment, "")),
    }[comparison]


def _descending(sorts: Any) -> bool:
    if sorts is None or sorts == []:
        return False
    if not isinstance(sorts, list) or len(sorts) != 1 or not isinstance(sorts[0], dict):
        raise ValueError("body.sorts: the sandbox sorts on one timestamp")
    sort = sorts[0]
    if sort.get("timestamp") != "last_edited_time" or sort.get("direction") not in ("ascending", "descending"):
        raise ValueError("body.sorts should be last_edited_time ascending or descending")
    return bool(sort["direction"] == "descending")


def _encode_cursor(key: Key, descending: bool) -> str:
    return base64.urlsafe_b64encode(f"{int(descending)}|{key[0]}|{key[1]}".encode()).decode()


def _cursor_key(cursor: Any) -> Key | None:
    if cursor is None:
        return None
    try:
        _, edited, item_id = base64.urlsafe_b64decode(str(cursor).encode()).decode().split("|")
        return (int(edited), item_id)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"body.start_cursor should be a cursor this API returned, instead was `{cursor}`.") from None
