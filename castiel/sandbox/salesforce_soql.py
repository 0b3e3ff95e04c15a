"""The SOQL the Salesforce stand-in understands: a field list from one sObject, after a point in
(``SystemModstamp``, ``Id``) order, in that order, optionally limited.

Exactly the shapes an incremental reader sends::

    SELECT f1, f2 FROM Account
        [WHERE SystemModstamp > t | SystemModstamp >= t
             | SystemModstamp > t OR (SystemModstamp = t AND Id > 'id')]
        [ORDER BY SystemModstamp [ASC], Id [ASC]] [LIMIT n]

Anything else is a ``MALFORMED_QUERY``, which is what Salesforce says of a query it cannot parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from castiel.sandbox.dataset import Key

_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<sobject>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER\s+BY\s+(?P<order>.+?))?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_SINCE = re.compile(r"^SystemModstamp\s*(?P<op>>=|>)\s*(?P<time>\S+)$", re.IGNORECASE)
_KEYSET = re.compile(
    r"^SystemModstamp\s*>\s*(?P<time>\S+)\s+OR\s+\(\s*SystemModstamp\s*=\s*(?P<same>\S+)\s+AND\s+"
    r"Id\s*>\s*'(?P<id>[A-Za-z0-9]{15,18})'\s*\)$",
    re.IGNORECASE,
)
_ORDER = re.compile(r"^SystemModstamp(?:\s+ASC)?\s*,\s*Id(?:\s+ASC)?$", re.IGNORECASE)
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

BEFORE_ANY_ID = ""
AFTER_EVERY_ID = "~"
"""Id bounds: every Salesforce Id sorts after ``""`` and before ``"~"``."""


class SoqlError(ValueError):
    """A query the stand-in cannot run; ``code`` is Salesforce's ``errorCode`` for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Soql:
    """A parsed query: fields, sObject, records strictly after ``after`` (all when None), at most ``limit``."""

    fields: tuple[str, ...]
    sobject: str
    after: Key | None
    limit: int | None


def millis(literal: str) -> int:
    """A SOQL datetime literal as epoch milliseconds."""
    try:
        return round(datetime.fromisoformat(literal).timestamp() * 1000)
    except ValueError:
        raise SoqlError("MALFORMED_QUERY", f"invalid datetime literal: {literal}") from None


def parse(text: str) -> Soql:
    """Parse ``text``, or raise ``SoqlError``."""
    match = _QUERY.match(text)
    if match is None:
        raise SoqlError("MALFORMED_QUERY", f"unexpected token in query: {text[:80]}")
    fields = tuple(name.strip() for name in match["fields"].split(","))
    if not all(_FIELD.match(name) for name in fields):
        raise SoqlError("MALFORMED_QUERY", f"the sandbox selects plain field names only, not {match['fields']}")
    if match["order"] is not None and not _ORDER.match(match["order"].strip()):
        raise SoqlError("MALFORMED_QUERY", "the sandbox orders by SystemModstamp, Id only")
    limit = int(match["limit"]) if match["limit"] is not None else None
    return Soql(fields, match["sobject"], _after(match["where"]), limit)


def _after(where: str | None) -> Key | None:
    if where is None:
        return None
    condition = where.strip()
    keyset = _KEYSET.match(condition)
    if keyset is not None:
        if millis(keyset["time"]) != millis(keyset["same"]):
            raise SoqlError("MALFORMED_QUERY", "the two SystemModstamp values of a keyset condition must be equal")
        return (millis(keyset["time"]), keyset["id"])
    since = _SINCE.match(condition)
    if since is not None:
        return (millis(since["time"]), BEFORE_ANY_ID if since["op"] == ">=" else AFTER_EVERY_ID)
    raise SoqlError("MALFORMED_QUERY", f"the sandbox filters on SystemModstamp (and Id) only, not: {condition[:80]}")
