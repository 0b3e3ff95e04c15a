"""The nine credential types (DESIGN §8): one pydantic model each, a discriminated union on ``credential_type``.

A value holds every field of its type; it is stored whole, as JSON, in the ``SecretStore`` and nowhere else. Secret
fields are ``SecretStr``: a repr, a ``str()``, a log line or a plain ``model_dump`` shows ``**********``; only
``to_secret_json`` (the one way into the secret store) writes them out. Validation errors never quote the input.
The OAuth types use the RFC 6749 names: ``access_token``, ``refresh_token``, ``expires_at``, ``client_id``,
``client_secret``, ``scope``, and ``token_url`` (overrides the provider's token endpoint).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    SerializationInfo,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from castiel.errors import ConfigError
from castiel.models import UtcDateTime

_REVEAL = "reveal_secrets"


def _serialize_secret(value: SecretStr, info: SerializationInfo) -> str:
    if isinstance(info.context, Mapping) and info.context.get(_REVEAL):
        return value.get_secret_value()
    return str(value)


def _filled(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty or blank")
    return text


def _not_blank(value: SecretStr) -> SecretStr:
    _filled(value.get_secret_value())
    return value


Secret = Annotated[SecretStr, AfterValidator(_not_blank), PlainSerializer(_serialize_secret, return_type=str)]
"""A secret field: never blank; masked everywhere except in ``to_secret_json``."""

_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def is_sendable(text: str) -> bool:
    """Whether ``text`` can go into a header value as it is: printable ASCII."""
    return _HEADER_VALUE.fullmatch(text) is not None


def _sendable(text: str) -> str:
    # httpx sends a str header as ASCII and h11 refuses control characters: either would fail every request later,
    # with the value in the error, so it is refused here, before anything is stored.
    if not is_sendable(text):
        raise ValueError("must be printable ASCII (no control characters such as a trailing CR or newline)")
    return text


def _sendable_secret(value: SecretStr) -> SecretStr:
    _sendable(value.get_secret_value())
    return value


def _no_control(text: str) -> str:
    if _CONTROL.search(text):
        raise ValueError("must not contain control characters (such as a trailing CR or newline)")
    return text


def _no_control_secret(value: SecretStr) -> SecretStr:
    _no_control(value.get_secret_value())
    return value


def _header_name(name: str) -> str:
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError("is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)")
    return name


HeaderSecret = Annotated[Secret, AfterValidator(_sendable_secret)]
"""A secret sent as (part of) a header value as it is: printable ASCII."""
EncodedSecret = Annotated[Secret, AfterValidator(_no_control_secret)]
"""A secret sent encoded (HTTP Basic): any text but control characters, which no one means to send."""


class CredentialValue(BaseModel):
    """Base of the nine types: immutable, unknown fields refused (a typo is an error, not a silent loss)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, populate_by_name=True)

    expires_at: UtcDateTime | None = None


class OAuth2AuthorizationCode(CredentialValue):
    """A user's grant: access token, and the refresh token that renews it (when the provider issues one)."""

    credential_type: Literal["oauth2_authorization_code"] = "oauth2_authorization_code"
    access_token: Secret
    refresh_token: Secret | None = None
    refresh_token_expires_at: UtcDateTime | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    scope: str | None = None
    token_url: str | None = None
    instance_url: str | None = None


class OAuth2ClientCredentials(CredentialValue):
    """An application's own grant: the client id and secret buy a new access token when the last one expires."""

    credential_type: Literal["oauth2_client_credentials"] = "oauth2_client_credentials"
    client_id: str
    client_secret: Secret
    scope: str | None = None
    token_url: str | None = None
    access_token: Secret | None = None


class JwtBearer(CredentialValue):
    """Salesforce's JWT bearer flow: a private key signs an assertion for ``username``; no refresh token exists."""

    credential_type: Literal["jwt_bearer"] = "jwt_bearer"
    client_id: str
    username: str
    private_key: Secret
    audience: str = "https://login.salesforce.com"
    token_url: str | None = None
    access_token: Secret | None = None
    instance_url: str | None = None


class ServiceAccountKey(CredentialValue):
    """A Google service account's JSON key file; other fields of the file (``project_id`` …) are not kept."""

    model_config = ConfigDict(extra="ignore")

    credential_type: Literal["service_account_key"] = "service_account_key"
    client_email: str
    private_key: Secret
    private_key_id: str | None = None
    token_url: str | None = Field(default=None, validation_alias=AliasChoices("token_url", "token_uri"))
    scope: str | None = None
    subject: str | None = None
    """Domain-wide delegation: the user to act as."""
    access_token: Secret | None = None


class ApiKey(CredentialValue):
    """A static key sent in the provider's header (``header`` and ``prefix`` override the provider's default)."""

    credential_type: Literal["api_key"] = "api_key"
    api_key: HeaderSecret
    header: Annotated[str, AfterValidator(_header_name)] | None = None
    prefix: Annotated[str, AfterValidator(_sendable)] | None = None


class BearerToken(CredentialValue):
    """A static token sent as ``Authorization: Bearer``."""

    credential_type: Literal["bearer_token"] = "bearer_token"
    token: HeaderSecret


class BasicAuth(CredentialValue):
    """HTTP Basic: a user name and password."""

    credential_type: Literal["basic_auth"] = "basic_auth"
    username: Annotated[str, AfterValidator(_filled), AfterValidator(_no_control)]
    password: EncodedSecret


