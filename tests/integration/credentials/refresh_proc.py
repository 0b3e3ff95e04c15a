"""A second process for the refresh race: concurrent requests through ``auth_for_connection`` on one credential.

Usage: ``python -m tests.integration.credentials.refresh_proc <data_dir> <redis url> <go file> <requests>``. Prints
``ready`` once its backends are open, starts when ``<go file>`` appears (so both processes start together), and
prints the access tokens its requests carried as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx

from castiel.backends.local_secrets import LocalSecretStore
from castiel.backends.redis_client import connect
from castiel.backends.sqlite_engine import DATABASE_FILE
from castiel.backends.sqlite_store import SqliteDocumentStore
from castiel.credentials.vault import CredentialVault
from castiel.models import Connection

_START_TIMEOUT_SECONDS = 30.0


async def held_tokens(vault: CredentialVault, connection: Connection, requests: int) -> list[str]:
    """Send ``requests`` API calls at once, each authenticated by its own ``auth_for_connection``; the tokens sent."""
    sent: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Authorization"].removeprefix("Bearer "))
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as client:

        async def one() -> None:
            auth = await vault.auth_for_connection(connection)
            (await client.get("https://api.github.test/user", auth=auth)).raise_for_status()

        await asyncio.gather(*(one() for _ in range(requests)))
    return sent


async def _wait_for(go: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _START_TIMEOUT_SECONDS
    while not await asyncio.to_thread(go.exists):
        if loop.time() > deadline:
            raise TimeoutError(f"{go} never appeared")
        await asyncio.sleep(0.005)


async def main(data_dir: Path, redis_url: str, go: Path, requests: int) -> list[str]:
    store = SqliteDocumentStore(data_dir / DATABASE_FILE)
    secrets = LocalSecretStore(data_dir)
    redis = connect(redis_url, timeout_seconds=1.0)
    try:
        async with httpx.AsyncClient(timeout=30.0) as http:
            vault = CredentialVault.wire(store, secrets, redis, http)
            connection = Connection.model_validate(await store.read(Connection.container, "conn-1", "t1"))
            print("ready", flush=True)
            await _wait_for(go)
            return await held_tokens(vault, connection, requests)
    finally:
        await redis.aclose()
        await store.close()


if __name__ == "__main__":
    directory, url, go_file, count = sys.argv[1:5]
    print(json.dumps(asyncio.run(main(Path(directory), url, Path(go_file), int(count)))), flush=True)
