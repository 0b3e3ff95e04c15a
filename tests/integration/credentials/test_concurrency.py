"""One refresh per credential at a time across processes: 20 concurrent callers in two processes, one token call."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.clock import now_utc
from castiel.models import Provider, RefreshOutcome, TokenRefreshAudit
from castiel.ports import Query
from tests.integration.credentials.conftest import Backends, StandIn, add_user_grant
from tests.integration.credentials.refresh_proc import held_tokens

ROOT = Path(__file__).parents[3]


async def test_twenty_concurrent_refreshes_from_two_processes_make_one_token_call_and_all_hold_the_new_token(
    backends: Backends, oauth: StandIn, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    connection = await backends.connection(Provider.GITHUB)
    metadata, grant = await add_user_grant(
        backends.vault(), oauth, Provider.GITHUB, expires_at=now_utc() - timedelta(minutes=1)
    )
    expired_token = grant.access_token
    # A slow answer keeps the lock held while the other process's callers arrive (GitHub rotates: a second call with
    # the same refresh token would be refused, so a race would show as a failure, not only as a count).
    oauth.sandbox.control(grant.id, delay_seconds=0.3)
    go = tmp_path / "go"
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.credentials.refresh_proc", str(backends.data_dir), redis_server.url,
        str(go), "10", stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    try:
        assert other.stdout is not None
        assert await other.stdout.readline() == b"ready\n"
        go.touch()
        mine = await held_tokens(backends.vault(), (await backends.read_connection(connection.id)), 10)
        out, _ = await asyncio.wait_for(other.communicate(), 60)
    finally:
        if other.returncode is None:
            other.kill()
            await other.wait()
    theirs = json.loads(out)

    assert other.returncode == 0
    assert oauth.sandbox.calls()[grant.id] == 1
    assert len(mine) == len(theirs) == 10
    assert set(mine) | set(theirs) == {grant.access_token} != {expired_token}
    stored = await backends.vault().records.read("t1", metadata.id)
    assert stored.version == 2
    page = await backends.store.query(TokenRefreshAudit.container, Query())
    outcomes = sorted(TokenRefreshAudit.model_validate(doc).outcome for doc in page.items)
    assert outcomes.count(RefreshOutcome.REFRESHED) == 1
