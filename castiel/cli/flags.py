"""Flag values checked while the command line is parsed, so a bad one is a usage error (exit 2) and changes nothing.

Ids follow the rule of ``castiel.models.ids`` (they become Cosmos DB ids and parts of Key Vault secret names).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import typer

from castiel.models.ids import ID_RULE, is_valid_id

__all__ = ["ID_RULE", "check_http_url", "check_id", "check_optional_id"]


def check_id(value: str) -> str:
    """``value`` if it is a safe id (see the module docstring), else ``typer.BadParameter`` saying the rule."""
    if not is_valid_id(value):
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
