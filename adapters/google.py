"""Google Calendar API v3: the events of one calendar.

Pull: ``GET /calendar/v3/calendars/{calendarId}/events`` page by page (``pageToken`` / ``nextPageToken``). The first
pass lists everything; its last page — and only the last — carries ``nextSyncToken``, and every later pass sends that
``syncToken`` instead of any filter (Google refuses a sync token beside ``timeMin``, ``updatedMin``, ``orderBy`` …)
and gets only what changed, deletions included as ``status: "cancelled"``. Both tokens are stored exactly as
received: the cursor of a pass in progress is the token the pass started from and the next ``pageToken``. A 410
``fullSyncRequired`` (or ``updatedMinTooLongAgo``) means the token is dead: the fetch starts a clean full pass, its
pages marked ``resync``.

Push: ``events.insert``, ``events.patch``, ``events.delete`` (a 410 there means already deleted).

Settings: ``calendarId`` (default ``primary``). Errors are ``{"error": {"code", "message", "errors": [{"domain",
"reason", "message"}]}}``; ``rateLimitExceeded`` and ``userRateLimitExceeded`` come as 403 (or 429) and are rate
limits, as are the daily ``dailyLimitExceeded`` and ``quotaExceeded``; any other 403 is a permission error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote

from adapters.base import BaseAdapter, Stream, items_at
from adapters.cursors import decode_cursor, encode_cursor, optional_time
from adapters.engine import Session
from adapters.pagination import PageTokenPaginator, Paginator
from adapters.records import Change, Discovery, EntityInfo, FieldInfo, JsonObject, Record
from adapters.resolution import DEFAULT_TABLE, Action, Rule
from adapters.wire import Reply, RequestSpec
from castiel.errors import PermanentError
from castiel.models import Operation, Provider

PAGE_SIZE = 250
_RATE_REASONS = ("rateLimitExceeded", "userRateLimitExceeded", "dailyLimitExceeded", "quotaExceeded")
_EXPIRED_REASONS = ("fullSyncRequired", "updatedMinTooLongAgo")
EVENT_FIELDS = tuple(
    FieldInfo(name, kind)
    for name, kind in (
        ("id", "string"),
        ("status", "string"),
        ("summary", "string"),
        ("description", "string"),
        ("location", "string"),
        ("start", "object"),
        ("end", "object"),
        ("attendees", "array"),
        ("organizer", "object"),
        ("recurrence", "array"),
        ("htmlLink", "string"),
        ("created", "datetime"),
        ("updated", "datetime"),
    )
)
"""The Events resource fields we sync (Calendar publishes them in its discovery document, not per calendar)."""


def _reason_in(*reasons: str) -> Callable[[Reply], bool]:
    wanted = frozenset(reasons)

    def matches(reply: Reply) -> bool:
        errors = reply.field("error", "errors")
        return isinstance(errors, list) and any(
            isinstance(item, dict) and item.get("reason") in wanted for item in errors
        )

    return matches


@dataclass(frozen=True, slots=True)
class SyncState:
    """The sync token a pass started from (None: a full pass) and, mid-pass, the next page's token."""

    sync_token: str | None = None
    page_token: str | None = None


class SyncTokenCursor:
    """Google's tokens, verbatim; a bare value is a sync token."""

    def load(self, cursor: str | None) -> SyncState:
        """``{"syncToken", "pageToken"}``."""
        fields = decode_cursor(cursor, "syncToken")
        sync_token, page_token = fields.get("syncToken"), fields.get("pageToken")
        for name, value in (("syncToken", sync_token), ("pageToken", page_token)):
            if value is not None and not isinstance(value, str):
                raise PermanentError(f"cursor {name} {value!r} is not a string")
        return SyncState(sync_token, page_token)

    def advance(
        self, state: SyncState, records: list[Record], paginator: Paginator, reply: Reply
    ) -> tuple[list[Record], SyncState]:
        """Every event; the last page's ``nextSyncToken`` starts the next pass."""
        if not paginator.finished:
            return records, SyncState(state.sync_token, paginator.token)
        next_sync = reply.field("nextSyncToken")
        return records, SyncState(next_sync if isinstance(next_sync, str) else state.sync_token)

    def dump(self, state: SyncState) -> str | None:
        """The JSON cursor, None before Google gave any token."""
        if state.sync_token is None and state.page_token is None:
            return None
        return encode_cursor({"syncToken": state.sync_token, "pageToken": state.page_token})


