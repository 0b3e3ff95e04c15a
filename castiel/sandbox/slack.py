"""Slack Web API stand-in: the messages of channel ``C0SANDBOX1`` (``#general``).

``conversations.history`` lists newest first between ``oldest`` (exclusive unless ``inclusive``) and ``latest``,
``limit`` at a time (≤ 999), with ``response_metadata.next_cursor``; an edit keeps its ``ts`` and gains ``edited``,
a deleted message vanishes — as on Slack, polling sees neither. ``chat.postMessage``, ``chat.update`` and
``chat.delete`` take JSON or form bodies. Every answer is HTTP 200 with ``ok``; errors are ``ok: false`` with a code
(``not_authed``, ``invalid_auth``, ``token_expired``, ``channel_not_found`` …), rate limits a 429 with
``Retry-After``. The token comes as ``Authorization: Bearer`` or a ``token`` query parameter.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from castiel.sandbox.dataset import Dataset, Item, Key
from castiel.sandbox.provider import ProviderApi, bearer, json_response

CHANNEL_ID = "C0SANDBOX1"
CHANNEL_NAME = "general"
SEED_EPOCH = 1_735_693_200  # 2025-01-01T01:00:00Z
MAX_LIMIT = 999
_USERS = ("U0ALICE001", "U0BOB00002", "U0CAROL003")
_WORDS = ("deploy", "standup", "review", "incident", "lunch", "release", "retro", "hotfix")


def _ts(key: Key) -> str:
    return f"{key[0]}.{key[1]:06d}"


def _key(ts: str) -> Key:
    seconds, _, micros = ts.partition(".")
    return (int(seconds), int(micros.ljust(6, "0")[:6]))


def _clock_key(now: float) -> Key:
    micros = round(now * 1_000_000)
    return (micros // 1_000_000, micros % 1_000_000)


def _failure(code: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_response({"ok": False, "error": code}, status, headers)


async def _arguments(request: Request) -> dict[str, str]:
    """Query parameters, and the body's fields (JSON or form)."""
    found = dict(request.query_params)
    raw = await request.body()
    if raw:
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            found.update({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in dict(body).items()})
        else:
            found.update(parse_qsl(raw.decode(errors="replace")))
    return found


