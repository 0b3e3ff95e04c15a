"""Runs one Redis server for as long as some process uses it, and not a moment longer.

Started by ``castiel.backends.embedded_redis`` as ``python -I redis_supervisor.py USERS_LOCK SERVER_ARGS…``; it imports
only the standard library, so it starts in milliseconds. Every process using the server holds a shared ``flock`` on
``USERS_LOCK`` for as long as it does; the kernel drops that lock when the process exits, however it exits (``kill -9``
included). The supervisor polls for an exclusive lock: once it gets one nobody uses the server any more, so it stops
the server and exits. A pipe to one owner could only say when *that* process died; the lock counts every process
sharing a data directory's server.

The server is the supervisor's child with ``PR_SET_PDEATHSIG`` (Linux), so even a ``kill -9`` of the supervisor
itself takes the server down. The supervisor is single-threaded, which is what makes that signal reliable: it fires
when the *thread* that forked the child exits.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

POLL_SECONDS = 0.1
STOP_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive SIGKILL when ``parent`` dies (Linux; elsewhere a no-op)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def setup() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return setup


def _unused(users: int) -> bool:
    """True once no other process holds the users lock (this process then keeps it until it exits)."""
    try:
        fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main(argv: list[str]) -> int:
    """Run the server in ``argv[1:]`` until nobody holds a shared lock on ``argv[0]``, SIGTERM, or the server exits."""
    users_lock, *server_args = argv
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    users = os.open(users_lock, os.O_RDWR | os.O_CREAT, 0o600)
    server = subprocess.Popen(  # noqa: S603 - our own arguments
        server_args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=_die_with(os.getpid())
    )
    try:
        while not stopping and server.poll() is None and not _unused(users):
            time.sleep(POLL_SECONDS)
    finally:
        _stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
