"""``BaseAdapter`` — adapters declare, one engine loops — and the ``AdapterRegistry``.

An adapter declares its provider, default API root, entity types (each with its default shard type), its rows of
the resolution table, and per entity type a ``Stream``: the list request for a cursor state, the pagination
strategy, where the records are in a reply, how one provider object becomes a ``Record`` (external id, modification
time, deletion), and the cursor strategy. For pushes it declares the create, update and delete requests and where
a created object's id is. Everything else — the page loop, checkpoints, a forced full resync, per-change push
results, health checks — is here, once.

Lifecycle hooks, for what truly differs per provider: ``on_connect`` (resolve per-connection values such as
Salesforce's API version or Notion's data source, once per connection version), ``before_request`` (version
headers), ``after_response`` and ``on_error``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import httpx

from adapters.backoff import RATE_LIMIT_RULES, WaitRule
from adapters.cursors import CursorExpired, CursorStrategy
from adapters.engine import HttpEngine, Session
from adapters.pagination import Paginator
from adapters.records import (
    Change,
    Discovery,
    HealthCheck,
    HealthReport,
    JsonObject,
    Page,
    PushResult,
    PushStatus,
    Record,
)
from adapters.resolution import DEFAULT_TABLE, ResolutionTable
from adapters.wire import Reply, RequestSpec
from castiel.errors import CastielError, ConfigError, NotFound, PermanentError
from castiel.models import Connection, Operation, Provider
from castiel.ratelimit.policy import LimitedOperation

S = TypeVar("S")

_MAX_CONNECTED = 1024

PUSH_OPERATIONS: Mapping[Operation, LimitedOperation] = {
    Operation.CREATE: "create",
    Operation.UPDATE: "update",
    Operation.DELETE: "delete",
}
PUSHED: Mapping[Operation, PushStatus] = {
    Operation.CREATE: PushStatus.CREATED,
    Operation.UPDATE: PushStatus.UPDATED,
    Operation.DELETE: PushStatus.DELETED,
}


@dataclass(frozen=True, slots=True)
class Stream(Generic[S]):
    """How one entity type is listed: ``request`` builds the first request from the cursor state, ``paginator``
    makes a fresh pagination strategy, ``items`` finds the list in a reply, ``record`` turns one item into a
    ``Record`` (None to leave it out, as GitHub's pull requests in the issues list)."""

    entity_type: str
    cursor: CursorStrategy[S]
    request: Callable[[S], RequestSpec]
    paginator: Callable[[], Paginator]
    items: Callable[[Reply], object]
    record: Callable[[JsonObject], Record | None]


def items_at(*path: str) -> Callable[[Reply], object]:
    """``Stream.items`` for a list at ``path`` in the body (no path: the body is the list)."""
    return lambda reply: reply.field(*path) if path else reply.body


class BaseAdapter:
    """A provider adapter. Subclasses set the class attributes and implement the declarations below."""

    provider: ClassVar[Provider]
    default_api_root: ClassVar[str | None] = None
    entity_types: ClassVar[Mapping[str, str]] = {}
    """Entity type → default shard type."""
    resolution: ClassVar[ResolutionTable] = DEFAULT_TABLE
    rate_limit_rules: ClassVar[tuple[WaitRule, ...]] = RATE_LIMIT_RULES
    default_rate_limit_pause: ClassVar[float] = 60.0
    """Seconds to wait on a rate limit that says nothing of when it ends."""
    address_fields: ClassVar[tuple[str, ...]] = ()
    """Provider fields an update or delete needs besides the external id (GitHub addresses an issue by its
    ``number``): the sync engine sends their last known values in every such change's ``data``."""
    delete_keeps_record: ClassVar[bool] = False
    """A pushed delete leaves the record in place, reported as live from then on (GitHub cannot delete an issue: it
    closes it); what the delete answered with is what the provider's later reports of the record say."""
    written_id_field: ClassVar[str | None] = None
    """The field of a write's reply that holds the written object's external id (Slack's ``ts``); None: the
    change's own external id is the written one."""
    answers_writes_with_object: ClassVar[bool] = False
    """A successful write answers with the object as the provider now holds it (``written_object``)."""

    def __init__(self, engine: HttpEngine) -> None:
        self.engine = engine
        self._connected: dict[tuple[str, str | None, str], dict[str, str]] = {}

    @classmethod
    def entity_types_of(cls, connection: Connection) -> Mapping[str, str]:
        """The entity types ``connection`` can sync, each with its default shard type: the provider's own list (a
        provider of open-ended types, such as Salesforce's sObjects, takes the connection's)."""
        return cls.entity_types

    # ---------------------------------------------------------------- declarations

    async def stream(self, session: Session, entity_type: str) -> Stream[Any]:
        """The listing of ``entity_type`` (``ConfigError`` for one this provider does not have)."""
        raise NotImplementedError

    def write_request(self, session: Session, change: Change) -> RequestSpec:
        """The request that applies one change."""
        raise NotImplementedError

    def written_id(self, change: Change, reply: Reply) -> str | None:
        """The external id of the object a successful write created or changed: the reply's ``written_id_field``
        when the adapter names one and the reply has it, else the change's own."""
        if self.written_id_field is not None:
            written = reply.field(self.written_id_field)
            if written is not None:
                return str(written)
        return change.external_id

    def written_object(self, change: Change, reply: Reply) -> JsonObject | None:
        """The provider object a successful write answered with (None for a provider that answers with none)."""
        return reply.body if self.answers_writes_with_object and isinstance(reply.body, dict) else None

    def read_request(self, session: Session, entity_type: str, external_id: str, hints: JsonObject) -> RequestSpec:
        """The request that reads one record; ``hints`` is what a webhook said of it (GitHub's ``number``)."""
        raise PermanentError(f"{session.where}: reading one {entity_type} at a time is not supported")

    def read_item(self, external_id: str, reply: Reply) -> object:
        """The provider object in a reply to ``read_request`` (None: the provider has no such record)."""
        return reply.body

    async def describe(self, session: Session) -> Discovery:
        """The connection's entity types and their fields, from the provider's metadata where it has some."""
        raise NotImplementedError

    def auth_probe(self, session: Session) -> RequestSpec:
        """A cheap request that succeeds exactly when the credentials are accepted."""
        raise NotImplementedError

    def rate_profile(self, connection: Connection) -> str | None:
        """The connection's rate-limit profile (``castiel.ratelimit.policy``), None for the provider's defaults."""
        return None

    def probe_session(self, session: Session) -> Session:
        """The session metadata and health requests go out under (another rate profile, if they need one)."""
        return session

    def needs_full_pass(self, session: Session, state: Any) -> bool:
        """True when the cursor state reaches back further than the provider can answer incrementally."""
        return False

    # ---------------------------------------------------------------- lifecycle hooks

    async def on_connect(self, session: Session) -> None:
        """Resolve per-connection values into ``session.values``; runs once per connection version."""

    def before_request(self, session: Session, request: httpx.Request) -> None:
        """Adjust an outgoing request (version headers)."""

    def after_response(self, session: Session, reply: Reply) -> None:
        """See every response before the resolution table does."""

    def on_error(self, session: Session, error: CastielError, reply: Reply | None) -> CastielError:
        """The error to raise for a failed request; the one given by default."""
        return error

    def error_message(self, reply: Reply) -> str:
        """The provider's error message: a JSON ``message`` or ``error``, else the start of the body."""
        for key in ("message", "error"):
            value = reply.field(key)
            if isinstance(value, str) and value:
                return value
        return reply.response.text[:200]

    # ---------------------------------------------------------------- the engine loop

    async def open(self, connection: Connection) -> Session:
        """The connection's session, with ``on_connect`` values resolved (cached per connection version)."""
        if connection.provider is not self.provider:
            raise ConfigError(
                f"{connection.provider.value} connection {connection.id} given to the {self.provider.value} adapter"
            )
        session = await self.engine.open(connection, self.default_api_root, self.rate_profile(connection))
        key = (connection.id, connection.etag, session.api_root)
        cached = self._connected.get(key)
        if cached is None:
            await self.on_connect(session)
            if len(self._connected) >= _MAX_CONNECTED:
                self._connected.clear()
            self._connected[key] = dict(session.values)
        else:
            session.values.update(cached)
        return session

    async def send(self, session: Session, operation: LimitedOperation, spec: RequestSpec) -> Reply:
        """One request through the engine, with this adapter's table and hooks."""
        return await self.engine.send(session, self, operation, spec)

    async def fetch(self, connection: Connection, entity_type: str, cursor: str | None = None) -> AsyncIterator[Page]:
        """Pages of ``entity_type`` changed since ``cursor``, each with the cursor to checkpoint once it is saved.

        A pass the provider refuses to continue (``CursorExpired``) starts again from nothing once, every page of it
        marked ``resync``.
        """
        session = await self.open(connection)
        stream = await self.stream(session, entity_type)
        state = stream.cursor.load(cursor)
        resync = self.needs_full_pass(session, state)
        if resync:
            state = stream.cursor.load(None)
        while True:
            try:
                async for page in self._pass(session, stream, state, resync):
                    yield page
                return
            except CursorExpired:
                if resync:
                    raise
                resync, state = True, stream.cursor.load(None)

    async def _pass(self, session: Session, stream: Stream[S], state: S, resync: bool) -> AsyncIterator[Page]:
        request = stream.request(state)
        paginator = stream.paginator()
        where = f"{session.where}: {stream.entity_type}"
        while True:
            try:
                reply = await self.send(session, "fetch", request)
            except NotFound as exc:
                # What a listing addresses (a repository, a channel, a calendar) is configuration: it will not appear.
                raise PermanentError(str(exc)) from exc
            items = stream.items(reply)
            if not isinstance(items, list):
                raise PermanentError(f"{where}: the reply has no list of records (HTTP {reply.status})")
            records = [self._read_record(stream, item, where) for item in items]
            paginator.advance(reply, where)
            listed = paginator.within_horizon([r for r in records if r is not None])
            kept, state = stream.cursor.advance(state, listed, paginator, reply)
            yield Page(kept, stream.cursor.dump(state), resync)
            if paginator.finished:
                return
            request = paginator.next_request(request)

    @staticmethod
    def _read_record(stream: Stream[Any], item: object, where: str) -> Record | None:
        if not isinstance(item, dict):
            raise PermanentError(f"{where}: a record is {type(item).__name__}, not a JSON object")
        try:
            return stream.record(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError(f"{where}: a record lacks what identifies it: {exc!r}") from exc

    async def push(self, connection: Connection, changes: Sequence[Change]) -> list[PushResult]:
        """Apply ``changes`` in order; one result per change (a failure never stops the others)."""
        session = await self.open(connection)
        return [await self._push_one(session, change) for change in changes]

    async def _push_one(self, session: Session, change: Change) -> PushResult:
        try:
            spec = self.write_request(session, change)
            reply = await self.send(session, PUSH_OPERATIONS[change.operation], spec)
        except NotFound as exc:
            if change.operation is Operation.DELETE:
                return PushResult(PushStatus.DELETED, change.external_id)
            return PushResult(PushStatus.FAILED, change.external_id, exc)
        except CastielError as exc:
            return PushResult(PushStatus.FAILED, change.external_id, exc)
        return PushResult(
            PUSHED[change.operation], self.written_id(change, reply), data=self.written_object(change, reply)
        )

    async def read(
        self, connection: Connection, entity_type: str, external_id: str, hints: JsonObject | None = None
    ) -> Record | None:
        """One record as the provider has it now (what a webhook that carries only ids needs); None when the
        provider no longer has it."""
        session = await self.open(connection)
        stream = await self.stream(session, entity_type)
        spec = self.read_request(session, entity_type, external_id, hints or {})
        try:
            reply = await self.send(session, "fetch", spec)
        except NotFound:
            return None
        item = self.read_item(external_id, reply)
        if item is None:
            return None
        return self._read_record(stream, item, f"{session.where}: {entity_type} {external_id}")

    async def discover(self, connection: Connection) -> Discovery:
        """The connection's entity types and fields."""
        return await self.describe(await self.open(connection))

    async def health_check(self, connection: Connection) -> HealthReport:
        """Authentication, then the configured objects; each failure reported with the provider's message."""
        try:
            session = await self.open(connection)
            await self.send(self.probe_session(session), "fetch", self.auth_probe(session))
        except CastielError as exc:
            return HealthReport((HealthCheck("auth", False, str(exc)),))
        auth = HealthCheck("auth", True, "credentials accepted")
        try:
            discovery = await self.describe(session)
        except CastielError as exc:
            return HealthReport((auth, HealthCheck("objects", False, str(exc))))
        found = ", ".join(entity.name for entity in discovery.entities)
        return HealthReport((auth, HealthCheck("objects", True, f"found {found}")), discovery)

    # ---------------------------------------------------------------- shared declarations helpers

    def require_entity(self, session: Session, entity_type: str) -> str:
        """``entity_type`` when this provider has it, else ``ConfigError`` listing the ones it has."""
        if entity_type not in self.entity_types:
            known = ", ".join(sorted(self.entity_types))
            raise ConfigError(f"{session.where}: entity type '{entity_type}' is not one of: {known}")
        return entity_type

    @staticmethod
    def require_external_id(session: Session, change: Change) -> str:
        """The change's external id; ``PermanentError`` for an update or delete without one."""
        if not change.external_id:
            raise PermanentError(f"{session.where}: a {change.operation.value} of {change.entity_type} needs its id")
        return change.external_id


class AdapterRegistry:
    """Provider → adapter instance, built once per process."""

    def __init__(self, adapters: list[BaseAdapter] | None = None) -> None:
        self._adapters: dict[Provider, BaseAdapter] = {}
        for adapter in adapters or []:
            self.register(adapter)

    def register(self, adapter: BaseAdapter) -> None:
        """Add an adapter; a second one for the same provider replaces the first."""
        self._adapters[adapter.provider] = adapter

    def get(self, provider: Provider) -> BaseAdapter:
        """The adapter for ``provider``; a ``PermanentError`` when none is installed (retrying cannot help)."""
        try:
            return self._adapters[provider]
        except KeyError:
            raise PermanentError(f"no adapter is installed for provider '{provider.value}'") from None