class SlackApi(ProviderApi):
    """One channel's messages; ``count`` seeded, one a second."""

    name = "slack"
    messages: Dataset

    def reset(self) -> None:
        """The seeded messages afresh."""
        self.messages = Dataset(self.count, self._seed, self._seed_key, self._index)
        self._last_posted: Key = self._seed_key(self.count - 1) if self.count else (SEED_EPOCH, 0)

    @property
    def datasets(self) -> dict[str, Dataset]:
        """``message``."""
        return {"message": self.messages}

    @staticmethod
    def _seed_key(i: int) -> Key:
        return (SEED_EPOCH + i, (i * 37) % 1_000_000)

    def _seed(self, i: int) -> Item:
        key = self._seed_key(i)
        text = f"{_WORDS[i % len(_WORDS)]} update number {i}"
        body = {"type": "message", "user": _USERS[i % len(_USERS)], "text": text, "ts": _ts(key)}
        return Item(_ts(key), key, body)

    def _index(self, item_id: str) -> int | None:
        try:
            key = _key(item_id)
        except ValueError:
            return None
        index = key[0] - SEED_EPOCH
        return index if index >= 0 and self._seed_key(index) == key else None

    # ---------------------------------------------------------------- routes

    def routes(self) -> list[BaseRoute]:
        """The methods, each at ``/slack/api/<method>``."""
        methods = {
            "conversations.history": self.history,
            "conversations.info": self.info,
            "auth.test": self.auth_test,
            "chat.postMessage": self.post_message,
            "chat.update": self.update_message,
            "chat.delete": self.delete_message,
        }
        return [
            Mount(
                "/slack/api",
                routes=[
                    Route(f"/{method}", self.endpoint(handler), methods=["GET", "POST"])
                    for method, handler in methods.items()
                ],
            )
        ]

    def token_of(self, request: Request) -> str | None:
        """The bearer token, else the ``token`` query parameter."""
        return bearer(request) or request.query_params.get("token")

    def refuse_token(self, request: Request) -> Response:
        """``not_authed`` without a token, ``token_expired`` for a revoked one, else ``invalid_auth``."""
        token = self.token_of(request)
        if not token:
            return _failure("not_authed")
        return _failure("token_expired" if token in self.shared.tokens.revoked else "invalid_auth")

    def fault(self, status: int, retry_after: int) -> Response:
        """``ratelimited`` (429 with ``Retry-After``), or a server error."""
        if status == 429:
            return _failure("ratelimited", 429, {"retry-after": str(retry_after)})
        return _failure("service_unavailable" if status == 503 else "internal_error", status)

    async def history(self, request: Request) -> Response:
        """Messages newest first, with Slack's cursor."""
        args = await _arguments(request)
        if args.get("channel") != CHANNEL_ID:
            return _failure("channel_not_found")
        try:
            limit = max(1, min(MAX_LIMIT, int(args.get("limit", "100"))))
            inclusive = args.get("inclusive") in ("1", "true")
            oldest = _key(args.get("oldest", "0"))
            upper = (
                _key(base64.b64decode(args["cursor"]).decode().removeprefix("next_ts:")) if args.get("cursor") else None
            )
            latest = _key(args["latest"]) if "latest" in args else None
        except (ValueError, UnicodeDecodeError):
            return _failure("invalid_arguments")
        if upper is not None:
            start: Key | None = (upper[0], upper[1] + 1)
        elif latest is not None:
            start = (latest[0], latest[1] + 1) if inclusive else latest
        else:
            start = None
        listed = (
            item for item in self.messages.before(start) if item.key > oldest or (inclusive and item.key == oldest)
        )
        items = [item for _, item in zip(range(limit + 1), listed, strict=False)]
        more = len(items) > limit
        body: dict[str, Any] = {
            "ok": True,
            "messages": [item.body for item in items[:limit]],
            "has_more": more,
            "pin_count": 0,
        }
        if more:
            body["response_metadata"] = {
                "next_cursor": base64.b64encode(f"next_ts:{items[limit].id}".encode()).decode()
            }
        return json_response(body)

    async def info(self, request: Request) -> Response:
        """The channel."""
        if (await _arguments(request)).get("channel") != CHANNEL_ID:
            return _failure("channel_not_found")
        channel = {"id": CHANNEL_ID, "name": CHANNEL_NAME, "is_channel": True, "is_private": False, "is_member": True}
        return json_response({"ok": True, "channel": channel})

    async def auth_test(self, request: Request) -> Response:
        """Who the token is."""
        return json_response(
            {
                "ok": True,
                "url": "https://castiel-sandbox.slack.com/",
                "team": "Castiel Sandbox",
                "user": "castiel",
                "team_id": "T0SANDBOX1",
                "user_id": "U0CASTIEL1",
                "bot_id": "B0CASTIEL1",
            }
        )

    async def post_message(self, request: Request) -> Response:
        """A new message, now."""
        args = await _arguments(request)
        if args.get("channel") != CHANNEL_ID:
            return _failure("channel_not_found")
        if not args.get("text") and not args.get("blocks"):
            return _failure("no_text")
        self.record_push(request, args)
        message = self._post(args.get("text", ""), "U0CASTIEL1")
        return json_response({"ok": True, "channel": CHANNEL_ID, "ts": message["ts"], "message": message})

    async def update_message(self, request: Request) -> Response:
        """New text for a message; its ``ts`` stays."""
        args = await _arguments(request)
        item = self._message(args)
        if isinstance(item, Response):
            return item
        self.record_push(request, args)
        message = self._edit(item, args.get("text", item.body["text"]))
        return json_response({"ok": True, "channel": CHANNEL_ID, "ts": item.id, "text": message["text"]})

    async def delete_message(self, request: Request) -> Response:
        """The message vanishes."""
        args = await _arguments(request)
        item = self._message(args)
        if isinstance(item, Response):
            return item
        self.record_push(request, args)
        self.messages.put(Item(item.id, item.key, item.body, deleted=True))
        return json_response({"ok": True, "channel": CHANNEL_ID, "ts": item.id})

    def _message(self, args: dict[str, str]) -> Item | Response:
        if args.get("channel") != CHANNEL_ID:
            return _failure("channel_not_found")
        item = self.messages.get(args.get("ts", ""))
        if item is None or item.deleted:
            return _failure("message_not_found")
        return item

    def _post(self, text: str, user: str) -> dict[str, Any]:
        # A ts is unique in its channel: never below the last one posted, even when the clock stands still.
        seconds, micros = self._last_posted
        after_last = (seconds, micros + 1) if micros < 999_999 else (seconds + 1, 0)
        key = self._last_posted = max(_clock_key(self.shared.clock()), after_last)
        body = {"type": "message", "user": user, "text": text, "ts": _ts(key)}
        self.messages.put(Item(body["ts"], key, body))
        return body

    def _edit(self, item: Item, text: str) -> dict[str, Any]:
        edited = {"user": item.body.get("user", "U0CASTIEL1"), "ts": _ts(_clock_key(self.shared.clock()))}
        body = {**item.body, "text": text, "edited": edited}
        self.messages.put(Item(item.id, item.key, body))
        return body

    # ---------------------------------------------------------------- changes on demand

    def edit(self, item_id: str) -> dict[str, Any]:
        """New text; the ``ts`` stays."""
        item = self.messages.get(item_id)
        if item is None or item.deleted:
            raise KeyError(item_id)
        return self._edit(item, f"{item.body['text']} (edited)")

    def create(self) -> dict[str, Any]:
        """A new message from a person."""
        return self._post("a new message", _USERS[0])

    def delete(self, item_id: str) -> None:
        """The message vanishes."""
        item = self.messages.get(item_id)
        if item is None or item.deleted:
            raise KeyError(item_id)
        self.messages.put(Item(item.id, item.key, item.body, deleted=True))
