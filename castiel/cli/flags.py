"""Flag values checked while the command line is parsed, so a bad one is a usage error (exit 2) and changes nothing.

Ids: tenant, connection and task ids become Cosmos DB document ids and parts of Key Vault secret names
(``{tenant}--{connection}--…``). Key Vault allows only letters, digits and ``-`` in a name, compares names
case-insensitively, and we join parts with ``--``; so an id is 1-36 lowercase letters, digits and single hyphens
between them (a UUID fits). Two tenants can then never share a secret name, and every id is a valid Cosmos id.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import typer

MAX_ID_LENGTH = 36
ID_RULE = f"1-{MAX_ID_LENGTH} lowercase letters, digits and single hyphens between them"
_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def check_id(value: str) -> str:
    """``value`` if it is a safe id (see the module docstring), else ``typer.BadParameter`` saying the rule."""
    if len(value) > MAX_ID_LENGTH or _ID.fullmatch(value) is None:
        raise typer.BadParameter(f"{value!r} is not a valid id: ids are {ID_RULE}")
    return value


def check_optional_id(value: str) -> str:
    """Like ``check_id``, but empty is allowed (the command generates an id)."""
    return check_id(value) if value else value


def check_http_url(value: str) -> str:
    """``value`` if empty or an absolute http(s) URL with a host, else ``typer.BadParameter``."""
    if not value:
        return value
    try:
        parts = urlsplit(value)
        # .port raises ValueError for a port that is not a number up to 65535
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid or any(char.isspace() for char in value):
        raise typer.BadParameter(f"{value!r} is not an http(s) URL such as https://api.github.com")
    return value
