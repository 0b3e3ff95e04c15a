"""Looking at other processes from a test: is a pid still running, and bounded waits for something to happen."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

WAIT_SECONDS = 20.0


def is_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an exited child its parent has not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return True
    # The state follows the parenthesised command name, which may itself contain spaces or parentheses.
    return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)
