"""Google Calendar API v3 stand-in: the events of one calendar (``primary``).

``events.list`` pages with ``pageToken`` / ``nextPageToken`` (``maxResults`` ≤ 2500); the last page of a listing,
and only the last, carries ``nextSyncToken``. With ``syncToken`` it lists what changed since, cancelled events
included, and refuses the filters Google refuses beside one; a token from before ``invalidate_sync_tokens`` is a 410
``fullSyncRequired``. Every change moves an event to the end of a change sequence, which is what the tokens count.
``events.insert``, ``events.patch`` and ``events.delete`` write (a second delete is a 410 ``deleted``). A bearer
token is required; errors are ``{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}``.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from castiel.sandbox.dataset import Dataset, Item, Key
from castiel.sandbox.provider import ProviderApi, json_body, json_response

CALENDAR_ID = "castiel-sandbox@group.calendar.google.com"
SEED_EPOCH = 1_735_689_600  # 2025-01-01T00:00:00Z
DEFAULT_PAGE_SIZE = 250
MAX_PAGE_SIZE = 2500
_SYNC_RESTRICTED = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
_TOPICS = ("Standup", "Planning", "1:1", "Design review", "Customer call", "Retro")


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"


def google_error(status: int, reason: str, message: str, domain: str = "global") -> Response:
    """Google's error shape."""
    errors = [{"domain": domain, "reason": reason, "message": message}]
    return json_response({"error": {"errors": errors, "code": status, "message": message}}, status)