class GoogleCalendarAdapter(BaseAdapter):
    """Events of one Google calendar."""

    provider = Provider.GOOGLE
    default_api_root = "https://www.googleapis.com"
    entity_types: ClassVar[dict[str, str]] = {"event": "event"}
    resolution = DEFAULT_TABLE.extended(
        (
            Rule(Action.RESYNC, status=410, when=_reason_in(*_EXPIRED_REASONS), reason="sync token expired"),
            Rule(Action.RATE_LIMITED, status=frozenset({403, 429}), when=_reason_in(*_RATE_REASONS), reason="quota"),
        )
    )
    written_id_field = "id"
    answers_writes_with_object = True

    def error_message(self, reply: Reply) -> str:
        """``error.message`` with the first error's ``reason``."""
        message = reply.field("error", "message")
        if not isinstance(message, str):
            return super().error_message(reply)
        errors = reply.field("error", "errors")
        reason = (
            errors[0].get("reason") if isinstance(errors, list) and errors and isinstance(errors[0], dict) else None
        )
        return f"{reason}: {message}" if reason else message

    def _events(self, session: Session) -> str:
        return f"/calendar/v3/calendars/{quote(session.setting('calendarId', 'primary'), safe='@')}/events"

    async def stream(self, session: Session, entity_type: str) -> Stream[SyncState]:
        """Everything on a full pass; what changed since the sync token after that."""
        self.require_entity(session, entity_type)
        path = self._events(session)

        def request(state: SyncState) -> RequestSpec:
            spec = RequestSpec("GET", path, params={"maxResults": PAGE_SIZE})
            return spec.with_params(syncToken=state.sync_token, pageToken=state.page_token)

        return Stream(entity_type, SyncTokenCursor(), request, PageTokenPaginator, items_at("items"), self._event)

    @staticmethod
    def _event(item: JsonObject) -> Record:
        updated = optional_time(item.get("updated"), "event updated")
        return Record("event", str(item["id"]), updated, item.get("status") == "cancelled", item)

    def write_request(self, session: Session, change: Change) -> RequestSpec:
        """``events.insert``, ``events.patch`` or ``events.delete``."""
        self.require_entity(session, change.entity_type)
        events = self._events(session)
        if change.operation is Operation.CREATE:
            return RequestSpec("POST", events, json=change.data)
        event = f"{events}/{quote(self.require_external_id(session, change), safe='')}"
        if change.operation is Operation.DELETE:
            return RequestSpec("DELETE", event)
        return RequestSpec("PATCH", event, json=change.data)

    def read_request(self, session: Session, entity_type: str, external_id: str, hints: JsonObject) -> RequestSpec:
        """``events.get`` (a cancelled event reads as a deletion)."""
        self.require_entity(session, entity_type)
        return RequestSpec("GET", f"{self._events(session)}/{quote(external_id, safe='')}")

    def auth_probe(self, session: Session) -> RequestSpec:
        """One entry of the user's calendar list."""
        return RequestSpec("GET", "/calendar/v3/users/me/calendarList", params={"maxResults": 1})

    async def describe(self, session: Session) -> Discovery:
        """The calendar must exist and be readable."""
        calendar = quote(session.setting("calendarId", "primary"), safe="@")
        reply = await self.send(session, "fetch", RequestSpec("GET", f"/calendar/v3/calendars/{calendar}"))
        summary = reply.field("summary")
        return Discovery((EntityInfo("event", "event", EVENT_FIELDS, str(summary) if summary else None),))
