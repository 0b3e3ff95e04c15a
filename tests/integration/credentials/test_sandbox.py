"""The stand-in provider over HTTP: JWT bearer grants (Salesforce, Google service accounts), its controls and call
counts, and each dialect's error shape."""

from __future__ import annotations

import httpx
import pytest

from castiel.clock import now_utc
from castiel.credentials.types import access_token, parse_credential
from castiel.errors import InvalidGrant
from castiel.models import CredentialStatus, Provider
from tests.integration.credentials.conftest import CLIENT_ID, CLIENT_SECRET, Backends, StandIn, add_user_grant
from tests.unit.credentials.keys import private_key_pem, public_key_pem


async def test_salesforce_jwt_bearer_against_the_stand_in(backends: Backends, oauth: StandIn) -> None:
    oauth.sandbox.register_jwt_issuer("3MVG9consumer", public_key_pem())
    connection = await backends.connection(Provider.SALESFORCE)
    vault = backends.vault()
    value = parse_credential(
        "jwt_bearer",
        {"client_id": "3MVG9consumer", "username": "ops@acme.test", "private_key": private_key_pem(),
         "token_url": oauth.token_url(Provider.SALESFORCE)},
    )  # fmt: skip
    metadata = await vault.add("t1", connection.id, value)

    result = await vault.refresh("t1", metadata.id, seen_version=None, trigger="test")

    (grant,) = oauth.sandbox.grants.values()
    assert access_token(result.current.value) == grant.access_token
    assert await vault.api_root_for_connection(await backends.read_connection()) == f"{oauth.url}/salesforce"


async def test_a_google_service_account_against_the_stand_in(backends: Backends, oauth: StandIn) -> None:
    oauth.sandbox.register_jwt_issuer("sa@p.iam.gserviceaccount.com", public_key_pem())
    await backends.connection(Provider.GOOGLE)
    vault = backends.vault()
    value = parse_credential(
        "service_account_key",
        {"client_email": "sa@p.iam.gserviceaccount.com", "private_key": private_key_pem(),
         "token_uri": oauth.token_url(Provider.GOOGLE), "scope": "https://www.googleapis.com/auth/calendar"},
    )  # fmt: skip
    metadata = await vault.add("t1", "conn-1", value)

    result = await vault.refresh("t1", metadata.id, seen_version=None, trigger="test")

    (grant,) = oauth.sandbox.grants.values()
    assert grant.scope == "https://www.googleapis.com/auth/calendar"
    assert result.current.metadata.expires_at is not None
    assert result.current.metadata.expires_at > now_utc()


async def test_an_assertion_from_an_unknown_issuer_is_a_dead_grant(backends: Backends, oauth: StandIn) -> None:
    await backends.connection(Provider.SALESFORCE)
    vault = backends.vault()
    value = parse_credential(
        "jwt_bearer",
        {"client_id": "unknown", "username": "u", "private_key": private_key_pem(),
         "token_url": oauth.token_url(Provider.SALESFORCE)},
    )  # fmt: skip
    metadata = await vault.add("t1", "conn-1", value)
    with pytest.raises(InvalidGrant, match="invalid_grant"):
        await vault.refresh("t1", metadata.id, seen_version=None, trigger="test")
    assert (await vault.records.read("t1", metadata.id)).status is CredentialStatus.NEEDS_REAUTH


@pytest.mark.parametrize(
    ("provider", "status", "body"),
    [
        (Provider.SLACK, 200, {"ok": False, "error": "invalid_refresh_token"}),
        (Provider.GITHUB, 200, {"error": "bad_refresh_token"}),
        (Provider.GOOGLE, 400, {"error": "invalid_grant"}),
        (Provider.NOTION, 400, {"error": "invalid_grant"}),
        (Provider.SALESFORCE, 400, {"error": "invalid_grant"}),
    ],
)
async def test_controls_and_call_counts_over_http_and_each_dialects_refusal(
    backends: Backends, oauth: StandIn, provider: Provider, status: int, body: dict[str, object]
) -> None:
    grant = oauth.sandbox.issue(provider.value, CLIENT_ID)
    async with httpx.AsyncClient(base_url=oauth.url) as client:
        control = await client.post("/_sandbox/oauth/controls", json={"grant": grant.id, "refuse": "invalid_grant"})
        assert control.status_code == 200
        form = {"grant_type": "refresh_token", "refresh_token": str(grant.refresh_token)}
        auth = (CLIENT_ID, CLIENT_SECRET)
        refused = await (
            client.post(oauth.token_url(provider), json=form, auth=auth)
            if provider is Provider.NOTION
            else client.post(oauth.token_url(provider), data=form, auth=auth)
        )
        calls = (await client.get("/_sandbox/oauth/calls")).json()
        unknown = await client.post("/_sandbox/oauth/controls", json={"grant": "nope", "refuse": "x"})
    assert refused.status_code == status
    assert body.items() <= refused.json().items()
    assert calls == {grant.id: 1}
    assert unknown.status_code == 404


async def test_a_rotated_refresh_token_is_dead_after_use(backends: Backends, oauth: StandIn) -> None:
    await backends.connection(Provider.GITHUB)
    vault = backends.vault()
    _, grant = await add_user_grant(vault, oauth, Provider.GITHUB, expires_at=None)
    used = grant.refresh_token
    await vault.refresh("t1", "cred-1", seen_version=None, trigger="test")
    async with httpx.AsyncClient() as client:
        reuse = await client.post(
            oauth.token_url(Provider.GITHUB),
            data={"grant_type": "refresh_token", "refresh_token": str(used), "client_id": CLIENT_ID,
                  "client_secret": CLIENT_SECRET},
            headers={"Accept": "application/json"},
        )  # fmt: skip
    assert reuse.json()["error"] == "bad_refresh_token"