def _encode(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def _decode(token: str) -> dict[str, Any]:
    value = json.loads(base64.urlsafe_b64decode(token.encode()))
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


class GoogleApi(ProviderApi):
    """One calendar's events; ``count`` seeded, an hour apart."""

    name = "google"
    events: Dataset
    generation: int = -1
    """Sync tokens of an older generation are refused with 410 (``invalidate_sync_tokens``, ``reset``)."""

    def reset(self) -> None:
        """The seeded events afresh; sync tokens of before are refused."""
        self.events = Dataset(self.count, self._seed, lambda i: (i + 1,), self._index)
        self._sequence = self.count
        self._created = 0
        self.generation += 1

    @property
    def datasets(self) -> dict[str, Dataset]:
        """``event``."""
        return {"event": self.events}

    def _seed(self, i: int) -> Item:
        start = SEED_EPOCH + 86_400 + 3600 * i
        body = self._event(f"evt{i:07d}", f"{_TOPICS[i % len(_TOPICS)]} #{i}", start, SEED_EPOCH + 60 * i)
        return Item(body["id"], (i + 1,), body)

    @staticmethod
    def _index(item_id: str) -> int | None:
        digits = item_id.removeprefix("evt")
        return int(digits) if item_id.startswith("evt") and digits.isdigit() else None

    @staticmethod
    def _event(event_id: str, summary: str, start: float, updated: float) -> dict[str, Any]:
        return {
            "kind": "calendar#event",
            "etag": f'"{int(updated * 1000)}"',
            "id": event_id,
            "status": "confirmed",
            "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
            "created": _time(SEED_EPOCH),
            "updated": _time(updated),
            "summary": summary,
            "organizer": {"email": CALENDAR_ID, "self": True},
            "start": {"dateTime": _time(start), "timeZone": "UTC"},
            "end": {"dateTime": _time(start + 1800), "timeZone": "UTC"},
        }

    def invalidate_sync_tokens(self) -> None:
        """Every sync token issued so far is answered with 410 ``fullSyncRequired``."""
        self.generation += 1

    # ---------------------------------------------------------------- routes

    def routes(self) -> list[BaseRoute]:
        """Events, the calendar, the calendar list."""
        events = "/calendars/{calendar}/events"
        return [
            Mount(
                "/google/calendar/v3",
                routes=[
                    Route(events, self.endpoint(self.list_events), methods=["GET"]),
                    Route(events, self.endpoint(self.insert_event), methods=["POST"]),
                    Route(events + "/{event}", self.endpoint(self.get_event), methods=["GET"]),
                    Route(events + "/{event}", self.endpoint(self.patch_event), methods=["PATCH"]),
                    Route(events + "/{event}", self.endpoint(self.delete_event), methods=["DELETE"]),
                    Route("/calendars/{calendar}", self.endpoint(self.calendar), methods=["GET"]),
                    Route("/users/me/calendarList", self.endpoint(self.calendar_list), methods=["GET"]),
                ],
            )
        ]

    def refuse_token(self, request: Request) -> Response:
        """401 ``required`` without a token, ``authError`` for a rejected one."""
        if not request.headers.get("authorization"):
            return google_error(401, "required", "Login Required.")
        return google_error(401, "authError", "Invalid Credentials")

    def fault(self, status: int, retry_after: int) -> Response:
        """``rateLimitExceeded`` or ``backendError``."""
        if status == 429:
            return google_error(429, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits")
        return google_error(status, "backendError", "Backend Error")

    def _calendar_ok(self, request: Request) -> bool:
        return unquote(request.path_params["calendar"]) in ("primary", CALENDAR_ID)

    async def list_events(self, request: Request) -> Response:
        """A page of a full listing, or of the changes since a sync token."""
        if not self._calendar_ok(request):
            return google_error(404, "notFound", "Not Found")
        params = request.query_params
        try:
            size = min(MAX_PAGE_SIZE, int(params.get("maxResults", str(DEFAULT_PAGE_SIZE))))
            listing = self._listing(params)
        except ValueError as exc:
            return google_error(400, "invalid", str(exc))
        except LookupError:
            return google_error(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
        if isinstance(listing, Response):
            return listing
        since, after, deleted = listing
        found = (item for item in self.events.after((max(since, after),), deleted=True) if deleted or not item.deleted)
        items = [item for _, item in zip(range(size + 1), found, strict=False)]
        body: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"{self._sequence}"',
            "summary": "Team calendar",
            "updated": _time(self.shared.clock()),
            "timeZone": "UTC",
            "accessRole": "owner",
            "items": [item.body for item in items[:size]],
        }
        if len(items) > size:
            state = {"since": since, "after": items[size - 1].key[0], "deleted": deleted, "gen": self.generation}
            body["nextPageToken"] = _encode(state)
        else:
            body["nextSyncToken"] = _encode({"sync": self._sequence, "gen": self.generation})
        return json_response(body)

    def _listing(self, params: Any) -> tuple[int, int, bool] | Response:
        """(changes after this sequence, page after this sequence, cancelled ones shown) of a request."""
        if "pageToken" in params:
            try:
                state = _decode(params["pageToken"])
                return int(state["since"]), int(state["after"]), bool(state["deleted"])
            except (ValueError, KeyError, TypeError):
                raise ValueError("Invalid page token value.") from None
        if "syncToken" in params:
            restricted = [name for name in _SYNC_RESTRICTED if name in params]
            if restricted:
                message = f"Sync token cannot be used with other request restrictions: {', '.join(restricted)}."
                return google_error(400, "syncTokenWithRequestRestrictions", message)
            try:
                state = _decode(params["syncToken"])
                since, generation = int(state["sync"]), int(state["gen"])
            except (ValueError, KeyError, TypeError):
                raise LookupError from None
            if generation != self.generation:
                raise LookupError
            return since, since, True
        return 0, 0, params.get("showDeleted") == "true"

    async def calendar(self, request: Request) -> Response:
        """The calendar."""
        if not self._calendar_ok(request):
            return google_error(404, "notFound", "Not Found")
        return json_response(
            {"kind": "calendar#calendar", "id": CALENDAR_ID, "summary": "Team calendar", "timeZone": "UTC"}
        )

    async def calendar_list(self, request: Request) -> Response:
        """The one calendar the user has."""
        entry = {"kind": "calendar#calendarListEntry", "id": CALENDAR_ID, "summary": "Team calendar", "primary": True}
        return json_response({"kind": "calendar#calendarList", "items": [entry]})

    async def insert_event(self, request: Request) -> Response:
        """A new event."""
        body = await json_body(request)
        if not self._calendar_ok(request):
            return google_error(404, "notFound", "Not Found")
        if not isinstance(body, dict) or "start" not in body or "end" not in body:
            return google_error(400, "required", "Missing end time.")
        self.record_push(request, body)
        return json_response(self._store(self._new_id(), body))

    async def get_event(self, request: Request) -> Response:
        """One event; a cancelled one still reads, with ``status: cancelled``."""
        item = self.events.get(request.path_params["event"])
        if item is None or not self._calendar_ok(request):
            return google_error(404, "notFound", "Not Found")
        return json_response(item.body)

    async def patch_event(self, request: Request) -> Response:
        """Changed fields of an event."""
        item = self.events.get(request.path_params["event"])
        body = await json_body(request)
        if item is None or not self._calendar_ok(request):
            return google_error(404, "notFound", "Not Found")
        if item.deleted:
            return google_error(410, "deleted", "Resource has been deleted")
        if not isinstance(body, dict):
            return google_error(400, "parseError", "Parse Error")
        self.record_push(request, body)
        return json_response(self._store(item.id, {**item.body, **body}))

    async def delete_event(self, request: Request) -> Response:
        """Cancels the event (204); a second time it is gone (410)."""
        item = self.events.get(request.path_params["event"])
        if item is None or not self._calendar_ok(request):
            return google_error(404, "notFound", "Not Found")
        if item.deleted:
            return google_error(410, "deleted", "Resource has been deleted")
        self.record_push(request, None)
        self._cancel(item)
        return Response(status_code=204)

    def _new_id(self) -> str:
        self._created += 1
        return f"new{self._created:07d}"

    def _next_key(self) -> Key:
        self._sequence += 1
        return (self._sequence,)

    def _store(self, event_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        now = self.shared.clock()
        body = {**fields, "kind": "calendar#event", "id": event_id, "status": "confirmed", "updated": _time(now)}
        body.setdefault("created", _time(now))
        body["etag"] = f'"{int(now * 1000)}"'
        self.events.put(Item(event_id, self._next_key(), body))
        return body

    def _cancel(self, item: Item) -> None:
        body = {
            "kind": "calendar#event",
            "etag": f'"{int(self.shared.clock() * 1000)}"',
            "id": item.id,
            "status": "cancelled",
        }
        self.events.put(Item(item.id, self._next_key(), body, deleted=True))

    # ---------------------------------------------------------------- changes on demand

    def edit(self, item_id: str) -> dict[str, Any]:
        """A new summary."""
        item = self.events.get(item_id)
        if item is None or item.deleted:
            raise KeyError(item_id)
        return self._store(item_id, {**item.body, "summary": f"{item.body['summary']} (moved)"})

    def create(self) -> dict[str, Any]:
        """A new event tomorrow."""
        start = self.shared.clock() + 86_400
        return self._store(self._new_id(), self._event("x", "New meeting", start, start))

    def delete(self, item_id: str) -> None:
        """Cancelled."""
        item = self.events.get(item_id)
        if item is None or item.deleted:
            raise KeyError(item_id)
        self._cancel(item)
