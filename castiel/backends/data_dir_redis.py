"""One embedded Redis per data directory, shared by ``castiel serve`` and every CLI command working on it.

Files in the data directory:

- ``redis.json``, the record: the server's port, pid and ``run_id`` (random per server start), who started it and
  when. A process that finds a record checks that the server on that port answers with that ``run_id``; a record
  whose server is gone, or whose port now belongs to another server, is stale and is replaced.
- ``redis.lock``: every process using the server holds a shared ``flock`` on it for as long as it does. The server's
  supervisor (``redis_supervisor.py``) stops the server once nobody holds it, so the server lives exactly as long as
  the processes sharing it, and the kernel releases a killed process's lock (``kill -9`` included).
- ``redis.start.lock``: held while a process checks the record and, when needed, starts a server, so two processes
  arriving together share one server instead of starting two.
- ``redis.log``: the server's and supervisor's output, for when it does not start.

Whoever arrives first starts the server: ``castiel serve``, or a CLI command when no serve is running (the server then
lives for that command, and for any process that joined it meanwhile).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from castiel.backends.data_dir import ensure_data_dir, unusable_data_dir
from castiel.backends.embedded_redis import free_port, hold_shared, identify, launch, redis_url, wait_until_up
from castiel.clock import Clock, now_utc, system_clock
from castiel.models import format_utc

RECORD_FILE = "redis.json"
USERS_LOCK = "redis.lock"
START_LOCK = "redis.start.lock"
LOG_FILE = "redis.log"

# Supervisors this process started that outlived its use of them (other processes still use their server): kept so
# their ``Popen`` objects are not collected while the child runs, which would warn and forget to reap it.
_started: list[subprocess.Popen[bytes]] = []


@dataclass(frozen=True, slots=True)
class RedisRecord:
    """What ``redis.json`` holds about a data directory's server."""

    port: int
    pid: int
    run_id: str
    supervisor_pid: int
    started_by: int
    started_at: str

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RedisRecord:
        """The record from its JSON form (camelCase, as ``as_json`` writes it)."""
        return cls(
            port=int(doc["port"]),
            pid=int(doc["pid"]),
            run_id=str(doc["runId"]),
            supervisor_pid=int(doc["supervisorPid"]),
            started_by=int(doc["startedBy"]),
            started_at=str(doc["startedAt"]),
        )

    def as_json(self) -> dict[str, Any]:
        """The JSON form, camelCase like every JSON Castiel writes."""
        return {
            "url": self.url,
            "port": self.port,
            "pid": self.pid,
            "runId": self.run_id,
            "supervisorPid": self.supervisor_pid,
            "startedBy": self.started_by,
            "startedAt": self.started_at,
        }

    @property
    def url(self) -> str:
        """Where the server listens."""
        return redis_url(self.port)

    def is_live(self) -> bool:
        """True when the server on ``port`` is the one this record describes."""
        identity = identify(self.port)
        return identity is not None and identity.run_id == self.run_id


class RedisLease:
    """This process's use of a data directory's server: its URL, held until ``release``."""

    def __init__(self, record: RedisRecord, users: int) -> None:
        self.record = record
        self._users: int | None = users

    @property
    def url(self) -> str:
        """Where the server listens."""
        return self.record.url

    def release(self) -> None:
        """Stop using the server; the last process to release it (or die) ends it. Idempotent."""
        if self._users is not None:
            os.close(self._users)
            self._users = None
        _started[:] = [supervisor for supervisor in _started if supervisor.poll() is None]


def read_record(data_dir: Path) -> RedisRecord | None:
    """The record in ``data_dir``, or None when there is none or it cannot be read (a stale or damaged record)."""
    try:
        return RedisRecord.from_json(json.loads((data_dir / RECORD_FILE).read_bytes()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def join(data_dir: Path, *, clock: Clock = system_clock) -> RedisLease:
    """Use the data directory's live server, or start one (and record it) when there is none or the record is stale.

    Creates ``data_dir`` when missing: only commands that may create it get here.
    """
    ensure_data_dir(data_dir)
    with unusable_data_dir(data_dir):
        start = os.open(data_dir / START_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(start, fcntl.LOCK_EX)
        with unusable_data_dir(data_dir):
            users = hold_shared(data_dir / USERS_LOCK)
        try:
            record = read_record(data_dir)
            if record is None or not record.is_live():
                record = _start(data_dir, clock)
        except BaseException:
            os.close(users)
            raise
        return RedisLease(record, users)
    finally:
        os.close(start)


def _start(data_dir: Path, clock: Clock) -> RedisRecord:
    port = free_port()
    log_path = data_dir / LOG_FILE
    with unusable_data_dir(data_dir):
        supervisor = launch(port, directory=data_dir, users_lock=data_dir / USERS_LOCK, log_path=log_path)
    identity = wait_until_up(supervisor, port, log_path)
    _started.append(supervisor)
    record = RedisRecord(
        port=port,
        pid=identity.pid,
        run_id=identity.run_id,
        supervisor_pid=supervisor.pid,
        started_by=os.getpid(),
        started_at=format_utc(now_utc(clock)),
    )
    temporary = data_dir / f".{RECORD_FILE}.{os.getpid()}.tmp"
    with unusable_data_dir(data_dir):
        temporary.write_text(json.dumps(record.as_json(), indent=2))
        os.replace(temporary, data_dir / RECORD_FILE)
    return record
