"""The embedded ``SecretStore``: versioned secrets in one JSON file under the data directory.

Key Vault semantics without Azure: every ``set_secret`` adds a version (a random 32-hex id, like Key Vault's),
names follow Key Vault's rules and compare case-insensitively, ``content_type`` / ``expires_on`` / ``tags`` are kept
per version, and ``delete_secret`` removes every version at once (there is no soft-delete here). As in Key Vault,
``expires_on`` is metadata: an expired version can still be read; expiry monitoring is the credentials layer's job.

The file (``<data_dir>/secrets.json``) is mode 0600 in a directory created 0700. Values are stored as plain text
there, protected only by those permissions: this is the store for a developer machine, Key Vault is the one for
production. Every change is a read-modify-write under an exclusive ``flock`` on ``secrets.json.lock`` and lands
with an atomic ``os.replace`` of a fsynced temporary file, so concurrent writers in any number of threads or
processes never lose a version, and readers (who take no lock) see either the old file or the new one.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from castiel.backends.secret_names import check_secret, name_key
from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import ConfigError, NotFound, RetryableError
from castiel.models import format_utc
from castiel.ports import SecretProperties, SecretValue

logger = logging.getLogger(__name__)

T = TypeVar("T")

FILE_NAME = "secrets.json"
_FORMAT = 1
_FILE_MODE = 0o600
_DIR_MODE = 0o700


@dataclass(slots=True)
class _Version:
    version: str
    value: SecretValue
    created_on: datetime
    expires_on: datetime | None = None
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def properties(self, name: str) -> SecretProperties:
        return SecretProperties(
            name=name,
            version=self.version,
            created_on=self.created_on,
            expires_on=self.expires_on,
            content_type=self.content_type,
            tags=dict(self.tags),
        )


@dataclass(slots=True)
class _Secret:
    name: str
    versions: list[_Version]


class LocalSecretStore:
    """``SecretStore`` on a file under ``data_dir``; safe across threads and processes sharing the directory."""

    def __init__(self, data_dir: Path, *, clock: Clock = system_clock) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self._lock_path = self.path.with_name(FILE_NAME + ".lock")
        self._clock = clock

    def __repr__(self) -> str:
        return f"LocalSecretStore({str(self.path)!r})"

    async def get_secret(self, name: str, version: str | None = None) -> SecretValue:
        """The latest (or given) version's value; raises ``NotFound``."""
        secret = await self._read_secret(name)
        return _pick(secret, version).value

    async def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        expires_on: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> SecretProperties:
        """Store a new version, created now by the store's clock."""
        check_secret(name, value, content_type=content_type, expires_on=expires_on, tags=tags)
        new = _Version(
            version=uuid.uuid4().hex,
            value=SecretValue(value),
            created_on=now_utc(self._clock),
            expires_on=expires_on,
            content_type=content_type,
            tags=dict(tags or {}),
        )

        def add(secrets: dict[str, _Secret]) -> SecretProperties:
            secret = secrets.setdefault(name_key(name), _Secret(name=name, versions=[]))
            secret.versions.append(new)
            return new.properties(secret.name)

        properties = await asyncio.to_thread(self._update, add)
        logger.debug("secret.set name=%s version=%s", properties.name, properties.version)
        return properties

    async def get_properties(self, name: str) -> SecretProperties:
        """Metadata of the latest version; raises ``NotFound``."""
        secret = await self._read_secret(name)
        return secret.versions[-1].properties(secret.name)

    async def list_versions(self, name: str) -> list[SecretProperties]:
        """Every version, oldest first; raises ``NotFound``."""
        secret = await self._read_secret(name)
        return [entry.properties(secret.name) for entry in secret.versions]

    async def delete_secret(self, name: str) -> None:
        """Remove every version for good; raises ``NotFound``."""
        key = name_key(name)

        def remove(secrets: dict[str, _Secret]) -> None:
            if secrets.pop(key, None) is None:
                raise NotFound(f"secret {name!r} not found")

        await asyncio.to_thread(self._update, remove)
        logger.debug("secret.deleted name=%s", name)

    async def close(self) -> None:
        """Nothing to release: no file stays open between calls."""

    # ------------------------------------------------------------ file access (worker threads)

    async def _read_secret(self, name: str) -> _Secret:
        key = name_key(name)
        secrets = await asyncio.to_thread(self._load)
        secret = secrets.get(key)
        if secret is None or not secret.versions:
            raise NotFound(f"secret {name!r} not found")
        return secret

    def _update(self, change: Callable[[dict[str, _Secret]], T]) -> T:
        """Apply ``change`` to the stored secrets under the cross-process lock and persist the result."""
        with _os_errors(self.path), self._exclusive_lock():
            secrets = self._load()
            result = change(secrets)
            self._save(secrets)
            return result

    @contextmanager
    def _exclusive_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        descriptor = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        try:
            # flock is per open file description, so it also serialises this process's own threads.
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def _load(self) -> dict[str, _Secret]:
        with _os_errors(self.path):
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                return {}
            self._tighten_mode()
        try:
            return _decode(orjson.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError):
            # ``from None``: a parse error can carry the file's text, and that text holds secret values.
            raise ConfigError(f"secrets file {self.path} is corrupt: restore it or remove it") from None

    def _save(self, secrets: dict[str, _Secret]) -> None:
        payload = orjson.dumps(_encode(secrets), option=orjson.OPT_INDENT_2)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".secrets-", suffix=".tmp")
        try:
            os.fchmod(descriptor, _FILE_MODE)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        _fsync_directory(self.path.parent)

    def _tighten_mode(self) -> None:
        # A file copied in by hand may be world-readable; every write recreates it 0600 anyway.
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            os.chmod(self.path, _FILE_MODE)
            logger.warning("secrets.file_mode_tightened path=%s was=%o now=%o", self.path, mode, _FILE_MODE)