class ClientCertificate(CredentialValue):
    """Mutual TLS: a PEM certificate (public) and its private key; ``expires_at`` is read from the certificate."""

    credential_type: Literal["client_certificate"] = "client_certificate"
    certificate: str
    private_key: Secret
    password: Secret | None = None

    @model_validator(mode="before")
    @classmethod
    def _expiry_from_certificate(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("expires_at") is None and isinstance(data.get("certificate"), str):
            try:
                certificate = x509.load_pem_x509_certificate(data["certificate"].encode())
            except ValueError:
                raise ValueError("certificate is not a PEM X.509 certificate") from None
            return {**data, "expires_at": certificate.not_valid_after_utc}
        return data


class WebhookSecret(CredentialValue):
    """The secret a provider signs its webhook deliveries with (verifies incoming requests; never sent out)."""

    credential_type: Literal["webhook_secret"] = "webhook_secret"
    secret: Secret


Credential = Annotated[
    OAuth2AuthorizationCode
    | OAuth2ClientCredentials
    | JwtBearer
    | ServiceAccountKey
    | ApiKey
    | BearerToken
    | BasicAuth
    | ClientCertificate
    | WebhookSecret,
    Field(discriminator="credential_type"),
]
"""Any one of the nine credential types."""

_CREDENTIAL: TypeAdapter[Credential] = TypeAdapter(Credential)


class CredentialType(StrEnum):
    """The nine ``credential_type`` values."""

    OAUTH2_AUTHORIZATION_CODE = "oauth2_authorization_code"
    OAUTH2_CLIENT_CREDENTIALS = "oauth2_client_credentials"
    JWT_BEARER = "jwt_bearer"
    SERVICE_ACCOUNT_KEY = "service_account_key"
    API_KEY = "api_key"
    BEARER_TOKEN = "bearer_token"  # noqa: S105 - a type name, not a credential
    BASIC_AUTH = "basic_auth"
    CLIENT_CERTIFICATE = "client_certificate"
    WEBHOOK_SECRET = "webhook_secret"  # noqa: S105 - a type name, not a credential


CREDENTIAL_TYPES: tuple[str, ...] = tuple(member.value for member in CredentialType)

SINGLE_VALUE_FIELDS: dict[str, str] = {"api_key": "api_key", "bearer_token": "token", "webhook_secret": "secret"}
"""The types given by one ``--value``, and the field it fills."""

OAUTH_TYPES = frozenset({"oauth2_authorization_code", "oauth2_client_credentials", "jwt_bearer", "service_account_key"})
"""Types whose access token is minted by a token endpoint (and so can be refreshed)."""


def parse_credential(credential_type: str, fields: Mapping[str, Any]) -> Credential:
    """Validate ``fields`` as a ``credential_type``; ``ConfigError`` naming each bad field, never quoting a value."""
    if credential_type not in CREDENTIAL_TYPES:
        raise ConfigError(f"unknown credential type {credential_type!r}: one of {', '.join(CREDENTIAL_TYPES)}")
    try:
        value = _CREDENTIAL.validate_python({**fields, "credential_type": credential_type})
    except ValidationError as exc:
        raise ConfigError(f"invalid {credential_type}: {describe_errors(exc)}") from None
    if isinstance(value, JwtBearer | ServiceAccountKey):
        _check_private_key(value)
    if isinstance(value, ServiceAccountKey) and not (value.scope or "").strip():
        # Google's key file has no scope, and its token endpoint mints nothing without one: asked for here, once.
        raise ConfigError(
            "invalid service_account_key: scope: required (the scopes to ask for, space-separated,"
            " e.g. https://www.googleapis.com/auth/drive.readonly): add it to the key file's JSON"
        )
    return value


def describe_errors(exc: ValidationError) -> str:
    """Each validation problem as ``field: message``, without the input (it may be a secret)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        # A discriminated union puts the type's tag first in the location; the field is what helps (and may share
        # the tag's name: ``api_key``).
        loc = error["loc"][1:] if error["loc"] and error["loc"][0] in CREDENTIAL_TYPES else error["loc"]
        path = [str(part) for part in loc]
        problems.append(f"{'.'.join(path) or 'value'}: {error['msg']}")
    return "; ".join(problems)


def _check_private_key(value: JwtBearer | ServiceAccountKey) -> None:
    try:
        load_pem_private_key(value.private_key.get_secret_value().encode(), password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"invalid {value.credential_type}: private_key is not an unencrypted PEM key") from None


def to_secret_json(value: Credential) -> str:
    """The stored form: every field, secrets revealed. Only for ``SecretStore.set_secret``."""
    return value.model_dump_json(exclude_none=True, context={_REVEAL: True})


def from_secret_json(text: str) -> Credential:
    """Parse the stored form back; ``ConfigError`` (without the text) when it is not a credential."""
    try:
        return _CREDENTIAL.validate_json(text)
    except ValidationError as exc:
        raise ConfigError(f"stored credential does not parse: {describe_errors(exc)}") from None


def secret_strings(value: Credential) -> list[str]:
    """Every secret field's value, to scrub from text that came from outside (a provider's error description)."""
    found = [getattr(value, name) for name in type(value).model_fields]
    return [field.get_secret_value() for field in found if isinstance(field, SecretStr) and field.get_secret_value()]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def is_refreshable(value: Credential) -> bool:
    """True when a token endpoint can mint a new access token without a person."""
    if isinstance(value, OAuth2AuthorizationCode):
        return value.refresh_token is not None
    return value.credential_type in OAUTH_TYPES


def access_token(value: Credential) -> str | None:
    """The current access token of an OAuth type (None before the first one is minted)."""
    token = getattr(value, "access_token", None)
    return token.get_secret_value() if isinstance(token, SecretStr) else None


def is_expired(value: Credential, now: datetime, *, skew_seconds: float = 60.0) -> bool:
    """True when the value's known expiry is within ``skew_seconds`` of ``now`` (unknown expiry: not expired)."""
    return value.expires_at is not None and (value.expires_at - now).total_seconds() <= skew_seconds
