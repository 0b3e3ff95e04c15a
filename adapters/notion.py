"""Notion, API version 2025-09-03: the pages of one data source.

Pull: ``POST /v1/data_sources/{id}/query`` filtered on ``last_edited_time`` ``on_or_after`` the cursor and sorted on
it ascending, ``start_cursor`` / ``has_more`` / ``next_cursor``, 100 a page. Notion rounds ``last_edited_time`` down to
the minute, so the cursor is an ``OverlapCursor``: the boundary minute is read again and what was already emitted
there unchanged is dropped. A query lists no trashed pages: deletions arrive by webhook (``page.deleted``); a page
read with ``in_trash`` (``archived`` before 2026-03-11) is a deletion.

Push: create ``POST /v1/pages`` under the data source; update ``PATCH /v1/pages/{id}``; delete moves the page to the
trash (``in_trash: true``; Notion cannot delete a page for good). A change's data is the page's ``properties`` (or
``{"properties": …, "icon": …, "cover": …}``).

Settings: ``dataSourceId``, or ``databaseId`` whose single data source is discovered on connect
(``GET /v1/databases/{id}``; a database with several needs ``dataSourceId``). Errors are
``{"object": "error", "status", "code", "message"}``; ``conflict_error`` (409) is worth a retry, ``rate_limited`` (429)
carries ``Retry-After``.
"""

from __future__ import annotations

from typing import ClassVar

import httpx

from adapters.base import BaseAdapter, Stream, items_at
from adapters.cursors import Overlap, OverlapCursor, parse_time
from adapters.engine import Session
from adapters.pagination import CursorPaginator
from adapters.records import Change, Discovery, EntityInfo, FieldInfo, JsonObject, Record
from adapters.resolution import DEFAULT_TABLE, Action, Rule
from adapters.wire import Reply, RequestSpec
from castiel.errors import ConfigError, PermanentError
from castiel.models import Operation, Provider

NOTION_VERSION = "2025-09-03"
PAGE_SIZE = 100
_DATA_SOURCE = "dataSourceId"
_PAGE_EXTRAS = ("icon", "cover")


def query_paginator() -> CursorPaginator:
    """``next_cursor`` while ``has_more``, sent back as ``start_cursor`` in the body."""
    return CursorPaginator(("next_cursor",), "start_cursor", has_more_field="has_more", in_body=True)


class NotionAdapter(BaseAdapter):
    """Pages of one Notion data source."""

    provider = Provider.NOTION
    default_api_root = "https://api.notion.com"
    entity_types: ClassVar[dict[str, str]] = {"page": "page"}
    resolution = DEFAULT_TABLE.extended((Rule(Action.RETRY, status=409, reason="conflict_error"),))
    written_id_field = "id"
    answers_writes_with_object = True

    async def on_connect(self, session: Session) -> None:
        """Resolve the data source: given, or the one data source of the given database."""
        given = session.connection.settings.get(_DATA_SOURCE)
        if given:
            session.values[_DATA_SOURCE] = session.setting(_DATA_SOURCE)
            return
        database = session.setting("databaseId") if "databaseId" in session.connection.settings else None
        if database is None:
            raise ConfigError(f"{session.where}: the setting 'dataSourceId' or 'databaseId' is required")
        reply = await self.send(session, "fetch", RequestSpec("GET", f"/v1/databases/{database}"))
        sources = reply.field("data_sources")
        if not isinstance(sources, list) or not sources:
            raise PermanentError(f"{session.where}: database {database} has no data sources")
        if len(sources) > 1:
            listed = ", ".join(f"{source.get('name')} ({source.get('id')})" for source in sources)
            raise ConfigError(
                f"{session.where}: database {database} has several data sources; set dataSourceId: {listed}"
            )
        session.values[_DATA_SOURCE] = str(sources[0]["id"])

    def before_request(self, session: Session, request: httpx.Request) -> None:
        """Every request names the API version."""
        request.headers["Notion-Version"] = NOTION_VERSION

    def error_message(self, reply: Reply) -> str:
        """``code: message``."""
        code, message = reply.field("code"), reply.field("message")
        if isinstance(message, str):
            return f"{code}: {message}" if isinstance(code, str) else message
        return super().error_message(reply)

    async def stream(self, session: Session, entity_type: str) -> Stream[Overlap]:
        """Pages edited since the cursor's minute, oldest first."""
        self.require_entity(session, entity_type)
        path = f"/v1/data_sources/{session.values[_DATA_SOURCE]}/query"

        def request(state: Overlap) -> RequestSpec:
            body: JsonObject = {
                "page_size": PAGE_SIZE,
                "sorts": [{"timestamp": "last_edited_time", "direction": "ascending"}],
            }
            if state.since is not None:
                since = state.since.strftime("%Y-%m-%dT%H:%M:%S.000Z")
                body["filter"] = {"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": since}}
            return RequestSpec("POST", path, json=body)

        return Stream(entity_type, OverlapCursor(), request, query_paginator, items_at("results"), self._page)

    @staticmethod
    def _page(item: JsonObject) -> Record | None:
        if item.get("object") != "page":
            return None
        trashed = item.get("in_trash") is True or item.get("archived") is True
        return Record("page", str(item["id"]), parse_time(item["last_edited_time"]), trashed, item)

    def write_request(self, session: Session, change: Change) -> RequestSpec:
        """Create under the data source, update properties, or move to the trash."""
        self.require_entity(session, change.entity_type)
        if change.operation is Operation.DELETE:
            return RequestSpec(
                "PATCH", f"/v1/pages/{self.require_external_id(session, change)}", json={"in_trash": True}
            )
        if "properties" in change.data:
            body = {name: change.data[name] for name in ("properties", *_PAGE_EXTRAS) if name in change.data}
        else:
            body = {"properties": change.data}
        if change.operation is Operation.CREATE:
            parent = {"type": "data_source_id", "data_source_id": session.values[_DATA_SOURCE]}
            return RequestSpec("POST", "/v1/pages", json={"parent": parent, **body})
        return RequestSpec("PATCH", f"/v1/pages/{self.require_external_id(session, change)}", json=body)

    def read_request(self, session: Session, entity_type: str, external_id: str, hints: JsonObject) -> RequestSpec:
        """``GET /v1/pages/{id}`` (a trashed page too: it reads as a deletion)."""
        self.require_entity(session, entity_type)
        return RequestSpec("GET", f"/v1/pages/{external_id}")

    def auth_probe(self, session: Session) -> RequestSpec:
        """``GET /v1/users/me``: the integration's bot user."""
        return RequestSpec("GET", "/v1/users/me")

    async def describe(self, session: Session) -> Discovery:
        """The data source's property schema."""
        data_source = session.values[_DATA_SOURCE]
        reply = await self.send(session, "fetch", RequestSpec("GET", f"/v1/data_sources/{data_source}"))
        properties = reply.field("properties")
        fields = tuple(
            FieldInfo(name, str(spec.get("type")))
            for name, spec in (properties.items() if isinstance(properties, dict) else ())
            if isinstance(spec, dict)
        )
        title = reply.field("title")
        label = "".join(
            str(part.get("plain_text", ""))
            for part in (title if isinstance(title, list) else ())
            if isinstance(part, dict)
        )
        return Discovery((EntityInfo("page", "page", fields, label or data_source),))
