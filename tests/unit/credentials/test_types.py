"""The nine credential types: parsing, the stored form, and secrets that never show in a repr, dump or error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from castiel.credentials.records import secret_name
from castiel.credentials.types import (
    CREDENTIAL_TYPES,
    SINGLE_VALUE_FIELDS,
    ClientCertificate,
    OAuth2AuthorizationCode,
    ServiceAccountKey,
    from_secret_json,
    is_refreshable,
    parse_credential,
    scrub,
    secret_strings,
    to_secret_json,
)
from castiel.errors import ConfigError
from tests.unit.credentials.keys import certificate_pem, private_key_pem

SECRET = "zq-SECRET-7f3a9c"

EXAMPLES: dict[str, dict[str, Any]] = {
    "oauth2_authorization_code": {
        "access_token": SECRET + "-at",
        "refresh_token": SECRET + "-rt",
        "expires_at": "2026-01-01T00:00:00Z",
        "client_id": "client-1",
        "client_secret": SECRET + "-cs",
        "scope": "read write",
        "token_url": "https://example.test/token",
    },
    "oauth2_client_credentials": {"client_id": "client-1", "client_secret": SECRET},
    "jwt_bearer": {"client_id": "consumer-key", "username": "ops@example.com", "private_key": private_key_pem()},
    "service_account_key": {
        "client_email": "sa@p.iam.gserviceaccount.com",
        "private_key": private_key_pem(),
        "scope": "drive",
    },
    "api_key": {"api_key": SECRET},
    "bearer_token": {"token": SECRET},
    "basic_auth": {"username": "ops", "password": SECRET},
    "client_certificate": {"certificate": certificate_pem(datetime(2099, 1, 1, tzinfo=UTC)), "private_key": SECRET},
    "webhook_secret": {"secret": SECRET},
}


def test_there_are_exactly_nine_types_and_an_example_of_each() -> None:
    assert len(CREDENTIAL_TYPES) == 9
    assert set(EXAMPLES) == set(CREDENTIAL_TYPES)


@pytest.mark.parametrize("credential_type", CREDENTIAL_TYPES)
def test_the_stored_form_round_trips_and_keeps_every_secret(credential_type: str) -> None:
    value = parse_credential(credential_type, EXAMPLES[credential_type])
    stored = to_secret_json(value)
    assert from_secret_json(stored) == value
    fields = json.loads(stored)
    assert fields["credential_type"] == credential_type
    assert set(secret_strings(value)) <= set(fields.values())


@pytest.mark.parametrize("credential_type", CREDENTIAL_TYPES)
def test_no_secret_shows_in_a_repr_str_dump_or_json_dump(credential_type: str) -> None:
    value = parse_credential(credential_type, EXAMPLES[credential_type])
    assert secret_strings(value), "every type has at least one secret field"
    shown = [repr(value), str(value), str(value.model_dump()), value.model_dump_json(), f"{value!r}"]
    for text in shown:
        for secret in secret_strings(value):
            assert secret not in text


@pytest.mark.parametrize(
    ("credential_type", "fields", "expected"),
    [
        ("basic_auth", {"username": "u", "pasword": SECRET}, "password: Field required; pasword: Extra inputs"),
        ("oauth2_authorization_code", {"access_token": 5}, "access_token: Input should be a valid string"),
        ("oauth2_authorization_code", {"access_token": SECRET, "expires_at": "soon"}, "expires_at:"),
        ("oauth2_authorization_code", {"access_token": SECRET, "expires_at": "2026-01-01T00:00:00"}, "timezone-aware"),
        ("jwt_bearer", {"client_id": "c", "username": "u", "private_key": SECRET}, "not an unencrypted PEM key"),
        ("client_certificate", {"certificate": SECRET, "private_key": "k"}, "not a PEM X.509 certificate"),
    ],
)
def test_invalid_fields_are_named_and_never_quoted(credential_type: str, fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        parse_credential(credential_type, fields)
    assert SECRET not in str(caught.value)


def test_an_unknown_type_lists_the_nine() -> None:
    with pytest.raises(ConfigError, match="oauth2_authorization_code, oauth2_client_credentials, jwt_bearer"):
        parse_credential("password", {})


def test_a_stored_value_that_does_not_parse_is_a_config_error_without_its_text() -> None:
    with pytest.raises(ConfigError) as caught:
        from_secret_json(json.dumps({"credential_type": "api_key", "apikey": SECRET}))
    assert SECRET not in str(caught.value)


def test_a_google_key_file_is_taken_as_downloaded() -> None:
    key_file = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "kid-1",
        "private_key": private_key_pem(),
        "client_email": "sa@p.iam.gserviceaccount.com",
        "client_id": "1234",
        "token_uri": "https://oauth2.googleapis.com/token",
        "universe_domain": "googleapis.com",
        "scope": "https://www.googleapis.com/auth/drive.readonly",
    }
    value = parse_credential("service_account_key", key_file)
    assert isinstance(value, ServiceAccountKey)
    assert value.token_url == "https://oauth2.googleapis.com/token"
    assert value.private_key_id == "kid-1"


def test_a_client_certificate_expires_when_its_certificate_does() -> None:
    not_after = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    value = parse_credential("client_certificate", {"certificate": certificate_pem(not_after), "private_key": "k"})
    assert isinstance(value, ClientCertificate)
    assert value.expires_at == not_after


def test_single_value_types_name_the_field_a_value_fills() -> None:
    for credential_type, field in SINGLE_VALUE_FIELDS.items():
        value = parse_credential(credential_type, {field: SECRET})
        assert secret_strings(value) == [SECRET]


@pytest.mark.parametrize(
    ("credential_type", "fields", "refreshable"),
    [
        ("oauth2_authorization_code", {"access_token": "a", "refresh_token": "r"}, True),
        ("oauth2_authorization_code", {"access_token": "a"}, False),
        ("oauth2_client_credentials", EXAMPLES["oauth2_client_credentials"], True),
        ("jwt_bearer", EXAMPLES["jwt_bearer"], True),
        ("api_key", EXAMPLES["api_key"], False),
        ("client_certificate", EXAMPLES["client_certificate"], False),
    ],
)
def test_refreshable_means_a_token_endpoint_can_renew_it(
    credential_type: str, fields: dict[str, Any], refreshable: bool
) -> None:
    assert is_refreshable(parse_credential(credential_type, fields)) is refreshable


def test_scrub_removes_each_secret_from_provider_text() -> None:
    value = parse_credential("oauth2_authorization_code", EXAMPLES["oauth2_authorization_code"])
    assert isinstance(value, OAuth2AuthorizationCode)
    text = f"token {SECRET}-rt is revoked"
    assert scrub(text, secret_strings(value)) == "token *** is revoked"


@pytest.mark.parametrize(
    ("tenant", "credential_id"),
    [("acme", "c-1"), ("Acme Corp/EU", "ÄÖ__weird"), ("t" * 300, "c" * 300), ("a", "b--c"), ("a--b", "c")],
)
def test_secret_names_are_key_vault_safe(tenant: str, credential_id: str) -> None:
    name = secret_name(tenant, credential_id)
    assert len(name) <= 127
    assert all(char.isascii() and (char.isalnum() or char == "-") for char in name)


def test_two_credentials_never_share_a_secret_name_even_when_their_readable_parts_do() -> None:
    names = {secret_name(tenant, cid) for tenant, cid in [("a", "b-c"), ("a-b", "c"), ("A", "b-c"), ("a", "B-C")]}
    assert len(names) == 4
    lowered = {name.lower() for name in names}
    assert len(lowered) == 4  # Key Vault compares names case-insensitively


@pytest.mark.parametrize(
    ("credential_type", "fields", "field"),
    [
        ("bearer_token", {"token": SECRET + "\r"}, "token"),
        ("bearer_token", {"token": SECRET + "\n"}, "token"),
        ("bearer_token", {"token": SECRET + "é"}, "token"),
        ("api_key", {"api_key": SECRET + "\r"}, "api_key"),
        ("api_key", {"api_key": SECRET, "prefix": "Key\t\x00"}, "prefix"),
        ("api_key", {"api_key": SECRET, "header": "X Api Key"}, "header"),
        ("api_key", {"api_key": SECRET, "header": "X-Key\r"}, "header"),
        ("basic_auth", {"username": "u\r", "password": SECRET}, "username"),
        ("basic_auth", {"username": "u", "password": SECRET + "\r"}, "password"),
    ],
)
def test_a_value_that_cannot_go_into_a_header_is_refused_naming_the_field_not_the_value(
    credential_type: str, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError, match=f"invalid {credential_type}: {field}: ") as caught:
        parse_credential(credential_type, fields)
    assert SECRET not in str(caught.value)
    assert "\r" not in str(caught.value)


@pytest.mark.parametrize(
    ("credential_type", "fields", "blank"),
    [
        ("api_key", {"api_key": ""}, ["api_key"]),
        ("api_key", {"api_key": " \t"}, ["api_key"]),
        ("bearer_token", {"token": " "}, ["token"]),
        ("basic_auth", {"username": "", "password": ""}, ["username", "password"]),
        ("basic_auth", {"username": "u", "password": "  "}, ["password"]),
        ("oauth2_client_credentials", {"client_id": "c", "client_secret": ""}, ["client_secret"]),
    ],
)
def test_an_empty_or_blank_value_is_refused(credential_type: str, fields: dict[str, Any], blank: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_credential(credential_type, fields)
    for name in blank:
        assert f"{name}: Value error, must not be empty or blank" in str(caught.value)


def test_printable_header_values_basic_auth_text_and_a_custom_header_are_accepted() -> None:
    assert parse_credential("api_key", {"api_key": "k-1", "header": "X-Api-Key", "prefix": "Key "})
    assert parse_credential("basic_auth", {"username": "ünïcode", "password": "pä ss:word"})


def test_a_service_account_key_without_a_scope_is_refused() -> None:
    key_file = {"client_email": "sa@p.iam.gserviceaccount.com", "private_key": private_key_pem()}
    with pytest.raises(ConfigError, match="invalid service_account_key: scope: required"):
        parse_credential("service_account_key", key_file)
    with pytest.raises(ConfigError, match="scope: required"):
        parse_credential("service_account_key", {**key_file, "scope": " "})
