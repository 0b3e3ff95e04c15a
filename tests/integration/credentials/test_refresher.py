"""``token_refresher`` on a fake clock: every page of due credentials, bounded concurrency, keep-alive of idle-expiring
refresh tokens, a dead grant alerted once, and deadline warnings for values a refresh cannot renew."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from castiel.clock import ManualClock, now_utc
from castiel.credentials.alerts import CredentialAlertKind
from castiel.credentials.lock import RefreshLocks
from castiel.credentials.oauth import TokenEndpoint
from castiel.credentials.refresher import RefreshReport, TokenRefresher
from castiel.credentials.types import parse_credential
from castiel.credentials.vault import CredentialVault
from castiel.models import CredentialStatus, Provider, RefreshOutcome, RotationPolicy, TaskStatus, TokenRefreshAudit
from castiel.ports import Query
from tests.integration.credentials.conftest import Backends, StandIn, add_user_grant
from tests.unit.credentials.keys import certificate_pem, private_key_pem

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
THRESHOLD = timedelta(minutes=420)


def refresher(backends: Backends, vault: CredentialVault, clock: ManualClock, **options: int) -> TokenRefresher:
    return TokenRefresher(
        backends.store, vault, threshold=THRESHOLD, clock=clock, alert=backends.alerts.append, **options
    )


async def audit_outcomes(backends: Backends) -> list[RefreshOutcome]:
    page = await backends.store.query(TokenRefreshAudit.container, Query())
    return sorted(TokenRefreshAudit.model_validate(doc).outcome for doc in page.items)


async def test_every_page_of_due_credentials_is_refreshed_once_and_nothing_else(
    backends: Backends, oauth: StandIn
) -> None:
    clock = ManualClock()
    vault = backends.vault(clock)
    await backends.connection(Provider.GITHUB)
    grants = {}
    for hours in (1, 2, 3, 4, 5, 10, 20):
        _, grants[hours] = await add_user_grant(
            vault, oauth, Provider.GITHUB, expires_at=now_utc(clock) + hours * HOUR, credential_id=f"c-{hours}h"
        )
    # A token that lives six hours is due again within the cutoff after its refresh, further down the keyset order.
    oauth.sandbox.control(grants[1].id, expires_in=6 * 3600)

    report = await refresher(backends, vault, clock, page_size=2).run()

    assert report == RefreshReport(refreshed=5)
    calls = oauth.sandbox.calls()
    assert {hours: calls[grant.id] for hours, grant in grants.items()} == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 10: 0, 20: 0}
    assert await audit_outcomes(backends) == [RefreshOutcome.REFRESHED] * 5

    clock.advance(6 * 3600)
    second = await refresher(backends, vault, clock, page_size=2).run()

    assert second == RefreshReport(refreshed=6)  # the five (8 h and 6 h tokens) and the one due in 10 h; not 20 h
    assert oauth.sandbox.calls()[grants[20].id] == 0


async def test_refresh_tokens_that_lapse_when_unused_are_kept_alive(backends: Backends, oauth: StandIn) -> None:
    clock = ManualClock()
    vault = backends.vault(clock)
    await backends.connection(Provider.SALESFORCE)
    idle = RotationPolicy(refresh_idle_days=30)
    _, old = await add_user_grant(vault, oauth, Provider.SALESFORCE, expires_at=None, rotation=idle, credential_id="a")
    clock.advance(29.8 * 86400)
    _, new = await add_user_grant(vault, oauth, Provider.SALESFORCE, expires_at=None, rotation=idle, credential_id="b")

    report = await refresher(backends, vault, clock).run()

    assert report == RefreshReport(refreshed=1)
    assert oauth.sandbox.calls() == {old.id: 1, new.id: 0}
    kept_alive = await vault.records.read("t1", "a")
    assert kept_alive.due_at == now_utc(clock) + 30 * DAY  # the idle clock starts again


async def test_a_dead_grant_alerts_once_and_leaves_the_query_while_its_tasks_wait(
    backends: Backends, oauth: StandIn
) -> None:
    clock = ManualClock()
    vault = backends.vault(clock)
    await backends.connection(Provider.GOOGLE)
    await backends.task("conn-1", "task-1", "pending")
    metadata, grant = await add_user_grant(vault, oauth, Provider.GOOGLE, expires_at=now_utc(clock) + HOUR)
    oauth.sandbox.control(grant.id, refuse="invalid_grant")

    first = await refresher(backends, vault, clock).run()
    clock.advance(6 * 3600)
    second = await refresher(backends, vault, clock).run()

    assert first == RefreshReport(needs_reauth=1)
    assert second == RefreshReport()
    assert [alert.kind for alert in backends.alerts] == [CredentialAlertKind.NEEDS_REAUTH]
    assert oauth.sandbox.calls()[grant.id] == 1
    assert (await vault.records.read("t1", metadata.id)).status is CredentialStatus.NEEDS_REAUTH
    assert (await backends.read_task("task-1")).status is TaskStatus.NEEDS_REAUTH
    assert await audit_outcomes(backends) == [RefreshOutcome.NEEDS_REAUTH]


async def test_a_failed_refresh_is_counted_and_the_run_goes_on(backends: Backends, oauth: StandIn) -> None:
    clock = ManualClock()
    vault = backends.vault(clock)
    await backends.connection(Provider.SLACK)
    _, failing = await add_user_grant(vault, oauth, Provider.SLACK, expires_at=now_utc(clock), credential_id="a")
    await add_user_grant(vault, oauth, Provider.SLACK, expires_at=now_utc(clock), credential_id="b")
    oauth.sandbox.control(failing.id, server_errors=1)

    report = await refresher(backends, vault, clock).run()

    assert report == RefreshReport(refreshed=1, failed=1)
    assert (await vault.records.read("t1", "a")).status is CredentialStatus.ACTIVE
    assert backends.alerts == []


async def test_api_keys_and_certificates_are_warned_about_once_before_they_expire(backends: Backends) -> None:
    clock = ManualClock()
    vault = backends.vault(clock)
    await backends.connection(Provider.GITHUB)
    expiring = now_utc(clock) + 10 * DAY
    await vault.add(
        "t1", "conn-1", parse_credential("api_key", {"api_key": "k", "expires_at": expiring}), credential_id="key"
    )
    certificate = parse_credential(
        "client_certificate",
        {"certificate": certificate_pem(now_utc(clock) + 3 * DAY), "private_key": private_key_pem()},
    )
    await vault.add("t1", "conn-1", certificate, credential_id="cert")
    await vault.add("t1", "conn-1", parse_credential("api_key", {"api_key": "later"}), credential_id="quiet")

    first = await refresher(backends, vault, clock).run()
    second = await refresher(backends, vault, clock).run()

    assert (first, second) == (RefreshReport(warned=2), RefreshReport())
    assert sorted(alert.credential_id for alert in backends.alerts) == ["cert", "key"]
    assert all(alert.kind is CredentialAlertKind.DEADLINE for alert in backends.alerts)
    assert any("expires at" in alert.detail and "credentials rotate key" in alert.detail for alert in backends.alerts)


async def test_a_rotation_interval_is_warned_about_and_a_new_value_starts_it_again(backends: Backends) -> None:
    clock = ManualClock()
    vault = backends.vault(clock)
    await backends.connection(Provider.GITHUB)
    policy = RotationPolicy(interval_days=90, warn_before_days=14)
    metadata = await vault.add(
        "t1", "conn-1", parse_credential("bearer_token", {"token": "t"}), credential_id="tok", rotation=policy
    )
    clock.advance(70 * 86400)
    assert await refresher(backends, vault, clock).run() == RefreshReport()
    clock.advance(7 * 86400)
    assert await refresher(backends, vault, clock).run() == RefreshReport(warned=1)
    assert "is due for rotation" in backends.alerts[0].detail

    await vault.rotate(await vault.records.read("t1", metadata.id), parse_credential("bearer_token", {"token": "t2"}))
    clock.advance(80 * 86400)
    assert await refresher(backends, vault, clock).run() == RefreshReport(warned=1)
    assert len(backends.alerts) == 2


async def test_refreshes_run_at_most_concurrency_at_a_time(backends: Backends) -> None:
    clock = ManualClock()
    in_flight = peak = 0

    async def token_endpoint(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return httpx.Response(200, json={"access_token": "new", "expires_in": 86400})

    async with httpx.AsyncClient(transport=httpx.MockTransport(token_endpoint)) as http:
        vault = CredentialVault(
            backends.store, backends.secrets, RefreshLocks(backends.redis), TokenEndpoint(http), clock=clock
        )
        await backends.connection(Provider.STANDARD)
        for index in range(8):
            value = parse_credential(
                "oauth2_client_credentials",
                {"client_id": "app", "client_secret": "s", "token_url": "https://idp.test/token",
                 "expires_at": now_utc(clock) + HOUR},
            )  # fmt: skip
            await vault.add("t1", "conn-1", value, credential_id=f"c{index}")

        report = await refresher(backends, vault, clock, concurrency=3).run()

    assert report == RefreshReport(refreshed=8)
    assert peak == 3
