"""GitHub REST stand-in: the issues of ``acme/widgets`` (every tenth one a pull request, as the endpoint returns them).

``GET /repos/{owner}/{repo}/issues`` with ``state``, ``sort=updated``, ``direction``, ``since`` (inclusive, to the
second), ``per_page`` (≤ 100) and ``page``, paginated by a ``Link`` header; ``POST`` creates, ``PATCH …/{number}``
updates. A page is a position in the list as it stands when the page is asked for, as on GitHub: an issue edited
between two page requests moves to the end of ``sort=updated`` and every issue after its old place moves one position
earlier, so a client following ``Link`` skips one (where a page starts is remembered while nothing changes, so a
long listing is not re-counted from its first issue at every page). Every answer carries ``x-ratelimit-*`` headers
counting the hour's requests; a token is required (``Bearer`` or ``token``) and an unknown ``X-GitHub-Api-Version``
is refused, as GitHub does.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from castiel.sandbox.dataset import Dataset, Item, Key
from castiel.sandbox.provider import ProviderApi, json_body, json_response

OWNER, REPO = "acme", "widgets"
REPOSITORY = f"{OWNER}/{REPO}"
SEED_EPOCH = 1_735_689_600  # 2025-01-01T00:00:00Z
ID_BASE = 1_000_000_000
API_VERSIONS = frozenset({"2022-11-28", "2026-03-10"})
HOURLY_LIMIT = 5000
_DOCS = "https://docs.github.com/rest"
_WORDS = ("login", "sync", "export", "billing", "search", "upload", "webhook", "report", "cache", "import")


def _time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _issue_body(number: int, updated: int, title: str, state: str, *, pull: bool = False) -> dict[str, Any]:
    url = f"https://api.github.com/repos/{REPOSITORY}/issues/{number}"
    body: dict[str, Any] = {
        "id": ID_BASE + number,
        "node_id": f"I_sbx{number}",
        "url": url,
        "html_url": f"https://github.com/{REPOSITORY}/issues/{number}",
        "number": number,
        "state": state,
        "state_reason": "completed" if state == "closed" else None,
        "title": title,
        "body": f"Steps to reproduce issue {number}.",
        "user": {"login": "octocat", "id": 1},
        "labels": [{"id": 208045946, "name": "bug", "color": "f29513"}] if number % 3 == 0 else [],
        "assignees": [],
        "milestone": None,
        "locked": False,
        "comments": number % 4,
        "created_at": _time(SEED_EPOCH + number),
        "updated_at": _time(updated),
        "closed_at": _time(updated) if state == "closed" else None,
        "author_association": "MEMBER",
    }
    if pull:
        body["pull_request"] = {"url": url.replace("/issues/", "/pulls/"), "merged_at": None}
    return body


class GitHubApi(ProviderApi):
    """Issues of one repository; ``count`` seeded, two sharing each ``updated_at`` second."""

    name = "github"
    issues: Dataset

    def reset(self) -> None:
        """The seeded issues, numbering and rate-limit window afresh."""
        self.issues = Dataset(self.count, self._seed, self._seed_key, self._index)
        self._next_number = self.count + 1
        self._continuations: OrderedDict[tuple[Any, ...], Key] = OrderedDict()
        self._version = 0
        """Bumped by every change: a remembered page start holds only for the list it was counted in."""
        self._hour = (0, 0)

    @property
    def datasets(self) -> dict[str, Dataset]:
        """``issue``."""
        return {"issue": self.issues}

    @staticmethod
    def _seed_key(i: int) -> Key:
        return (SEED_EPOCH + 3600 + i // 2, i + 1)

    def _seed(self, i: int) -> Item:
        updated, number = self._seed_key(i)
        title = f"{_WORDS[i % len(_WORDS)]} fails for case {number}"
        body = _issue_body(number, updated, title, "closed" if number % 5 == 0 else "open", pull=number % 10 == 0)
        return Item(str(ID_BASE + number), (updated, number), body)

    @staticmethod
    def _index(item_id: str) -> int | None:
        return int(item_id) - ID_BASE - 1 if item_id.isdigit() else None

    # ---------------------------------------------------------------- routes

    def routes(self) -> list[BaseRoute]:
        """Issues, one repository, the rate limit."""
        issues = f"/repos/{OWNER}/{REPO}/issues"
        return [
            Mount(
                "/github",
                routes=[
                    Route(issues, self.endpoint(self.list_issues), methods=["GET"]),
                    Route(issues, self.endpoint(self.create_issue), methods=["POST"]),
                    Route(issues + "/{number:int}", self.endpoint(self.read_issue), methods=["GET"]),
                    Route(issues + "/{number:int}", self.endpoint(self.update_issue), methods=["PATCH"]),
                    Route("/repos/{owner}/{repo}", self.endpoint(self.repository), methods=["GET"]),
                    Route("/rate_limit", self.endpoint(self.rate_limit), methods=["GET"]),
                ],
            )
        ]

    def refuse_token(self, request: Request) -> Response:
        """401 ``Requires authentication`` or ``Bad credentials``."""
        message = "Bad credentials" if request.headers.get("authorization") else "Requires authentication"
        return json_response({"message": message, "documentation_url": _DOCS}, 401)

    def check_request(self, request: Request) -> Response | None:
        """An API version GitHub does not have is a 400."""
        version = request.headers.get("x-github-api-version")
        if version is not None and version not in API_VERSIONS:
            message = (
                f"Unsupported 'X-GitHub-Api-Version' header: {version}. Supported: {', '.join(sorted(API_VERSIONS))}"
            )
            return json_response({"message": message, "documentation_url": _DOCS}, 400)
        return None

    def fault(self, status: int, retry_after: int) -> Response:
        """A secondary rate limit (429 with ``retry-after``), or a server error."""
        if status == 429:
            message = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
            return json_response(
                {"message": message, "documentation_url": _DOCS}, 429, {"retry-after": str(retry_after)}
            )
        return json_response({"message": "Server Error"}, status)

    def decorate(self, response: Response) -> None:
        """``x-ratelimit-*`` of the hour's window."""
        now = int(self.shared.clock())
        window = now - now % 3600
        used = (self._hour[1] if self._hour[0] == window else 0) + 1
        self._hour = (window, used)
        response.headers.update(
            {
                "x-ratelimit-limit": str(HOURLY_LIMIT),
                "x-ratelimit-remaining": str(max(0, HOURLY_LIMIT - used)),
                "x-ratelimit-used": str(used),
                "x-ratelimit-reset": str(window + 3600),
                "x-ratelimit-resource": "core",
            }
        )

    async def list_issues(self, request: Request) -> Response:
        """Issues and pull requests, ``sort=updated``, paginated by ``Link``."""
        params = request.query_params
        state, sort, direction = params.get("state", "open"), params.get("sort", "created"), params.get("direction")
        try:
            per_page, page = min(100, int(params.get("per_page", "30"))), int(params.get("page", "1"))
            since = datetime.fromisoformat(params["since"]).timestamp() if "since" in params else None
        except ValueError as exc:
            return self._invalid(str(exc))
        if state not in ("open", "closed", "all") or per_page < 1 or page < 1:
            return self._invalid("state, per_page or page is out of range")
        if sort not in ("updated", "created"):
            return self._invalid("the sandbox sorts by updated or created")
        ascending = direction == "asc"
        signature = (self._version, sort, state, since, ascending, per_page)
        start = self._continuations.get((*signature, page))
        listed = self._listing(sort, state, since, ascending, start)
        if start is None:
            for _ in range((page - 1) * per_page):
                if next(listed, None) is None:
                    break
        items = [item for _, item in zip(range(per_page + 1), listed, strict=False)]
        shown, more = items[:per_page], len(items) > per_page
        headers = {}
        if more:
            last = shown[-1]
            self._remember((*signature, page + 1), (last.key[0], last.body["number"]))
            headers["link"] = f'<{request.url.include_query_params(page=page + 1)}>; rel="next"'
        return json_response([item.body for item in shown], headers=headers)

    def _listing(self, sort: str, state: str, since: float | None, ascending: bool, start: Key | None) -> Any:
        if sort == "created":
            items = self._by_number(ascending, start)
        elif ascending:
            low = start if start is not None else (None if since is None else (since, -1))
            items = self.issues.after(low)
        else:
            items = self.issues.before(start)
        return (
            item
            for item in items
            if (state == "all" or item.body["state"] == state) and (since is None or item.key[0] >= since)
        )

    def _by_number(self, ascending: bool, start: Key | None) -> Iterator[Item]:
        """Issues in creation (number) order, after the number in ``start`` when given."""
        after = -1 if start is None else int(start[1])
        numbers = (
            range(after + 1, self._next_number)
            if ascending
            else range((self._next_number if start is None else after) - 1, 0, -1)
        )
        for number in numbers:
            item = self.issues.get(str(ID_BASE + number))
            if item is not None and not item.deleted:
                yield item

    def _remember(self, key: tuple[Any, ...], last: Key) -> None:
        self._continuations[key] = last
        if len(self._continuations) > 1024:
            self._continuations.popitem(last=False)

    @staticmethod
    def _invalid(message: str) -> Response:
        return json_response({"message": "Validation Failed", "errors": [{"message": message}]}, 422)

    async def create_issue(self, request: Request) -> Response:
        """``POST``: a new open issue (``title`` required)."""
        body = await json_body(request)
        if not isinstance(body, dict) or not body.get("title"):
            errors = [{"resource": "Issue", "code": "missing_field", "field": "title"}]
            return json_response({"message": "Validation Failed", "errors": errors, "documentation_url": _DOCS}, 422)
        self.record_push(request, body)
        return json_response(self._apply(self._new_issue(), body), 201)

    async def read_issue(self, request: Request) -> Response:
        """``GET …/issues/{number}``: one issue (a deleted one is a 404, as GitHub answers)."""
        item = self.issues.get(str(ID_BASE + int(request.path_params["number"])))
        if item is None or item.deleted:
            return json_response({"message": "Not Found", "documentation_url": _DOCS}, 404)
        return json_response(item.body)

    async def update_issue(self, request: Request) -> Response:
        """``PATCH``: change title, body, state, labels or assignees."""
        item = self.issues.get(str(ID_BASE + int(request.path_params["number"])))
        body = await json_body(request)
        if item is None or item.deleted:
            return json_response({"message": "Not Found", "documentation_url": _DOCS}, 404)
        if not isinstance(body, dict):
            return json_response({"message": "Problems parsing JSON", "documentation_url": _DOCS}, 400)
        self.record_push(request, body)
        return json_response(self._apply(item, body))

    def _new_issue(self) -> Item:
        number, self._next_number = self._next_number, self._next_number + 1
        return Item(str(ID_BASE + number), (0, number), _issue_body(number, 0, "", "open"))

    def _apply(self, item: Item, changes: dict[str, Any]) -> dict[str, Any]:
        now = int(self.shared.clock())
        body = {**item.body, "updated_at": _time(now)}
        for name in ("title", "body", "state", "state_reason", "milestone"):
            if name in changes:
                body[name] = changes[name]
        if "labels" in changes:
            body["labels"] = [
                {"id": zlib.crc32(str(label).encode()), "name": str(label)} for label in changes["labels"]
            ]
        if "assignees" in changes:
            body["assignees"] = [{"login": str(login)} for login in changes["assignees"]]
        body["closed_at"] = body["updated_at"] if body["state"] == "closed" else None
        self._put(Item(item.id, (now, body["number"]), body))
        return body

    def _put(self, item: Item) -> None:
        self.issues.put(item)
        self._version += 1

    async def repository(self, request: Request) -> Response:
        """The one repository; any other is a 404."""
        if f"{request.path_params['owner']}/{request.path_params['repo']}" != REPOSITORY:
            return json_response({"message": "Not Found", "documentation_url": _DOCS}, 404)
        return json_response(
            {"id": 1296269, "name": REPO, "full_name": REPOSITORY, "private": True, "has_issues": True}
        )

    async def rate_limit(self, request: Request) -> Response:
        """The core limit (the headers say the same)."""
        core = {"limit": HOURLY_LIMIT, "used": self._hour[1], "remaining": HOURLY_LIMIT - self._hour[1]}
        return json_response({"resources": {"core": core}, "rate": core})

    # ---------------------------------------------------------------- changes on demand

    def edit(self, item_id: str) -> dict[str, Any]:
        """A new title, updated now."""
        item = self.issues.get(item_id)
        if item is None or item.deleted:
            raise KeyError(item_id)
        return self._apply(item, {"title": f"{item.body['title']} (edited)"})

    def create(self) -> dict[str, Any]:
        """A new open issue."""
        number = self._next_number
        return self._apply(self._new_issue(), {"title": f"new issue {number}"})

    def delete(self, item_id: str) -> None:
        """The issue disappears, as when a maintainer deletes it (the list never says so)."""
        item = self.issues.get(item_id)
        if item is None or item.deleted:
            raise KeyError(item_id)
        self._put(Item(item.id, item.key, item.body, deleted=True))
