"""A connection and its credential stay in step: a credential that went missing is a permanent error naming both,
and a second credential for a connection is refused rather than leaving the first one claiming it."""

from __future__ import annotations

import pytest

from castiel.credentials.records import list_credentials
from castiel.credentials.types import parse_credential
from castiel.errors import PermanentError, PreconditionFailed
from castiel.models import Connection, Provider
from tests.integration.credentials.conftest import Backends


async def test_a_connection_naming_a_missing_credential_is_a_permanent_error_naming_both(backends: Backends) -> None:
    connection = await backends.connection(Provider.GITHUB)
    dangling = Connection.model_validate(
        await backends.store.replace(
            Connection.container, connection.model_copy(update={"credential_id": "nosuchcred"}).to_doc()
        )
    )
    with pytest.raises(PermanentError, match="connection conn-1 of tenant t1 names credential nosuchcred") as e:
        await backends.vault().auth_for_connection(dangling)
    assert "castiel credentials add" in str(e.value)


async def test_a_credential_whose_value_is_gone_is_permanent_too(backends: Backends) -> None:
    await backends.connection(Provider.GITHUB)
    vault = backends.vault()
    await vault.add("t1", "conn-1", parse_credential("bearer_token", {"token": "t"}), credential_id="b1")
    await backends.secrets.delete_secret((await vault.records.read("t1", "b1")).secret_name)
    with pytest.raises(PermanentError, match="names credential b1, but the value of credential b1 is missing"):
        await vault.auth_for_connection(await backends.read_connection())


async def test_a_second_credential_for_a_connection_is_refused_and_the_first_stays(backends: Backends) -> None:
    await backends.connection(Provider.GITHUB)
    vault = backends.vault()
    await vault.add("t1", "conn-1", parse_credential("bearer_token", {"token": "t"}), credential_id="b1")
    with pytest.raises(PreconditionFailed, match="connection conn-1 of tenant t1 already has credential b1") as e:
        await vault.add("t1", "conn-1", parse_credential("api_key", {"api_key": "k"}), credential_id="k1", sole=True)
    assert "castiel credentials rotate b1" in str(e.value)
    assert (await backends.read_connection()).credential_id == "b1"
    assert [c.id for c in await list_credentials(backends.store, "t1")] == ["b1"]


async def test_connect_with_another_type_replaces_the_connections_credential_and_removes_the_old_one(
    backends: Backends,
) -> None:
    await backends.connection(Provider.GITHUB)
    vault = backends.vault()
    await vault.add("t1", "conn-1", parse_credential("api_key", {"api_key": "k"}), credential_id="k1")
    grant = parse_credential("oauth2_authorization_code", {"access_token": "a", "refresh_token": "r"})
    stored = await vault.reauthorize("t1", "conn-1", grant)
    assert (await backends.read_connection()).credential_id == stored.id
    assert [c.id for c in await list_credentials(backends.store, "t1")] == [stored.id]
    assert "k1" not in (backends.data_dir / "secrets.json").read_text()
