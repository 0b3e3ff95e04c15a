"""One ``castiel serve`` per data directory.

Two hosts on one data directory would fire every timer twice and share one queue file between two sets of pumps,
so the second refuses to start. ``<data_dir>/serve.lock`` is held with an exclusive ``flock`` for the life of the
running host, which the kernel releases however the process ends (``kill -9`` included): a dead host never blocks
the next one. The file also holds the running host's pid, URL and start time, for ``castiel status``.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from castiel.backends.data_dir import ensure_data_dir, shown, unusable_data_dir
from castiel.clock import Clock, now_utc, system_clock
from castiel.errors import PermanentError
from castiel.models import format_utc

SERVE_LOCK = "serve.lock"
# ``castiel status`` holds a shared lock for an instant to look; a host starting in that instant tries again.
_ACQUIRE_ATTEMPTS = 5
_ACQUIRE_PAUSE_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class ServeRecord:
    """The running host of a data directory, as ``serve.lock`` describes it (None: not known yet)."""

    pid: int | None
    url: str | None
    app: str | None
    started_at: str | None

    def as_json(self) -> dict[str, Any]:
        """The camelCase JSON form."""
        return {"pid": self.pid, "url": self.url, "app": self.app, "startedAt": self.started_at}

    def describe(self) -> str:
        """``pid 123 on http://…`` or as much of it as is known."""
        parts = [f"pid {self.pid}" if self.pid else "", f"on {self.url}" if self.url else ""]
        return " ".join(part for part in parts if part) or "details not written yet"


class ServeLock:
    """The running host's claim on its data directory; ``release`` (or the process ending) gives it up."""

    def __init__(self, data_dir: Path, descriptor: int, record: ServeRecord) -> None:
        self._data_dir = data_dir
        self._descriptor: int | None = descriptor
        self.record = record

    @classmethod
    def acquire(cls, data_dir: Path, *, app: str, clock: Clock = system_clock) -> ServeLock:
        """Claim ``data_dir`` (created when missing) for the host running ``app``; ``PermanentError`` when another
        host holds it."""
        ensure_data_dir(data_dir)
        with unusable_data_dir(data_dir):
            descriptor = os.open(data_dir / SERVE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        for attempt in range(_ACQUIRE_ATTEMPTS):
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if attempt + 1 < _ACQUIRE_ATTEMPTS:
                    time.sleep(_ACQUIRE_PAUSE_SECONDS)
                continue
            claim = cls(data_dir, descriptor, ServeRecord(os.getpid(), None, app, format_utc(now_utc(clock))))
            claim._write()
            return claim
        running = _record_in(descriptor)
        os.close(descriptor)
        raise PermanentError(
            f"a `castiel serve` is already running on data directory {shown(data_dir)} ({running.describe()}):"
            " stop it first, or give this one another CASTIEL_DATA_DIR"
        )

    def announce(self, url: str) -> None:
        """Add the URL this host answers on to its record, once it listens."""
        self.record = replace(self.record, url=url)
        self._write()

    def _write(self) -> None:
        if self._descriptor is None:
            return
        with unusable_data_dir(self._data_dir):
            os.ftruncate(self._descriptor, 0)
            os.pwrite(self._descriptor, json.dumps(self.record.as_json()).encode(), 0)

    def release(self) -> None:
        """Give the data directory up. Idempotent."""
        if self._descriptor is not None:
            os.ftruncate(self._descriptor, 0)
            os.close(self._descriptor)
            self._descriptor = None


def running_serve(data_dir: Path) -> ServeRecord | None:
    """The host running on ``data_dir``, or None when none is."""
    try:
        descriptor = os.open(data_dir / SERVE_LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _record_in(descriptor)
        return None
    finally:
        os.close(descriptor)


def _record_in(descriptor: int) -> ServeRecord:
    try:
        doc: Any = json.loads(os.pread(descriptor, 4096, 0))
        return ServeRecord(pid=int(doc["pid"]), url=doc["url"], app=str(doc["app"]), started_at=str(doc["startedAt"]))
    except (OSError, ValueError, TypeError, KeyError):
        # Written a moment after the lock is taken: a host still starting has none yet.
        return ServeRecord(pid=None, url=None, app=None, started_at=None)
