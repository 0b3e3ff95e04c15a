"""The ``SecretStore`` contract, run against every backend: the local file store; the Key Vault store's real SDK
client against the in-process vault of ``keyvault_wire`` (always); and a real Key Vault when ``KEY_VAULT_URL`` is set
(with ``az login`` or a managed identity holding *Key Vault Secrets Officer*).

Below the shared suite: what only the local store can show (file modes, other processes) and Key Vault's error
translation and delete-then-purge, checked without Azure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import sys
import textwrap
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from castiel.backends.keyvault import ERRORS, KeyVaultSecretStore
from castiel.backends.local_secrets import LocalSecretStore
from castiel.clock import ManualClock, to_datetime
from castiel.errors import ConfigError, NotFound, PermanentError, RateLimited, RetryableError
from castiel.ports import SecretProperties, SecretStore, SecretValue
from tests.contract.azure_wire import StaticToken
from tests.contract.keyvault_wire import VAULT_URL, KeyVault

KEY_VAULT_URL = os.environ.get("KEY_VAULT_URL")


@dataclass
class Backend:
    """One backend under test: how to open another store on the same storage, and names unique to this test."""

    kind: str
    open: Callable[[], SecretStore]
    clock: ManualClock | None
    prefix: str = field(default_factory=lambda: f"ct{uuid.uuid4().hex[:8]}")
    opened: list[SecretStore] = field(default_factory=list)
    used: set[str] = field(default_factory=set)

    def store(self) -> SecretStore:
        store = self.open()
        self.opened.append(store)
        return store

    def name(self, base: str = "secret") -> str:
        name = f"{self.prefix}-{base}"
        self.used.add(name)
        return name

    def tick(self, seconds: float = 1.0) -> None:
        """Let time pass between writes where the backend's clock is ours to move."""
        if self.clock is not None:
            self.clock.advance(seconds)


