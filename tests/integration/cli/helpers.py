"""Running ``castiel`` in-process on the embedded backends, as an operator would type it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_queue import SqliteMessageQueue
from castiel.cli import app
from castiel.ports import OutgoingMessage

runner = CliRunner()


def invoke(*args: str) -> Result:
    """Run one command; the result keeps stdout and stderr apart."""
    return runner.invoke(app, list(args))


def castiel(*args: str, expect: int = 0) -> str:
    """Run one command, check its exit code, and return its stdout."""
    result = invoke(*args)
    assert result.exit_code == expect, result.output
    return result.stdout


def castiel_json(*args: str) -> Any:
    """Run one command that succeeds and parse its stdout as JSON."""
    return json.loads(castiel(*args))


def dead_letter_one(data_dir: Path, queue: str, message_id: str, body: bytes = b'{"x": 1}') -> None:
    """Send one message and dead-letter it, as a worker giving up would."""

    async def run() -> None:
        mq = SqliteMessageQueue(data_dir / DATABASE_FILE)
        try:
            await mq.send(queue, [OutgoingMessage(body=body, message_id=message_id)])
            (received,) = await mq.receive(queue)
            await mq.dead_letter(queue, received, reason="PermanentError: bad config", description="fix it")
        finally:
            await mq.close()

    asyncio.run(run())
