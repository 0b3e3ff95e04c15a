"""A dead grant during a pull — the provider refuses even a refreshed token, or the refresh itself is refused — moves
the task to ``needs_reauth``, not ``failed``: the message completes (no retry storm, no dead letter) and
re-authorising the connection resumes it."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis.asyncio as aioredis

from castiel.backends.local_secrets import LocalSecretStore
from castiel.credentials.auth import RefreshingAuth, Token
from castiel.credentials.types import parse_credential
from castiel.credentials.vault import CredentialVault
from castiel.models import Connection, CredentialStatus, TaskStatus
from castiel.sandbox.oauth import PATHS
from tests.integration.sync.test_resume import QUEUE, deliver
from tests.integration.sync.world import GITHUB, World

CLIENT_ID, CLIENT_SECRET = "sync-client", "zqSYNCSECRETzq"


class NeverAccepted:
    """A token source whose tokens the strict sandbox has never issued, renewed or not."""

    label = "connection sbx-github (github)"

    def __init__(self) -> None:
        self.renewed = 0

    async def current(self) -> Token:
        return Token("zqSTALEzq", 1)

    async def renew(self, rejected: Token) -> Token:
        self.renewed += 1
        return Token("zqSTILLSTALEzq", rejected.version + 1)


class RejectedAuth:
    """The credentials' own refreshing flow over ``NeverAccepted``."""

    def __init__(self) -> None:
        self.source = NeverAccepted()

    async def auth_for_connection(self, connection: Connection) -> httpx.Auth:
        return RefreshingAuth(self.source)

    async def api_root_for_connection(self, connection: Connection) -> str | None:
        return None


async def assert_waiting_for_reauth(world: World, connection: Connection, reason: str) -> None:
    result = await deliver(world, connection)
    assert (result.status, result.phase) == ("needs_reauth", "complete")
    assert result.error is not None
    assert reason in result.error
    task = await world.task(connection)
    assert (task.status, task.last_result_id) == (TaskStatus.NEEDS_REAUTH, result.id)
    assert await world.queue.peek(QUEUE) == []
    assert await world.queue.peek(QUEUE, sub_queue="dead_letter") == []
    assert await world.docs("shards") == []


async def test_a_token_refused_even_after_its_refresh_moves_the_task_to_needs_reauth(world: World) -> None:
    world.sandbox.tokens.strict = True
    auth = RejectedAuth()
    world.inbound = world.service(auth)
    connection = await world.connect(GITHUB)

    await assert_waiting_for_reauth(world, connection, "freshly refreshed token")
    assert auth.source.renewed == 1


async def test_a_refresh_refused_with_invalid_grant_moves_the_task_to_needs_reauth(
    world: World, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    oauth = world.sandbox.oauth
    oauth.register_client(CLIENT_ID, CLIENT_SECRET)
    grant = oauth.issue("github", CLIENT_ID)
    oauth.control(grant.id, refuse="invalid_grant")
    world.sandbox.tokens.strict = True
    world.sandbox.tokens.revoked.add(grant.access_token)  # expired: the first call answers 401, the refresh is due
    secrets = LocalSecretStore(tmp_path / "secrets")
    vault = CredentialVault.wire(world.store, secrets, redis_client, world.http, clock=world.clock)
    world.inbound = world.service(vault)
    connection = await world.connect(GITHUB)
    fields = {
        "access_token": grant.access_token,
        "refresh_token": grant.refresh_token,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "token_url": world.server.url + PATHS["github"][1],
    }
    credential = await vault.add("t1", connection.id, parse_credential("oauth2_authorization_code", fields))

    await assert_waiting_for_reauth(world, connection, "needs re-authorisation")
    assert (await vault.records.read("t1", credential.id)).status is CredentialStatus.NEEDS_REAUTH
    await secrets.close()
