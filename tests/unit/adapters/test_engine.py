"""The shared engine through a toy adapter over ``httpx.MockTransport`` and the real limiter: the page loop,
admission and observation, the resolution actions, auth retries, hooks, push results and health checks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from adapters.base import BaseAdapter, Stream, items_at
from adapters.cursors import Keyset, KeysetCursor, parse_time
from adapters.engine import HttpEngine, Session
from adapters.pagination import CursorPaginator
from adapters.providers import build_registry
from adapters.records import Change, Discovery, EntityInfo, PushStatus, Record
from adapters.resolution import DEFAULT_TABLE, Action, Rule
from adapters.wire import Reply, RequestSpec
from castiel.clock import ManualClock
from castiel.credentials.auth import RefreshingAuth as CredentialsAuth
from castiel.credentials.auth import Token
from castiel.errors import (
    CastielError,
    ConfigError,
    Deferred,
    NotFound,
    PermanentError,
    RateLimited,
    RetryableError,
)
from castiel.models import Connection, Operation, Provider
from tests.unit.adapters.support import (
    RefreshingAuth,
    RefreshingConnectionAuth,
    Sleeps,
    StaticAuth,
    connection,
    engine,
    fetch_all,
    json_response,
)


class ToyAdapter(BaseAdapter):
    """``GET /things?after=`` pages by a ``next`` cursor; writes to ``/things``."""

    provider = Provider.STANDARD
    default_api_root = "https://api.toy"
    entity_types = {"thing": "thing"}
    resolution = DEFAULT_TABLE.extended(
        [
            Rule(Action.RESYNC, status=410, when=lambda reply: reply.field("reason") == "expired"),
            Rule(Action.RATE_LIMITED, status=403, when=lambda reply: reply.field("reason") == "quota"),
            Rule(Action.REFRESH_TOKEN_THEN_RETRY, status=403, when=lambda reply: reply.field("reason") == "revoked"),
        ]
    )

    def __init__(self, engine: HttpEngine) -> None:
        super().__init__(engine)
        self.seen_requests: list[httpx.Request] = []
        self.connects = 0

    async def on_connect(self, session: Session) -> None:
        self.connects += 1
        session.values["version"] = "v9"

    def before_request(self, session: Session, request: httpx.Request) -> None:
        request.headers["Toy-Version"] = session.values["version"]
        self.seen_requests.append(request)

    async def stream(self, session: Session, entity_type: str) -> Stream[Keyset]:
        self.require_entity(session, entity_type)

        def request(state: Keyset) -> RequestSpec:
            after = None if state.since is None else f"{state.since.isoformat()}|{state.last_id}"
            return RequestSpec("GET", "/things").with_params(after=after)

        return Stream(
            entity_type,
            KeysetCursor(self.engine.clock),
            request,
            lambda: CursorPaginator(("next",), "cursor"),
            items_at("things"),
            lambda item: Record("thing", item["id"], parse_time(item["at"]), bool(item.get("gone")), item),
        )

    def write_request(self, session: Session, change: Change) -> RequestSpec:
        if change.operation is Operation.CREATE:
            return RequestSpec("POST", "/things", json=change.data)
        external_id = self.require_external_id(session, change)
        return RequestSpec("DELETE" if change.operation is Operation.DELETE else "PATCH", f"/things/{external_id}")

    def written_id(self, change: Change, reply: Reply) -> str | None:
        return str(reply.field("id")) if change.operation is Operation.CREATE else change.external_id

    def auth_probe(self, session: Session) -> RequestSpec:
        return RequestSpec("GET", "/me")

    async def describe(self, session: Session) -> Discovery:
        await self.send(session, "fetch", RequestSpec("GET", "/schema"))
        return Discovery((EntityInfo("thing", "thing"),))


def thing(external_id: str, minute: int = 0) -> dict[str, Any]:
    return {"id": external_id, "at": f"2026-01-05T12:{minute:02d}:00Z"}


class Api:
    """A scripted provider: answers from a queue per path, counting requests."""

    def __init__(self, **answers: list[httpx.Response | Exception]) -> None:
        self.answers = {"/" + path.replace("_", "/"): list(queue) for path, queue in answers.items()}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers["/" + request.url.path.strip("/")].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


MakeAdapter = Callable[..., ToyAdapter]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make(redis_client: aioredis.Redis, clock: ManualClock) -> MakeAdapter:
    def build(api: Api, **options: Any) -> ToyAdapter:
        return ToyAdapter(engine(api, redis_client, clock, **options))

    return build


CONN = connection(Provider.STANDARD, base_url=None)


async def test_pages_stream_with_the_cursor_to_checkpoint_after_each(make: MakeAdapter) -> None:
    api = Api(
        things=[
            json_response(200, {"things": [thing("a"), thing("b", 1)], "next": "p2"}),
            json_response(200, {"things": [thing("c", 1)]}),
        ]
    )
    adapter = make(api)
    pages = await fetch_all(adapter, CONN, "thing")
    assert [[r.external_id for r in page.records] for page in pages] == [["a", "b"], ["c"]]
    assert [page.cursor for page in pages] == [
        '{"checked":"2023-11-14T22:13:20.000000Z","id":"b","since":"2026-01-05T12:01:00.000000Z"}',
        '{"checked":"2023-11-14T22:13:20.000000Z","id":"c","since":"2026-01-05T12:01:00.000000Z"}',
    ]
    assert [request.url.params.get("cursor") for request in api.requests] == [None, "p2"]
    assert all(request.headers["Toy-Version"] == "v9" for request in api.requests)
    assert all(request.url.host == "api.toy" for request in api.requests)


async def test_a_stored_cursor_is_where_the_next_fetch_starts(make: MakeAdapter) -> None:
    api = Api(things=[json_response(200, {"things": []})])
    pages = await fetch_all(make(api), CONN, "thing", '{"id":"b","since":"2026-01-05T12:01:00.000000Z"}')
    assert api.requests[0].url.params["after"] == "2026-01-05T12:01:00+00:00|b"
    assert pages[0].cursor == '{"checked":"2023-11-14T22:13:20.000000Z","id":"b","since":"2026-01-05T12:01:00.000000Z"}'


async def test_on_connect_runs_once_per_connection_version(make: MakeAdapter) -> None:
    api = Api(things=[json_response(200, {"things": []})] * 3)
    adapter = make(api)
    await fetch_all(adapter, CONN, "thing")
    await fetch_all(adapter, CONN, "thing")
    assert adapter.connects == 1
    await fetch_all(adapter, CONN.model_copy(update={"etag": "v2"}), "thing")
    assert adapter.connects == 2


async def test_every_request_is_admitted_by_the_limiter_first(make: MakeAdapter) -> None:
    pages = [json_response(200, {"things": [thing(str(n))], "next": f"p{n}"}) for n in range(5)]
    api = Api(things=pages)
    adapter = make(api, overrides={"connections": {CONN.id: {"operations": {"fetch": 3}}}})
    with pytest.raises(Deferred, match=r"rate limit \(operation\)"):
        await fetch_all(adapter, CONN, "thing")
    assert len(api.requests) == 3


async def test_a_429_is_rate_limited_with_the_providers_retry_after_and_pauses_the_connection(
    make: MakeAdapter,
) -> None:
    api = Api(things=[json_response(429, {"message": "slow down"}, {"retry-after": "30"})])
    adapter = make(api)
    with pytest.raises(RateLimited) as raised:
        await fetch_all(adapter, CONN, "thing")
    assert raised.value.retry_after == 30
    assert "standard connection conn-standard: GET /things: HTTP 429 slow down" in str(raised.value)
    # the limiter heard it: the next call is held back before anything is sent
    with pytest.raises(Deferred, match="provider"):
        await fetch_all(adapter, CONN, "thing")
    assert len(api.requests) == 1


async def test_a_provider_row_can_make_a_403_a_rate_limit_with_the_default_pause(make: MakeAdapter) -> None:
    api = Api(things=[json_response(403, {"reason": "quota", "message": "daily quota"})])
    with pytest.raises(RateLimited) as raised:
        await fetch_all(make(api), CONN, "thing")
    assert raised.value.retry_after == ToyAdapter.default_rate_limit_pause


async def test_5xx_is_retried_with_backoff_then_succeeds(
    make: MakeAdapter, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    sleeps = Sleeps(clock)
    api = Api(things=[json_response(502, {}), httpx.Response(503), json_response(200, {"things": [thing("a")]})])
    with caplog.at_level(logging.WARNING, logger="castiel"):
        pages = await fetch_all(make(api, sleeps=sleeps), CONN, "thing")
    retries = [record.getMessage() for record in caplog.records if "adapter.retry" in record.getMessage()]
    assert len(retries) == 2
    assert "standard connection conn-standard: GET /things: HTTP 502" in retries[0]
    assert [r.external_id for r in pages[0].records] == ["a"]
    assert len(sleeps.delays) == 2
    assert 0.25 <= sleeps.delays[0] <= 0.5
    assert 0.5 <= sleeps.delays[1] <= 1.0


async def test_5xx_that_persists_is_retryable_with_the_providers_message(make: MakeAdapter) -> None:
    api = Api(things=[json_response(500, {"message": "database on fire"})] * 3)
    with pytest.raises(RetryableError, match="HTTP 500 database on fire \\(after 3 attempts\\)") as raised:
        await fetch_all(make(api), CONN, "thing")
    assert not isinstance(raised.value, RateLimited)


async def test_a_retry_after_too_long_to_sleep_on_becomes_rate_limited(make: MakeAdapter, clock: ManualClock) -> None:
    sleeps = Sleeps(clock)
    api = Api(things=[httpx.Response(503, headers={"retry-after": "120"})])
    with pytest.raises(RateLimited) as raised:
        await fetch_all(make(api, sleeps=sleeps), CONN, "thing")
    assert raised.value.retry_after == 120
    assert sleeps.delays == []


async def test_a_short_retry_after_on_503_is_honoured_in_process(make: MakeAdapter, clock: ManualClock) -> None:
    sleeps = Sleeps(clock)
    api = Api(things=[httpx.Response(503, headers={"retry-after": "2"}), json_response(200, {"things": []})])
    await fetch_all(make(api, sleeps=sleeps), CONN, "thing")
    assert sleeps.delays == [2.0]


async def test_network_errors_are_retried_and_leave_only_as_the_taxonomy(make: MakeAdapter) -> None:
    api = Api(things=[httpx.ConnectError("connection refused")] * 3)
    with pytest.raises(RetryableError, match="network error: connection refused") as raised:
        await fetch_all(make(api), CONN, "thing")
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


async def test_a_401_asks_for_the_auth_again_and_retries_once(make: MakeAdapter) -> None:
    auth = StaticAuth()
    api = Api(things=[json_response(401, {"message": "expired"}), json_response(200, {"things": []})])
    await fetch_all(make(api, auth=auth), CONN, "thing")
    assert auth.asked == 2


async def test_a_401_on_a_credential_that_cannot_refresh_says_nothing_was_refreshed(make: MakeAdapter) -> None:
    api = Api(things=[json_response(401, {"message": "bad credentials"})] * 2)
    with pytest.raises(PermanentError, match="bad credentials \\(still rejected with the credential read again;") as e:
        await fetch_all(make(api), CONN, "thing")
    assert "castiel credentials rotate" in str(e.value)
    assert "after the token was refreshed" not in str(e.value)
    assert len(api.requests) == 2


class Tokens:
    """A ``TokenSource`` handing out ``t1``, then ``t2`` once asked to renew."""

    label = "connection toy-1 (standard)"

    def __init__(self) -> None:
        self.version = 1

    async def current(self) -> Token:
        return Token(f"t{self.version}", self.version)

    async def renew(self, rejected: Token) -> Token:
        self.version = rejected.version + 1
        return await self.current()


class CredentialsConnectionAuth(StaticAuth):
    """Hands out the credentials' own refreshing flow, as the vault does for an OAuth credential."""

    async def auth_for_connection(self, connection: Connection) -> httpx.Auth:
        self.asked += 1
        return CredentialsAuth(Tokens())


