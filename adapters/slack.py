"""Slack Web API: the messages of one channel.

Pull: ``conversations.history`` with ``oldest`` (exclusive) and ``cursor`` / ``response_metadata.next_cursor``. Slack
lists newest first, so a pass cannot move ``oldest`` until it has read to the end: the cursor of a pass in progress
keeps the pass's ``oldest``, Slack's own ``next`` cursor exactly as received, and the highest ``ts`` seen (``high``);
the last page makes ``high`` the next pass's ``oldest``. A message's ``ts`` is unique in its channel and is its
external id (the channel travels in ``data``, as in webhooks). History polling sees new messages only: edits and
deletions arrive through Slack's events (``message_changed``, ``message_deleted``); a ``tombstone`` left for a
deleted thread parent is a deletion.

Push: ``chat.postMessage``, ``chat.update`` and ``chat.delete`` (by channel and ``ts``).

Settings: ``channel``; ``slackAppDistribution`` — ``internal`` (default), ``marketplace`` or ``unlisted`` — selects
the rate-limit policy's profile and the page size (``castiel.ratelimit.policy.SLACK_APP_DISTRIBUTIONS``: an
unlisted app may read 15 messages a minute).

Errors come as HTTP 200 with ``{"ok": false, "error": "<code>"}``; the resolution rows read the code. A 429 carries
``Retry-After``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar

from adapters.base import BaseAdapter, Stream, items_at
from adapters.cursors import decode_cursor, encode_cursor
from adapters.engine import Session
from adapters.pagination import CursorPaginator, Paginator
from adapters.records import Change, Discovery, EntityInfo, FieldInfo, JsonObject, Record
from adapters.resolution import DEFAULT_TABLE, Action, Rule
from adapters.wire import ParamValue, Reply, RequestSpec
from castiel.errors import ConfigError, PermanentError
from castiel.models import Connection, Operation, Provider
from castiel.ratelimit.policy import DEFAULT_SLACK_APP_DISTRIBUTION, SLACK_APP_DISTRIBUTIONS

DISTRIBUTION_SETTING = "slackAppDistribution"
_TS = re.compile(r"^\d{1,12}(\.\d{1,9})?$")
_WRITABLE = ("text", "blocks", "attachments", "thread_ts", "reply_broadcast", "unfurl_links", "mrkdwn", "metadata")
MESSAGE_FIELDS = tuple(
    FieldInfo(name, kind)
    for name, kind in (
        ("ts", "string"),
        ("channel", "string"),
        ("user", "string"),
        ("text", "string"),
        ("thread_ts", "string"),
        ("subtype", "string"),
        ("edited", "object"),
        ("blocks", "array"),
        ("files", "array"),
    )
)
"""Slack publishes no message schema endpoint: the documented message fields we sync."""


def _error_in(*codes: str) -> Callable[[Reply], bool]:
    wanted = frozenset(codes)
    return lambda reply: reply.field("ok") is False and reply.field("error") in wanted


def _not_ok(reply: Reply) -> bool:
    return reply.field("ok") is False


def ts_key(ts: str) -> Decimal:
    """A ``ts`` as a number that orders like the time it names (``"1.10"`` after ``"1.9"``)."""
    return Decimal(ts)


def ts_time(ts: str) -> datetime:
    """The moment a ``ts`` names."""
    return datetime.fromtimestamp(float(ts), UTC)


def checked_ts(value: object, what: str) -> str:
    """``value`` when it is a Slack timestamp string, else ``PermanentError``."""
    if not isinstance(value, str) or not _TS.match(value):
        raise PermanentError(f"{what} {value!r} is not a Slack ts (seconds.micro)")
    return value


@dataclass(frozen=True, slots=True)
class HistoryState:
    """A pass over ``(oldest, now]``: Slack's ``next`` cursor while in progress, the highest ``ts`` read so far."""

    oldest: str | None = None
    next: str | None = None
    high: str | None = None


class HistoryCursor:
    """The cursor of ``conversations.history``; a bare value is an ``oldest`` ts."""

    def load(self, cursor: str | None) -> HistoryState:
        """``{"oldest", "next", "high"}``."""
        fields = decode_cursor(cursor, "oldest")
        oldest, high, token = fields.get("oldest"), fields.get("high"), fields.get("next")
        if token is not None and not isinstance(token, str):
            raise PermanentError(f"cursor next {token!r} is not a string")
        return HistoryState(
            None if oldest is None else checked_ts(oldest, "cursor oldest"),
            token,
            None if high is None else checked_ts(high, "cursor high"),
        )

    def advance(
        self, state: HistoryState, records: list[Record], paginator: Paginator, reply: Reply
    ) -> tuple[list[Record], HistoryState]:
        """Every message; ``high`` rises; the pass's end makes it the next ``oldest``."""
        high = max((record.external_id for record in records), key=ts_key, default=state.high)
        if state.high is not None and high is not None:
            high = max(high, state.high, key=ts_key)
        if paginator.finished:
            return records, HistoryState(high or state.oldest)
        return records, HistoryState(state.oldest, paginator.token, high)

    def dump(self, state: HistoryState) -> str | None:
        """The JSON cursor, None before the first message."""
        if state.oldest is None and state.next is None and state.high is None:
            return None
        return encode_cursor({"oldest": state.oldest, "next": state.next, "high": state.high})


