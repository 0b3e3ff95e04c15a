"""A second process for the queue contract: drain a SQLite queue file, completing everything it receives.

Usage: ``python queue_worker_proc.py <queue.db> <queue name> <go file>``. Prints ``ready`` once the file is open,
starts receiving when ``<go file>`` appears (so two workers start together), holds its first batch until every
worker has one (so a loaded machine that schedules one process late cannot let the other drain everything alone), and
stops when the queue has no active message left, printing the message ids it received as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from castiel.backends.sqlite_queue import SqliteMessageQueue

_START_TIMEOUT_SECONDS = 30.0
_WORKERS = 2


async def _wait_until(ready: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _START_TIMEOUT_SECONDS
    while not await asyncio.to_thread(ready):
        if loop.time() > deadline:
            raise TimeoutError(f"{what} never happened")
        await asyncio.sleep(0.005)


async def drain(path: Path, name: str, go: Path) -> list[str]:
    """Receive and complete from ``name`` until nothing is active; the ids received, in order."""
    queue = SqliteMessageQueue(path)
    received: list[str] = []
    try:
        print("ready", flush=True)
        await _wait_until(go.exists, f"{go} appearing")
        while True:
            batch = await queue.receive(name, max_messages=10, max_wait_seconds=0.05)
            if batch:
                if not received:
                    (go.parent / f"started-{os.getpid()}").touch()
                    await _wait_until(
                        lambda: len(list(go.parent.glob("started-*"))) >= _WORKERS, "every worker's first batch"
                    )
                received.extend(message.message_id for message in batch)
                await asyncio.gather(*(queue.complete(name, message) for message in batch))
            elif (await queue.stats(name)).active == 0:
                return received
    finally:
        await queue.close()


if __name__ == "__main__":
    db_path, queue_name, go_file = sys.argv[1:4]
    print(json.dumps(asyncio.run(drain(Path(db_path), queue_name, Path(go_file)))), flush=True)