async def test_a_rejection_after_a_refreshing_credential_was_asked_again_says_it_was_refreshed(
    make: MakeAdapter,
) -> None:
    api = Api(things=[json_response(403, {"reason": "revoked", "message": "token revoked"})] * 2)
    auth = CredentialsConnectionAuth()
    with pytest.raises(PermanentError, match="token revoked \\(still rejected after the token was refreshed\\)"):
        await fetch_all(make(api, auth=auth), CONN, "thing")


async def test_a_header_httpx_cannot_send_fails_once_permanently_without_its_value(
    make: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "zq-ENGINE-SECRET-5"
    api = Api(things=[httpx.LocalProtocolError(f"Illegal header value b'Bearer {secret}\\r'")] * 3)
    with caplog.at_level(logging.DEBUG), pytest.raises(PermanentError, match="HTTP request not sent") as raised:
        await fetch_all(make(api), CONN, "thing")
    assert len(api.requests) == 1
    assert secret not in str(raised.value)
    assert secret not in caplog.text
    assert "adapter.retry" not in caplog.text


async def test_the_auth_flow_refreshes_inside_httpx_on_a_401(make: MakeAdapter) -> None:
    flow = RefreshingAuth("old", "new")

    def api(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer old":
            return json_response(401, {"message": "expired"})
        return json_response(200, {"things": [thing("a")]})

    pages = await fetch_all(make(api, auth=RefreshingConnectionAuth(flow)), CONN, "thing")
    assert flow.refreshes == 1
    assert [r.external_id for r in pages[0].records] == ["a"]


async def test_a_next_link_to_another_host_is_not_followed(make: MakeAdapter) -> None:
    class LinkAdapter(ToyAdapter):
        async def stream(self, session: Session, entity_type: str) -> Stream[Keyset]:
            base = await super().stream(session, entity_type)
            return Stream(entity_type, base.cursor, base.request, NextUrlOnly, base.items, base.record)

    class NextUrlOnly(CursorPaginator):
        def __init__(self) -> None:
            super().__init__(("next",), "cursor")

        def next_request(self, request: RequestSpec) -> RequestSpec:
            return request.at(self._token())

    api = Api(things=[json_response(200, {"things": [], "next": "https://evil.example/things?page=2"})])
    adapter = LinkAdapter(make(api).engine)
    with pytest.raises(PermanentError, match=r"refusing to follow a provider link to https://evil\.example"):
        await fetch_all(adapter, CONN, "thing")
    assert len(api.requests) == 1


async def test_a_pagination_loop_stops_the_fetch_naming_the_connection(make: MakeAdapter) -> None:
    api = Api(things=[json_response(200, {"things": [], "next": "same"})] * 3)
    with pytest.raises(PermanentError, match="standard connection conn-standard: thing: pagination loop"):
        await fetch_all(make(api), CONN, "thing")
    assert len(api.requests) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"things": {"a": 1}}, "no list of records"),
        ({"things": [1]}, "a record is int"),
        ({"things": [{"at": "2026-01-05T12:00:00Z"}]}, "lacks what identifies it"),
    ],
)
async def test_a_reply_of_the_wrong_shape_is_a_clear_permanent_error(
    make: MakeAdapter, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(PermanentError, match=message):
        await fetch_all(make(Api(things=[json_response(200, body)])), CONN, "thing")


async def test_an_invalidated_cursor_starts_one_clean_full_pass(make: MakeAdapter) -> None:
    api = Api(
        things=[
            json_response(200, {"things": [thing("a")], "next": "p2"}),
            json_response(410, {"reason": "expired"}),
            json_response(200, {"things": [thing("a"), thing("b")]}),
        ]
    )
    pages = await fetch_all(make(api), CONN, "thing", '{"id":"0","since":"2026-01-01T00:00:00Z"}')
    assert [(page.resync, [r.external_id for r in page.records]) for page in pages] == [
        (False, ["a"]),
        (True, ["a", "b"]),
    ]
    assert "after" not in api.requests[2].url.params


async def test_an_unknown_entity_type_names_the_known_ones(make: MakeAdapter) -> None:
    with pytest.raises(ConfigError, match="entity type 'widget' is not one of: thing"):
        await fetch_all(make(Api()), CONN, "widget")


async def test_a_connection_without_any_api_root_is_a_config_error(make: MakeAdapter) -> None:
    adapter = make(Api())
    adapter.default_api_root = None  # type: ignore[misc]
    with pytest.raises(ConfigError, match="no API root"):
        await fetch_all(adapter, CONN, "thing")


async def test_a_base_url_that_is_not_http_is_a_config_error(make: MakeAdapter) -> None:
    with pytest.raises(ConfigError, match="is not an http"):
        await fetch_all(make(Api()), connection(Provider.STANDARD, base_url="ftp://files.toy"), "thing")


async def test_another_providers_connection_is_refused(make: MakeAdapter) -> None:
    with pytest.raises(ConfigError, match="given to the standard adapter"):
        await fetch_all(make(Api()), connection(Provider.GITHUB), "thing")


async def test_push_gives_one_result_per_change_and_a_failure_stops_nothing(make: MakeAdapter) -> None:
    api = Api(
        things=[json_response(201, {"id": "new-1"})],
        things_x=[json_response(422, {"message": "title is required"})],
        things_gone=[json_response(404, {"message": "no such thing"})],
        things_y=[json_response(204, {})],
    )
    results = await make(api).push(
        CONN,
        [
            Change("thing", Operation.CREATE, data={"title": "t"}),
            Change("thing", Operation.UPDATE, "x"),
            Change("thing", Operation.DELETE, "gone"),
            Change("thing", Operation.UPDATE, None),
            Change("thing", Operation.DELETE, "y"),
        ],
    )
    assert [(r.status, r.external_id) for r in results] == [
        (PushStatus.CREATED, "new-1"),
        (PushStatus.FAILED, "x"),
        (PushStatus.DELETED, "gone"),
        (PushStatus.FAILED, None),
        (PushStatus.DELETED, "y"),
    ]
    assert "HTTP 422 title is required" in (results[1].reason or "")
    assert isinstance(results[1].error, PermanentError)
    assert "needs its id" in (results[3].reason or "")
    assert api.requests[0].content == b'{"title":"t"}'


async def test_an_update_of_something_gone_fails_with_not_found(make: MakeAdapter) -> None:
    api = Api(things_x=[json_response(404, {"message": "no such thing"})])
    [result] = await make(api).push(CONN, [Change("thing", Operation.UPDATE, "x")])
    assert isinstance(result.error, NotFound)


async def test_discover_answers_from_the_providers_metadata(make: MakeAdapter) -> None:
    api = Api(schema=[json_response(200, {})])
    discovery = await make(api).discover(CONN)
    assert discovery.to_json() == {"entities": [{"name": "thing", "shardType": "thing", "fields": []}], "available": []}
    assert [request.url.path for request in api.requests] == ["/schema"]


async def test_health_check_reports_auth_then_objects(make: MakeAdapter) -> None:
    api = Api(me=[json_response(200, {})], schema=[json_response(200, {})])
    report = await make(api).health_check(CONN)
    assert report.ok
    assert report.to_json()["checks"] == [
        {"name": "auth", "ok": True, "detail": "credentials accepted"},
        {"name": "objects", "ok": True, "detail": "found thing"},
    ]
    assert report.discovery is not None


async def test_health_check_reports_the_providers_own_message(make: MakeAdapter) -> None:
    api = Api(me=[json_response(403, {"message": "token lacks scope repo"})])
    report = await make(api).health_check(CONN)
    assert not report.ok
    assert report.error is not None
    assert "standard connection conn-standard: GET /me: HTTP 403 token lacks scope repo" in report.error


async def test_on_error_can_replace_the_error(make: MakeAdapter) -> None:
    class Renaming(ToyAdapter):
        def on_error(self, session: Session, error: CastielError, reply: Reply | None) -> CastielError:
            return ConfigError(f"renamed: {error}")

    adapter = Renaming(make(Api(things=[json_response(400, {"message": "bad"})])).engine)
    with pytest.raises(ConfigError, match=r"renamed: .*HTTP 400 bad"):
        await fetch_all(adapter, CONN, "thing")


def test_the_registry_holds_the_five_providers(make: MakeAdapter) -> None:
    registry = build_registry(make(Api()).engine)
    for provider in (Provider.SALESFORCE, Provider.NOTION, Provider.SLACK, Provider.GITHUB, Provider.GOOGLE):
        assert registry.get(provider).provider is provider
    with pytest.raises(PermanentError, match="no adapter is installed for provider 'standard'"):
        registry.get(Provider.STANDARD)