@pytest.fixture(
    params=[
        "local",
        "keyvault-wire",
        pytest.param(
            "keyvault",
            marks=[
                pytest.mark.azure,
                pytest.mark.skipif(KEY_VAULT_URL is None, reason="KEY_VAULT_URL not set: Key Vault contract skipped"),
            ],
        ),
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "local":
        clock = ManualClock()
        data_dir = tmp_path / "data"
        chosen = Backend("local", lambda: LocalSecretStore(data_dir, clock=clock), clock)
    elif request.param == "keyvault-wire":
        clock = ManualClock()
        vault = KeyVault(clock)
        chosen = Backend(
            "keyvault", lambda: KeyVaultSecretStore.from_url(VAULT_URL, StaticToken(), transport=vault), clock
        )
    else:
        assert KEY_VAULT_URL is not None
        chosen = Backend("keyvault", lambda: KeyVaultSecretStore.from_url(KEY_VAULT_URL), None)
    yield chosen
    cleaner = chosen.store()
    for name in chosen.used:
        with contextlib.suppress(NotFound, ConfigError):
            await cleaner.delete_secret(name)
    for store in chosen.opened:
        await store.close()


@pytest.fixture
def store(backend: Backend) -> SecretStore:
    return backend.store()


# ---------------------------------------------------------------- values and versions


async def test_get_returns_the_latest_version(backend: Backend, store: SecretStore) -> None:
    name = backend.name()
    await store.set_secret(name, "first")
    backend.tick()
    await store.set_secret(name, "second")

    value = await store.get_secret(name)

    assert isinstance(value, SecretValue)
    assert value.reveal() == "second"
    assert value == SecretValue("second")


async def test_every_set_adds_a_version_listed_oldest_first(backend: Backend, store: SecretStore) -> None:
    name = backend.name()
    written: list[SecretProperties] = []
    for value in ("one", "two", "three"):
        written.append(await store.set_secret(name, value))
        backend.tick()

    listed = await store.list_versions(name)

    assert len({p.version for p in written}) == 3
    assert {p.version for p in listed} == {p.version for p in written}
    assert [p.created_on for p in listed] == sorted(p.created_on for p in listed)
    if backend.clock is not None:  # distinct creation times: the order is fully determined
        assert [p.version for p in listed] == [p.version for p in written]


async def test_a_named_version_is_returned_even_after_newer_ones(backend: Backend, store: SecretStore) -> None:
    name = backend.name()
    first = await store.set_secret(name, "old-value")
    backend.tick()
    await store.set_secret(name, "new-value")

    assert (await store.get_secret(name, first.version)).reveal() == "old-value"
    assert (await store.get_secret(name, None)).reveal() == "new-value"


async def test_properties_are_kept_per_version(backend: Backend, store: SecretStore) -> None:
    name = backend.name()
    expires = datetime(2031, 5, 17, 8, 30, tzinfo=UTC)
    first = await store.set_secret(
        name, "v1", content_type="application/json", expires_on=expires, tags={"tenant": "t1", "type": "api_key"}
    )
    backend.tick()
    second = await store.set_secret(name, "v2", content_type="text/plain")

    latest = await store.get_properties(name)
    listed = await store.list_versions(name)

    assert latest == second
    assert (latest.name, latest.content_type, latest.expires_on, dict(latest.tags)) == (name, "text/plain", None, {})
    older = next(p for p in listed if p.version == first.version)
    assert (older.content_type, older.expires_on, dict(older.tags)) == (
        "application/json",
        expires,
        {"tenant": "t1", "type": "api_key"},
    )
    assert latest.created_on.utcoffset() == timedelta(0)


async def test_created_on_comes_from_the_clock(backend: Backend, store: SecretStore) -> None:
    if backend.clock is None:
        pytest.skip("Key Vault stamps versions with its own clock")
    name = backend.name()
    first = await store.set_secret(name, "a")
    backend.clock.advance(90)
    second = await store.set_secret(name, "b")

    assert first.created_on == to_datetime(1_700_000_000.0)
    assert second.created_on - first.created_on == timedelta(seconds=90)


async def test_names_compare_case_insensitively(backend: Backend, store: SecretStore) -> None:
    name = backend.name("Api-Key")
    await store.set_secret(name, "v1")
    await store.set_secret(name.lower(), "v2")

    assert (await store.get_secret(name.upper())).reveal() == "v2"
    assert len(await store.list_versions(name)) == 2


@pytest.mark.parametrize("length", [1, 127])
async def test_names_at_the_length_limits_are_accepted(backend: Backend, store: SecretStore, length: int) -> None:
    name = (backend.name() + "k" * 127)[:length]
    backend.used.add(name)
    await store.set_secret(name, "value")

    assert (await store.get_secret(name)).reveal() == "value"


# ---------------------------------------------------------------- delete and not found


async def test_delete_removes_every_version(backend: Backend, store: SecretStore) -> None:
    name = backend.name()
    await store.set_secret(name, "v1")
    await store.set_secret(name, "v2")

    await store.delete_secret(name)

    for read in (store.get_secret, store.get_properties, store.list_versions, store.delete_secret):
        with pytest.raises(NotFound):
            await read(name)


async def test_a_deleted_name_starts_a_new_history(backend: Backend, store: SecretStore) -> None:
    if backend.kind == "keyvault":
        pytest.skip("Key Vault frees a purged name asynchronously")
    name = backend.name()
    await store.set_secret(name, "before")
    await store.delete_secret(name)

    await store.set_secret(name, "after")

    assert [v.version for v in await store.list_versions(name)] == [(await store.get_properties(name)).version]
    assert (await store.get_secret(name)).reveal() == "after"


NOT_FOUND_CALLS: dict[str, Callable[[SecretStore, str], Awaitable[object]]] = {
    "get_secret": lambda store, name: store.get_secret(name),
    "get_properties": lambda store, name: store.get_properties(name),
    "list_versions": lambda store, name: store.list_versions(name),
    "delete_secret": lambda store, name: store.delete_secret(name),
}


@pytest.mark.parametrize("call", NOT_FOUND_CALLS.values(), ids=NOT_FOUND_CALLS.keys())
async def test_a_missing_secret_is_not_found(
    backend: Backend, store: SecretStore, call: Callable[[SecretStore, str], Awaitable[object]]
) -> None:
    with pytest.raises(NotFound):
        await call(store, backend.name("missing"))


async def test_an_unknown_version_is_not_found(backend: Backend, store: SecretStore) -> None:
    name = backend.name()
    await store.set_secret(name, "value")

    with pytest.raises(NotFound):
        await store.get_secret(name, "0123456789abcdef0123456789abcdef")


# ---------------------------------------------------------------- Key Vault's rules

INVALID_NAMES = {
    "empty": "",
    "underscore": "api_key",
    "dot": "api.key",
    "slash": "tenant/key",
    "space": "api key",
    "non-ascii": "clé",
    "128 characters": "k" * 128,
}

ALL_CALLS: dict[str, Callable[[SecretStore, str], Awaitable[object]]] = {
    **NOT_FOUND_CALLS,
    "set_secret": lambda store, name: store.set_secret(name, "value"),
    "get_secret@version": lambda store, name: store.get_secret(name, "0123456789abcdef0123456789abcdef"),
}


@pytest.mark.parametrize("name", INVALID_NAMES.values(), ids=INVALID_NAMES.keys())
@pytest.mark.parametrize("call", ALL_CALLS.values(), ids=ALL_CALLS.keys())
async def test_invalid_names_are_refused_with_the_rule(
    store: SecretStore, call: Callable[[SecretStore, str], Awaitable[object]], name: str
) -> None:
    with pytest.raises(ConfigError, match=r"1-127 characters of 0-9, a-z, A-Z and '-'"):
        await call(store, name)


INVALID_WRITES: dict[str, tuple[dict[str, Any], str]] = {
    "value over 25 KiB": ({"value": "x" * (25 * 1024 + 1)}, "at most 25600"),
    "16 tags": ({"tags": {f"t{i}": "v" for i in range(16)}}, "at most 15"),
    "long tag value": ({"tags": {"t": "v" * 257}}, "longer than 256"),
    "long content type": ({"content_type": "c" * 256}, "longer than 255"),
    "naive expiry": ({"expires_on": datetime(2030, 1, 1)}, "timezone-aware"),
}


@pytest.mark.parametrize(("change", "reason"), INVALID_WRITES.values(), ids=INVALID_WRITES.keys())
async def test_writes_key_vault_would_refuse_are_refused(
    backend: Backend, store: SecretStore, change: dict[str, Any], reason: str
) -> None:
    value = change.get("value", "value")
    options = {key: option for key, option in change.items() if key != "value"}
    with pytest.raises(ConfigError, match=reason):
        await store.set_secret(backend.name(), value, **options)


# ---------------------------------------------------------------- persistence and concurrency


async def test_secrets_persist_for_a_new_store_instance(backend: Backend, store: SecretStore) -> None:
    name = backend.name()
    first = await store.set_secret(name, "v1", tags={"k": "v"})
    await store.set_secret(name, "v2")
    await store.close()

    reopened = backend.store()

    assert (await reopened.get_secret(name)).reveal() == "v2"
    assert (await reopened.get_secret(name, first.version)).reveal() == "v1"
    assert len(await reopened.list_versions(name)) == 2


async def test_concurrent_writers_each_land_a_version(backend: Backend, store: SecretStore) -> None:
    name = backend.name()
    other = backend.store()
    values = [f"value-{i}" for i in range(8)]

    written = await asyncio.gather(
        *(writer.set_secret(name, value) for writer, value in zip([store, other] * 4, values, strict=True))
    )

    listed = await store.list_versions(name)
    assert {p.version for p in listed} == {p.version for p in written}
    read = await asyncio.gather(*(other.get_secret(name, p.version) for p in written))
    assert [v.reveal() for v in read] == values


# ---------------------------------------------------------------- values never show themselves


async def test_a_value_never_appears_in_reprs_errors_or_logs(
    backend: Backend, store: SecretStore, caplog: pytest.LogCaptureFixture
) -> None:
    value = f"s3cr3t-{uuid.uuid4().hex}"
    name = backend.name()
    caplog.set_level(logging.DEBUG)
    shown: list[object] = [store]

    shown.append(await store.set_secret(name, value, content_type="text/plain", tags={"kind": "test"}))
    shown.append(await store.set_secret(name, value + "-2"))
    shown.append(await store.get_secret(name))
    shown.append(await store.get_properties(name))
    shown.extend(await store.list_versions(name))
    for failing in (
        store.get_secret(name, "0123456789abcdef0123456789abcdef"),
        store.set_secret(name, value * 1000),
        store.set_secret(name, value, tags={"t": value * 10}),
        store.get_secret(backend.name("missing")),
    ):
        with pytest.raises((NotFound, ConfigError)) as raised:
            await failing
        shown.append(raised.value)
        shown.append("".join(traceback.format_exception(raised.value)))
    await store.delete_secret(name)

    rendered = [repr(item) for item in shown] + [str(item) for item in shown] + [caplog.text]
    assert not [text for text in rendered if value in text]
    assert name in caplog.text  # the log was captured, and names what happened


# ---------------------------------------------------------------- local store only


@pytest.fixture
def local(tmp_path: Path) -> LocalSecretStore:
    return LocalSecretStore(tmp_path / "data", clock=ManualClock())


async def test_the_file_is_0600_in_a_new_0700_directory(local: LocalSecretStore) -> None:
    await local.set_secret("api-key", "value")

    assert stat.S_IMODE(local.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(local.path.with_name("secrets.json.lock").stat().st_mode) == 0o600
    assert stat.S_IMODE(local.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in local.path.parent.iterdir() if p.name.endswith(".tmp")] == []


async def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)

    await LocalSecretStore(shared).set_secret("api-key", "value")

    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert stat.S_IMODE((shared / "secrets.json").stat().st_mode) == 0o600


async def test_a_readable_file_is_tightened_to_0600(local: LocalSecretStore, caplog: pytest.LogCaptureFixture) -> None:
    await local.set_secret("api-key", "value")
    local.path.chmod(0o644)

    with caplog.at_level(logging.WARNING):
        assert (await local.get_secret("api-key")).reveal() == "value"

    assert stat.S_IMODE(local.path.stat().st_mode) == 0o600
    assert "file_mode_tightened" in caplog.text


async def test_a_corrupt_file_is_a_config_error_that_hides_its_content(local: LocalSecretStore) -> None:
    await local.set_secret("api-key", "hidden-value-123")
    local.path.write_bytes(local.path.read_bytes()[:-20])

    with pytest.raises(ConfigError, match="corrupt") as raised:
        await local.get_secret("api-key")

    assert "hidden-value-123" not in "".join(traceback.format_exception(raised.value))


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from castiel.backends.local_secrets import LocalSecretStore

    async def main() -> None:
        store = LocalSecretStore(Path(sys.argv[1]))
        print("ready", flush=True)
        sys.stdin.readline()  # start together with the other writers
        for i in range(int(sys.argv[3])):
            await store.set_secret("shared", f"{sys.argv[2]}-{i}")

    asyncio.run(main())
    """
)


async def test_writers_in_other_processes_never_lose_a_version(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    writers, writes = 3, 10
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WRITER,
            str(data_dir),
            f"p{n}",
            str(writes),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for n in range(writers)
    ]
    ready = [await process.stdout.readline() for process in processes if process.stdout is not None]
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    codes = await asyncio.gather(*(process.wait() for process in processes))

    store = LocalSecretStore(data_dir)
    versions = await store.list_versions("shared")
    values = {(await store.get_secret("shared", p.version)).reveal() for p in versions}
    assert (ready, codes) == ([b"ready\n"] * writers, [0] * writers)
    assert values == {f"p{n}-{i}" for n in range(writers) for i in range(writes)}
    assert len(versions) == writers * writes


# ---------------------------------------------------------------- Key Vault boundary, without Azure


class _Response:
    """The little of an HTTP response that azure-core's exceptions read."""

    def __init__(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.reason = "reason"
        self.headers = headers or {}
        self._body = body

    def text(self) -> str:
        return self._body


def _http(
    kind: type[HttpResponseError], status: int, code: str = "", inner: str = "", **headers: str
) -> HttpResponseError:
    body = (
        f'{{"error": {{"code": "{code}", "message": "service says no", "innererror": {{"code": "{inner}"}}}}}}'
        if code
        else ""
    )
    return kind(response=_Response(status, body, headers))


TRANSLATIONS = {
    "404": (_http(ResourceNotFoundError, 404, "SecretNotFound"), NotFound),
    "401": (_http(ClientAuthenticationError, 401, "Unauthorized"), ConfigError),
    "credential unavailable": (ClientAuthenticationError("no credential in this environment"), ConfigError),
    "403": (_http(HttpResponseError, 403, "Forbidden", "ForbiddenByRbac"), ConfigError),
    "429": (_http(HttpResponseError, 429, "Throttled", **{"Retry-After": "7"}), RateLimited),
    "500": (_http(HttpResponseError, 500, "InternalError"), RetryableError),
    "503 without body": (_http(HttpResponseError, 503), RetryableError),
    "408": (_http(HttpResponseError, 408, "RequestTimeout"), RetryableError),
    "409 being deleted": (_http(ResourceExistsError, 409, "Conflict", "ObjectIsBeingDeleted"), RetryableError),
    "409 held by a deleted secret": (
        _http(ResourceExistsError, 409, "Conflict", "ObjectIsDeletedButRecoverable"),
        PermanentError,
    ),
    "400": (_http(HttpResponseError, 400, "BadParameter"), PermanentError),
    "connection refused": (ServiceRequestError("connection refused"), RetryableError),
    "connection reset": (ServiceResponseError("connection reset"), RetryableError),
}


@pytest.mark.parametrize(("error", "expected"), TRANSLATIONS.values(), ids=TRANSLATIONS.keys())
def test_azure_errors_translate_by_what_the_caller_does_next(error: AzureError, expected: type[Exception]) -> None:
    translated = ERRORS.translate(error, "get secret 'api-key'")

    assert type(translated) is expected
    assert str(translated).startswith("get secret 'api-key'")


def test_a_throttled_call_carries_the_service_retry_after() -> None:
    throttled = _http(HttpResponseError, 429, "Throttled", **{"Retry-After": "7"})

    translated = ERRORS.translate(throttled, "set secret 'x'")

    assert isinstance(translated, RateLimited)
    assert (translated.retry_after, translated.level) == (7.0, "keyvault")


class _FakeClient:
    """A ``SecretClient`` stand-in for the delete path: the deleted secret it reports, the purges it saw."""

    vault_url = "https://castiel-test.vault.azure.net"

    def __init__(self, recovery_id: str | None, recovery_level: str | None, purge_error: Exception | None = None):
        self.deleted = SimpleNamespace(
            recovery_id=recovery_id, properties=SimpleNamespace(recovery_level=recovery_level)
        )
        self.purge_error = purge_error
        self.purged: list[str] = []

    async def delete_secret(self, name: str) -> SimpleNamespace:
        return self.deleted

    async def purge_deleted_secret(self, name: str) -> None:
        if self.purge_error is not None:
            raise self.purge_error
        self.purged.append(name)

    async def close(self) -> None:
        return None


RECOVERY_ID = "https://castiel-test.vault.azure.net/deletedsecrets/api-key"
FORBIDDEN = _http(HttpResponseError, 403, "Forbidden")

DELETES: dict[str, tuple[tuple[str | None, str, Exception | None], list[str], str]] = {
    "soft-delete off": ((None, "Purgeable", None), [], ""),
    "purgeable": ((RECOVERY_ID, "Recoverable+Purgeable", None), ["api-key"], ""),
    "purge protection": ((RECOVERY_ID, "Recoverable", None), [], "secret.soft_deleted"),
    "purge forbidden": ((RECOVERY_ID, "Recoverable+Purgeable", FORBIDDEN), [], "secret.purge_failed"),
}


@pytest.mark.parametrize(("deleted", "purged", "warning"), DELETES.values(), ids=DELETES.keys())
async def test_key_vault_delete_purges_when_the_vault_permits(
    deleted: tuple[str | None, str, Exception | None],
    purged: list[str],
    warning: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = _FakeClient(*deleted)
    store = KeyVaultSecretStore(client)  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING):
        await store.delete_secret("api-key")

    assert client.purged == purged
    assert (warning in caplog.text) if warning else not caplog.records
