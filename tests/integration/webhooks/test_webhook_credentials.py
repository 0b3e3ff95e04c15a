"""A registration's signing secret as a ``webhook_secret`` credential (issue 11 item 7), seen by a running receiver.

The operator's side — ``WebhookAdmin`` and the credential service, what ``castiel webhooks`` and ``castiel
credentials`` run — has its own registration cache, like another process; the receiver learns of its changes only
through its registration cache's revalidation. Everything reads the harness's fake clock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from castiel.credentials.alerts import CredentialAlert, CredentialAlertKind
from castiel.credentials.refresher import RefreshReport, TokenRefresher
from castiel.credentials.types import WebhookSecret
from castiel.credentials.vault import CredentialVault
from castiel.credentials.webhook_secrets import ROTATION_GRACE
from castiel.errors import ConfigError, NotFound, PreconditionFailed
from castiel.models import (
    Connection,
    CredentialMetadata,
    Provider,
    RotationPolicy,
    VerificationState,
    WebhookRegistration,
)
from castiel.ports import Query
from castiel.webhooks.admin import WebhookAdmin
from castiel.webhooks.notion_verification import fingerprint
from castiel.webhooks.registrations import REVALIDATE_SECONDS, WebhookRegistrations

from .conftest import SAMPLES, SECRETS, TENANT, Harness, auth_headers

GITHUB = Connection(id="conn-github", tenant_id=TENANT, integration_id="github", provider=Provider.GITHUB)
NOTION = Connection(id="conn-notion", tenant_id=TENANT, integration_id="notion", provider=Provider.NOTION)
FIRST = "gh-first-secret-Wq71Kd"
ROTATED = "gh-rotated-secret-Pz38Hn"
STANDARD_SECRET = SECRETS["standard"]
NOT_BASE64 = "whsec_not*base64!"
GRACE = ROTATION_GRACE.total_seconds()


@dataclass
class Operator:
    """What the CLI runs, in its own "process": the webhook admin and the credential service."""

    admin: WebhookAdmin
    vault: CredentialVault
    alerts: list[CredentialAlert]

    async def credential(self, registration: WebhookRegistration) -> CredentialMetadata:
        assert registration.credential_id is not None
        return await self.vault.records.read(registration.tenant_id, registration.credential_id)

    async def credentials_rotate(self, registration: WebhookRegistration, secret: str) -> CredentialMetadata:
        """What ``castiel credentials rotate ID --value SECRET`` runs."""
        return await self.vault.rotate(await self.credential(registration), WebhookSecret(secret=secret))


@pytest.fixture
async def operator(harness: Harness, redis_client: aioredis.Redis) -> AsyncIterator[Operator]:
    alerts: list[CredentialAlert] = []
    async with httpx.AsyncClient() as http:
        vault = CredentialVault.wire(
            harness.store, harness.secrets, redis_client, http, clock=harness.clock, alert=alerts.append
        )
        admin = WebhookAdmin(WebhookRegistrations(harness.store, clock=harness.clock), harness.secrets, vault)
        yield Operator(admin, vault, alerts)


async def deliver(harness: Harness, registration_id: str, secret: str, *, kind: str = "github") -> int:
    """The status of ``kind``'s sample, signed now with ``secret``, sent to ``registration_id``."""
    sample = SAMPLES[kind]
    signed = auth_headers(kind, sample.body, now=harness.clock(), secret=secret, delivery_id=uuid.uuid4().hex)
    return (await harness.post(registration_id, sample.body, {**sample.headers(), **signed})).status


async def offer(harness: Harness, registration_id: str, token: str) -> int:
    """The status of Notion's unsigned verification request carrying ``token``."""
    body = json.dumps({"verification_token": token}).encode()
    return (await harness.post(registration_id, body, {"Content-Type": "application/json"})).status


async def revalidated(harness: Harness, registration_id: str) -> None:
    """Past the registration cache's revalidation interval: a lookup starts the check, which is let finish."""
    harness.clock.advance(REVALIDATE_SECONDS)
    await harness.registrations.find(registration_id)
    await harness.registrations.drain()


Rotate = Callable[[Operator, WebhookRegistration, str], Awaitable[object]]


async def webhooks_rotate(operator: Operator, registration: WebhookRegistration, secret: str) -> object:
    return await operator.admin.rotate(registration.id, secret)


async def credentials_rotate(operator: Operator, registration: WebhookRegistration, secret: str) -> object:
    return await operator.credentials_rotate(registration, secret)


ROTATIONS = pytest.mark.parametrize("rotate", [webhooks_rotate, credentials_rotate], ids=["webhooks", "credentials"])


# ---------------------------------------------------------------- add


async def test_add_makes_the_secret_a_credential_whose_metadata_holds_no_value(
    harness: Harness, operator: Operator
) -> None:
    registration = await operator.admin.add(GITHUB, Provider.GITHUB, secret=FIRST, settings={})

    credential = await operator.credential(registration)
    assert (credential.id, credential.credential_type) == (registration.id, "webhook_secret")
    assert (credential.connection_id, credential.provider) == (GITHUB.id, Provider.GITHUB)
    assert registration.secret_name is None
    stored = json.dumps([await harness.store.query(c, Query()) for c in ("credentials", "webhooks")], default=str)
    assert FIRST not in stored
    assert json.loads((await harness.secrets.get_secret(credential.secret_name)).reveal())["secret"] == FIRST
    assert await deliver(harness, registration.id, FIRST) == 202