def _pick(secret: _Secret, version: str | None) -> _Version:
    if not version:
        return secret.versions[-1]
    for entry in secret.versions:
        if entry.version == version:
            return entry
    raise NotFound(f"secret {secret.name!r} has no version {version!r}")


@contextmanager
def _os_errors(path: Path) -> Iterator[None]:
    """Translate file-system errors: permissions are a configuration problem, anything else may pass."""
    try:
        yield
    except PermissionError as exc:
        raise ConfigError(f"secrets file {path}: {exc.strerror}") from exc
    except OSError as exc:
        raise RetryableError(f"secrets file {path}: {exc.strerror}") from exc


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _encode(secrets: dict[str, _Secret]) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "secrets": {
            key: {
                "name": secret.name,
                "versions": [
                    {
                        "version": entry.version,
                        "value": entry.value.reveal(),
                        "createdOn": format_utc(entry.created_on),
                        "expiresOn": format_utc(entry.expires_on) if entry.expires_on else None,
                        "contentType": entry.content_type,
                        "tags": entry.tags,
                    }
                    for entry in secret.versions
                ],
            }
            for key, secret in secrets.items()
        },
    }


def _decode(document: dict[str, Any]) -> dict[str, _Secret]:
    if document.get("format") != _FORMAT:
        raise ValueError("unknown secrets file format")
    return {
        key: _Secret(
            name=raw["name"],
            versions=[
                _Version(
                    version=entry["version"],
                    value=SecretValue(entry["value"]),
                    created_on=datetime.fromisoformat(entry["createdOn"]),
                    expires_on=datetime.fromisoformat(entry["expiresOn"]) if entry.get("expiresOn") else None,
                    content_type=entry.get("contentType"),
                    tags=dict(entry.get("tags") or {}),
                )
                for entry in raw["versions"]
            ],
        )
        for key, raw in document["secrets"].items()
    }