class SlackAdapter(BaseAdapter):
    """Messages of one Slack channel."""

    provider = Provider.SLACK
    default_api_root = "https://slack.com/api"
    entity_types: ClassVar[dict[str, str]] = {"message": "message"}
    resolution = DEFAULT_TABLE.extended(
        (
            Rule(Action.RATE_LIMITED, status=200, when=_error_in("ratelimited"), reason="ratelimited"),
            Rule(
                Action.REFRESH_TOKEN_THEN_RETRY,
                status=200,
                when=_error_in("token_expired", "invalid_auth"),
                reason="token rejected",
            ),
            Rule(
                Action.RETRY,
                status=200,
                when=_error_in("internal_error", "fatal_error", "service_unavailable", "request_timeout"),
                reason="Slack error",
            ),
            # The channel is the connection's configuration, not a record: a push into a channel that is gone must
            # not mark every record it carries deleted on this connection.
            Rule(Action.FAIL, status=200, when=_error_in("channel_not_found"), reason="the connection's channel"),
            Rule(
                Action.NOT_FOUND,
                status=200,
                when=_error_in("message_not_found", "thread_not_found"),
                reason="not found",
            ),
            Rule(Action.FAIL, status=200, when=_not_ok, reason="refused"),
        )
    )
    written_id_field = "ts"

    def rate_profile(self, connection: Connection) -> str | None:
        """The app's distribution, checked against the policy's known ones."""
        distribution = connection.settings.get(DISTRIBUTION_SETTING, DEFAULT_SLACK_APP_DISTRIBUTION)
        if distribution not in SLACK_APP_DISTRIBUTIONS:
            known = ", ".join(SLACK_APP_DISTRIBUTIONS)
            raise ConfigError(
                f"slack connection {connection.id}: {DISTRIBUTION_SETTING} {distribution!r} is not one of: {known}"
            )
        return str(distribution)

    def probe_session(self, session: Session) -> Session:
        """Metadata calls (``auth.test``, ``conversations.info``) are not ``conversations.history``: the app
        distribution's limit is not theirs."""
        return replace(session, rate_profile=None)

    def error_message(self, reply: Reply) -> str:
        """Slack's error code, with the scope it needed when that is the problem."""
        code = reply.field("error")
        if not isinstance(code, str):
            return super().error_message(reply)
        needed = reply.field("needed")
        return f"{code} (needed: {needed})" if isinstance(needed, str) else code

    async def stream(self, session: Session, entity_type: str) -> Stream[HistoryState]:
        """Messages newer than the cursor's ``oldest``."""
        self.require_entity(session, entity_type)
        channel = session.setting("channel")
        page_size = SLACK_APP_DISTRIBUTIONS[session.rate_profile or DEFAULT_SLACK_APP_DISTRIBUTION].history_page_size

        def request(state: HistoryState) -> RequestSpec:
            spec = RequestSpec("GET", "/conversations.history", params={"channel": channel, "limit": page_size})
            return spec.with_params(oldest=state.oldest, cursor=state.next)

        def message(item: JsonObject) -> Record:
            ts = checked_ts(item["ts"], "message ts")
            edited = item.get("edited")
            changed = edited.get("ts") if isinstance(edited, Mapping) else None
            updated = ts_time(checked_ts(changed, "edited ts") if changed is not None else ts)
            return Record("message", ts, updated, item.get("subtype") == "tombstone", {**item, "channel": channel})

        return Stream(
            entity_type,
            HistoryCursor(),
            request,
            lambda: CursorPaginator(("response_metadata", "next_cursor"), "cursor"),
            items_at("messages"),
            message,
        )

    def write_request(self, session: Session, change: Change) -> RequestSpec:
        """``chat.postMessage``, ``chat.update`` or ``chat.delete``."""
        self.require_entity(session, change.entity_type)
        channel = session.setting("channel")
        fields = {name: change.data[name] for name in _WRITABLE if name in change.data}
        if change.operation is Operation.CREATE:
            return RequestSpec("POST", "/chat.postMessage", json={"channel": channel, **fields})
        ts = checked_ts(self.require_external_id(session, change), "message ts")
        if change.operation is Operation.DELETE:
            return RequestSpec("POST", "/chat.delete", json={"channel": channel, "ts": ts})
        return RequestSpec("POST", "/chat.update", json={"channel": channel, "ts": ts, **fields})

    def read_request(self, session: Session, entity_type: str, external_id: str, hints: JsonObject) -> RequestSpec:
        """``conversations.history`` from the message's ``ts``, inclusive, one message."""
        self.require_entity(session, entity_type)
        ts = checked_ts(external_id, "message ts")
        params: dict[str, ParamValue] = {
            "channel": session.setting("channel"),
            "latest": ts,
            "inclusive": "true",
            "limit": 1,
        }
        return RequestSpec("GET", "/conversations.history", params=params)

    def read_item(self, external_id: str, reply: Reply) -> object:
        """The message with that ``ts``, None when it is gone (the history then starts with an older one)."""
        messages = reply.field("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        return first if isinstance(first, dict) and first.get("ts") == external_id else None

    def auth_probe(self, session: Session) -> RequestSpec:
        """``auth.test``."""
        return RequestSpec("GET", "/auth.test")

    async def describe(self, session: Session) -> Discovery:
        """The channel must exist and be visible to the app."""
        channel = session.setting("channel")
        info = RequestSpec("GET", "/conversations.info", params={"channel": channel})
        reply = await self.send(self.probe_session(session), "fetch", info)
        name = reply.field("channel", "name")
        return Discovery((EntityInfo("message", "message", MESSAGE_FIELDS, f"#{name}" if name else channel),))
