"""The id rule: tenant, connection, task and webhook registration ids are 1-36 lowercase letters, digits and single
hyphens between them (a UUID's hex fits).

They become Cosmos DB document ids and parts of Key Vault secret names (``{tenant}--{connection}--…``). Key Vault
allows only letters, digits and ``-`` in a name, compares names case-insensitively, and we join parts with ``--``; so
with this rule two tenants can never share a secret name, and every id is a valid Cosmos id. The CLI refuses other
ids (``castiel.cli.flags``); the webhook receiver answers a URL whose id breaks the rule without looking it up.
"""

from __future__ import annotations

import re

MAX_ID_LENGTH = 36
ID_RULE = f"1-{MAX_ID_LENGTH} lowercase letters, digits and single hyphens between them"
_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def is_valid_id(value: str) -> bool:
    """Whether ``value`` keeps the id rule."""
    return len(value) <= MAX_ID_LENGTH and _ID.fullmatch(value) is not None
