"""Key Vault's rules for a secret's name and attributes, enforced by every ``SecretStore`` backend.

The embedded store applies the same rules as Key Vault so that code which works locally does not first fail in
Azure: names of 1-127 characters of ``[0-9A-Za-z-]``, compared case-insensitively; values up to 25 KiB; a content
type up to 255 characters; at most 15 tags (names up to 512, values up to 256 characters); aware datetimes.
Errors name the rule that was broken and never quote a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from castiel.errors import ConfigError

MAX_NAME_LENGTH = 127
MAX_VALUE_BYTES = 25 * 1024
MAX_CONTENT_TYPE_LENGTH = 255
MAX_TAGS = 15
MAX_TAG_NAME_LENGTH = 512
MAX_TAG_VALUE_LENGTH = 256

_NAME = re.compile(rf"[0-9A-Za-z-]{{1,{MAX_NAME_LENGTH}}}")
# Bad names are echoed for diagnosis, but never more than this: a caller may have passed a value by mistake.
_ECHO_LIMIT = 40


def check_name(name: str) -> str:
    """Return ``name`` if Key Vault accepts it; raise ``ConfigError`` saying why not."""
    if _NAME.fullmatch(name) is None:
        shown = name if len(name) <= _ECHO_LIMIT else f"{name[:_ECHO_LIMIT]}... ({len(name)} characters)"
        raise ConfigError(
            f"invalid secret name {shown!r}: Key Vault names are 1-{MAX_NAME_LENGTH} characters"
            " of 0-9, a-z, A-Z and '-'"
        )
    return name


def name_key(name: str) -> str:
    """The identity of a secret name: Key Vault compares object names case-insensitively."""
    return check_name(name).lower()


def check_secret(
    name: str,
    value: str,
    *,
    content_type: str | None,
    expires_on: datetime | None,
    tags: Mapping[str, str] | None,
) -> None:
    """Raise ``ConfigError`` unless Key Vault would accept this new version of secret ``name``."""
    check_name(name)
    size = len(value.encode())
    if size > MAX_VALUE_BYTES:
        raise ConfigError(f"secret {name!r}: value is {size} bytes, Key Vault allows at most {MAX_VALUE_BYTES}")
    if content_type is not None and len(content_type) > MAX_CONTENT_TYPE_LENGTH:
        raise ConfigError(f"secret {name!r}: content type longer than {MAX_CONTENT_TYPE_LENGTH} characters")
    if expires_on is not None and expires_on.utcoffset() is None:
        raise ConfigError(f"secret {name!r}: expires_on must be a timezone-aware datetime")
    if tags:
        _check_tags(name, tags)


def _check_tags(name: str, tags: Mapping[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise ConfigError(f"secret {name!r}: {len(tags)} tags, Key Vault allows at most {MAX_TAGS}")
    for tag, text in tags.items():
        if not 0 < len(tag) <= MAX_TAG_NAME_LENGTH:
            raise ConfigError(f"secret {name!r}: tag names are 1-{MAX_TAG_NAME_LENGTH} characters")
        if len(text) > MAX_TAG_VALUE_LENGTH:
            raise ConfigError(f"secret {name!r}: tag {tag!r} is longer than {MAX_TAG_VALUE_LENGTH} characters")