async def test_a_notion_registration_gets_its_credential_when_an_operator_confirms_the_token(
    harness: Harness, operator: Operator
) -> None:
    registration = await operator.admin.add(NOTION, Provider.NOTION, secret=None, settings={})
    assert registration.credential_id is None
    token, renewed = SECRETS["notion"], "secret_renewedNotionToken5Hx2Qw8"
    assert await offer(harness, registration.id, token) == 200

    confirmed = await operator.admin.confirm(registration.id, fingerprint(token))

    credential = await operator.credential(confirmed)
    assert (credential.id, credential.credential_type, credential.version) == (registration.id, "webhook_secret", 1)
    assert confirmed.verification is VerificationState.CONFIRMED
    await revalidated(harness, registration.id)
    assert await deliver(harness, registration.id, token, kind="notion") == 200

    await operator.admin.reopen(registration.id)
    await revalidated(harness, registration.id)
    assert await offer(harness, registration.id, renewed) == 200
    again = await operator.admin.confirm(registration.id, fingerprint(renewed))

    assert (await operator.credential(again)).version == 2
    await revalidated(harness, registration.id)
    assert await deliver(harness, registration.id, renewed, kind="notion") == 200
    assert await deliver(harness, registration.id, token, kind="notion") == 200  # within the grace


# ---------------------------------------------------------------- rotation and its grace


@ROTATIONS
async def test_after_a_rotation_both_secrets_verify_for_the_grace_then_only_the_new_one(
    harness: Harness, operator: Operator, rotate: Rotate
) -> None:
    registration = await operator.admin.add(GITHUB, Provider.GITHUB, secret=FIRST, settings={})
    assert await deliver(harness, registration.id, FIRST) == 202  # the receiver caches its verifier
    rotated_at = harness.clock()

    await rotate(operator, registration, ROTATED)

    assert await deliver(harness, registration.id, ROTATED) == 401  # cached: no read per delivery
    await revalidated(harness, registration.id)
    for since_rotation, old_status in ((REVALIDATE_SECONDS, 202), (GRACE - 1, 202), (GRACE + 1, 401)):
        harness.clock.value = rotated_at + since_rotation
        statuses = [await deliver(harness, registration.id, secret) for secret in (FIRST, ROTATED)]
        assert statuses == [old_status, 202], f"{since_rotation} s after the rotation"
    assert (await operator.credential(registration)).version == 2


async def test_a_second_rotation_within_the_grace_keeps_only_the_one_before_it(
    harness: Harness, operator: Operator
) -> None:
    registration = await operator.admin.add(GITHUB, Provider.GITHUB, secret=FIRST, settings={})
    await operator.admin.rotate(registration.id, ROTATED)
    harness.clock.advance(3600)
    await operator.admin.rotate(registration.id, "gh-third-secret-Lr52Xc")

    statuses = [await deliver(harness, registration.id, s) for s in (FIRST, ROTATED, "gh-third-secret-Lr52Xc")]

    assert statuses == [401, 202, 202]


@ROTATIONS
async def test_a_secret_that_could_never_verify_is_refused_and_changes_nothing(
    harness: Harness, operator: Operator, rotate: Rotate
) -> None:
    registration = await operator.admin.add(GITHUB, Provider.STANDARD, secret=STANDARD_SECRET, settings={})

    with pytest.raises(ConfigError, match="not valid base64"):
        await rotate(operator, registration, NOT_BASE64)

    credential = await operator.credential(registration)
    assert credential.version == 1
    assert len(await harness.secrets.list_versions(credential.secret_name)) == 1
    assert await deliver(harness, registration.id, STANDARD_SECRET, kind="standard") == 202


