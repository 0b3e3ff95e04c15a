"""GitHub REST: a repository's issues.

Pull: ``GET /repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc&since=…&per_page=100``, paged by
``since`` itself (``github_paging.py``: an issue edited while a run is paging shifts the list under a page number,
and the issue it shifts onto a page already read would be missed; ``Link`` is followed, as given, only through more
than a page of issues updated within one second). ``since`` is inclusive and to the second, so the cursor is an
``OverlapCursor``: each request, and the next run, starts at the boundary second and drops what was already emitted
there unchanged. Pull requests come back from this endpoint too (they carry a ``pull_request`` key) and are left out.
The list never reports deletions (``issues.deleted`` arrives by webhook). The external id is the issue's ``id``, as
in webhooks; ``number`` addresses it in the API and stays in ``data``.

Push: create ``POST …/issues``; update ``PATCH …/issues/{number}``; delete closes the issue (the REST API cannot
delete one: the closed issue is listed and read from then on, ``delete_keeps_record``). An update or delete needs
``number`` in the change's data.

Settings: ``repository`` (``owner/name``). Rate limits (GitHub docs, "Rate limits for the REST API"): a 403 or 429
with ``x-ratelimit-remaining: 0`` is the primary limit (wait for ``x-ratelimit-reset``); a 403 or 429 with
``retry-after``, or whose message names a secondary rate limit, is the secondary limit (``retry-after``, else at least
a minute) — its ``x-ratelimit-remaining`` is often above 0; any other 403 is a permission error, not retried.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, ClassVar

import httpx

from adapters.base import BaseAdapter, Stream, items_at
from adapters.cursors import Overlap, OverlapCursor, parse_time
from adapters.engine import Session
from adapters.github_paging import SinceKeysetPaginator
from adapters.records import Change, Discovery, EntityInfo, FieldInfo, JsonObject, Record
from adapters.resolution import DEFAULT_TABLE, Action, Rule, has_header, header_equals
from adapters.wire import Reply, RequestSpec
from castiel.errors import ConfigError, PermanentError
from castiel.models import Operation, Provider

API_VERSION = "2022-11-28"
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_LIMIT_STATUSES = frozenset({403, 429})
_WRITABLE = ("title", "body", "assignees", "milestone", "labels", "state", "state_reason", "type")
ISSUE_FIELDS = tuple(
    FieldInfo(name, kind)
    for name, kind in (
        ("id", "integer"),
        ("number", "integer"),
        ("title", "string"),
        ("body", "string"),
        ("state", "string"),
        ("state_reason", "string"),
        ("labels", "array"),
        ("assignees", "array"),
        ("milestone", "object"),
        ("user", "object"),
        ("html_url", "string"),
        ("created_at", "datetime"),
        ("updated_at", "datetime"),
        ("closed_at", "datetime"),
    )
)
"""GitHub has no field metadata endpoint: the documented issue fields we sync."""


def _names_secondary_limit(reply: Reply) -> bool:
    message = reply.field("message")
    return isinstance(message, str) and "rate limit" in message.lower()


class GitHubAdapter(BaseAdapter):
    """Issues of one repository."""

    provider = Provider.GITHUB
    default_api_root = "https://api.github.com"
    entity_types: ClassVar[dict[str, str]] = {"issue": "issue"}
    resolution = DEFAULT_TABLE.extended(
        (
            Rule(
                Action.RATE_LIMITED,
                status=_LIMIT_STATUSES,
                when=header_equals("x-ratelimit-remaining", "0"),
                reason="primary rate limit",
            ),
            Rule(Action.RATE_LIMITED, status=_LIMIT_STATUSES, when=has_header("retry-after"), reason="secondary"),
            Rule(Action.RATE_LIMITED, status=403, when=_names_secondary_limit, reason="secondary rate limit"),
        )
    )
    default_rate_limit_pause = 60.0
    address_fields = ("number",)
    delete_keeps_record = True
    answers_writes_with_object = True

    def before_request(self, session: Session, request: httpx.Request) -> None:
        """GitHub's media type and the API version we were written against."""
        request.headers["Accept"] = "application/vnd.github+json"
        request.headers["X-GitHub-Api-Version"] = API_VERSION

    def error_message(self, reply: Reply) -> str:
        """``message``, with a validation error's field details."""
        message = str(reply.field("message") or reply.response.text[:200])
        errors = reply.field("errors")
        if isinstance(errors, list) and errors:
            details = [
                item.get("message") or f"{item.get('code')} {item.get('field')}".strip()
                for item in errors
                if isinstance(item, dict)
            ]
            message = f"{message}: {'; '.join(str(detail) for detail in details)}"
        return message

    def _repository(self, session: Session) -> str:
        repository = session.setting("repository")
        if not _REPOSITORY.match(repository):
            raise ConfigError(f"{session.where}: the setting 'repository' must be owner/name, not {repository!r}")
        return repository

    async def stream(self, session: Session, entity_type: str) -> Stream[Overlap]:
        """Issues updated since the cursor, oldest first."""
        self.require_entity(session, entity_type)
        path = f"/repos/{self._repository(session)}/issues"

        def first_page(since: datetime | None) -> RequestSpec:
            params: dict[str, Any] = {"state": "all", "sort": "updated", "direction": "asc", "per_page": 100}
            if since is not None:
                params["since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
            return RequestSpec("GET", path, params=params)

        return Stream(
            entity_type,
            OverlapCursor(),
            lambda state: first_page(state.since),
            lambda: SinceKeysetPaginator(first_page),
            items_at(),
            self._issue,
        )

    @staticmethod
    def _issue(item: JsonObject) -> Record | None:
        if "pull_request" in item:
            return None
        return Record("issue", str(item["id"]), parse_time(item["updated_at"]), False, item)

    def write_request(self, session: Session, change: Change) -> RequestSpec:
        """Create, update, or close (delete) an issue."""
        self.require_entity(session, change.entity_type)
        issues = f"/repos/{self._repository(session)}/issues"
        fields = {name: change.data[name] for name in _WRITABLE if name in change.data}
        if change.operation is Operation.CREATE:
            return RequestSpec("POST", issues, json=fields)
        self.require_external_id(session, change)
        number = change.data.get("number")
        if not isinstance(number, int) and not (isinstance(number, str) and number.isdigit()):
            raise PermanentError(f"{session.where}: issue {change.external_id}: a {change.operation} needs its number")
        if change.operation is Operation.DELETE:
            fields = {"state": "closed"}
        return RequestSpec("PATCH", f"{issues}/{number}", json=fields)

    def written_id(self, change: Change, reply: Reply) -> str | None:
        """A created issue's ``id``."""
        created = reply.field("id")
        return str(created) if change.operation is Operation.CREATE and created is not None else change.external_id

    def read_request(self, session: Session, entity_type: str, external_id: str, hints: JsonObject) -> RequestSpec:
        """``GET …/issues/{number}``: GitHub addresses an issue by its number, which its webhooks carry."""
        self.require_entity(session, entity_type)
        number = hints.get("number")
        if not isinstance(number, int) and not (isinstance(number, str) and number.isdigit()):
            raise PermanentError(f"{session.where}: issue {external_id}: reading it needs its number")
        return RequestSpec("GET", f"/repos/{self._repository(session)}/issues/{number}")

    def auth_probe(self, session: Session) -> RequestSpec:
        """``GET /rate_limit``: accepted with any valid token, free of the primary limit."""
        return RequestSpec("GET", "/rate_limit")

    async def describe(self, session: Session) -> Discovery:
        """The repository must exist and be readable; issues have GitHub's documented fields."""
        reply = await self.send(session, "fetch", RequestSpec("GET", f"/repos/{self._repository(session)}"))
        label = reply.field("full_name")
        return Discovery((EntityInfo("issue", "issue", ISSUE_FIELDS, str(label) if label else None),))