async def test_a_built_verifier_costs_no_store_or_secret_store_read_per_delivery(
    harness: Harness, operator: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    registration = await operator.admin.add(GITHUB, Provider.GITHUB, secret=FIRST, settings={})
    await operator.admin.rotate(registration.id, ROTATED)  # two secrets to read: the new and, in its grace, the old
    assert await deliver(harness, registration.id, FIRST) == 202
    reads: list[str] = []
    for target, name in ((harness.store, "read"), (harness.secrets, "get_secret"), (harness.secrets, "list_versions")):
        original = getattr(target, name)

        async def counted(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            reads.append(_name)
            return await _original(*args, **kwargs)

        monkeypatch.setattr(target, name, counted)

    statuses = [await deliver(harness, registration.id, secret) for secret in (FIRST, ROTATED) * 10]

    assert set(statuses) == {202}
    assert reads == []


# ---------------------------------------------------------------- stores from before: a secret name only


async def test_an_old_style_registration_keeps_verifying_and_gets_its_own_credential_when_rotated(
    harness: Harness, operator: Operator
) -> None:
    shared = "tenant-1--conn-github--webhook-secret"
    await harness.secrets.set_secret(shared, FIRST)
    for registration_id in ("old-1", "old-2"):
        await harness.registrations.add(
            WebhookRegistration(
                id=registration_id,
                tenant_id=TENANT,
                provider=Provider.GITHUB,
                connection_id=GITHUB.id,
                integration_id="github",
                secret_name=shared,
            )
        )
    assert [await deliver(harness, r, FIRST) for r in ("old-1", "old-2")] == [202, 202]

    rotated = await operator.admin.rotate("old-1", ROTATED)

    await revalidated(harness, "old-1")
    migrated = await harness.registrations.get("old-1")
    assert (migrated.credential_id, migrated.secret_name, rotated.version) == ("old-1", None, 2)
    assert [await deliver(harness, "old-1", s) for s in (ROTATED, FIRST)] == [202, 202]  # the old one: in the grace
    assert [await deliver(harness, "old-2", s) for s in (FIRST, ROTATED)] == [202, 401]
    assert (await harness.secrets.get_secret(shared)).reveal() == FIRST  # still old-2's

    await operator.admin.rotate("old-2", "gh-old-2-own-secret-Ty64")

    with pytest.raises(NotFound):
        await harness.secrets.get_secret(shared)  # nobody names it any more


async def test_a_migration_stopped_after_making_the_credential_is_finished_by_the_next_rotation(
    harness: Harness, operator: Operator
) -> None:
    await harness.secrets.set_secret("old-secret-name", FIRST)
    old = await harness.registrations.add(
        WebhookRegistration(
            id="old-1",
            tenant_id=TENANT,
            provider=Provider.GITHUB,
            connection_id=GITHUB.id,
            integration_id="github",
            secret_name="old-secret-name",
        )
    )
    await operator.vault.add_webhook_secret(old, WebhookSecret(secret=FIRST))  # then the process died

    await operator.admin.rotate("old-1", ROTATED)

    await revalidated(harness, "old-1")
    assert (await harness.registrations.get("old-1")).credential_id == "old-1"
    assert [await deliver(harness, "old-1", s) for s in (ROTATED, FIRST)] == [202, 202]


# ---------------------------------------------------------------- removal


async def test_removal_leaves_no_credential_or_secret_behind(harness: Harness, operator: Operator) -> None:
    first = await operator.admin.add(GITHUB, Provider.GITHUB, secret=FIRST, settings={})
    second = await operator.admin.add(GITHUB, Provider.GITHUB, secret="gh-second-secret-Mn40", settings={})
    await operator.admin.rotate(first.id, ROTATED)
    names = [(await operator.credential(r)).secret_name for r in (first, second)]

    await operator.admin.remove(first.id)
    await revalidated(harness, second.id)
    assert await deliver(harness, second.id, "gh-second-secret-Mn40") == 202
    await operator.admin.remove(second.id)

    assert (await harness.store.query("credentials", Query())).items == []
    for name in names:
        with pytest.raises(NotFound):
            await harness.secrets.list_versions(name)


async def test_a_credential_that_signs_a_registration_is_not_removed_from_under_it(
    harness: Harness, operator: Operator
) -> None:
    registration = await operator.admin.add(GITHUB, Provider.GITHUB, secret=FIRST, settings={})

    with pytest.raises(PreconditionFailed, match=registration.id):
        await operator.vault.remove(await operator.credential(registration))

    assert await deliver(harness, registration.id, FIRST) == 202


async def test_a_webhook_secret_is_not_a_connections_credential(operator: Operator) -> None:
    with pytest.raises(ConfigError, match="webhooks add"):
        await operator.vault.add(TENANT, GITHUB.id, WebhookSecret(secret=FIRST))


# ---------------------------------------------------------------- rotation policy


async def test_the_refresher_warns_before_a_webhook_secrets_rotation_is_due_and_a_rotation_restarts_it(
    harness: Harness, operator: Operator
) -> None:
    policy = RotationPolicy(interval_days=30, warn_before_days=7)
    registration = await operator.admin.add(GITHUB, Provider.GITHUB, secret=FIRST, settings={}, rotation=policy)
    refresher = TokenRefresher(
        harness.store, operator.vault, threshold=timedelta(hours=7), clock=harness.clock, alert=operator.alerts.append
    )

    harness.clock.advance(22 * 86400)
    assert await refresher.run() == RefreshReport()
    harness.clock.advance(1 * 86400)
    assert await refresher.run() == RefreshReport(warned=1)
    assert await refresher.run() == RefreshReport()
    (alert,) = operator.alerts
    assert (alert.kind, alert.credential_id) == (CredentialAlertKind.DEADLINE, registration.id)
    assert f"credentials rotate {registration.id}" in alert.detail

    await operator.admin.rotate(registration.id, ROTATED)
    harness.clock.advance(22 * 86400)
    assert await refresher.run() == RefreshReport()
    harness.clock.advance(1 * 86400)
    assert await refresher.run() == RefreshReport(warned=1)
