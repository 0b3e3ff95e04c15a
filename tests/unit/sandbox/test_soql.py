"""The SOQL the Salesforce stand-in understands, and the errors it gives for the rest."""

from __future__ import annotations

import pytest

from castiel.sandbox.salesforce_soql import AFTER_EVERY_ID, BEFORE_ANY_ID, Soql, SoqlError, parse

T = 1_735_693_200_000  # 2025-01-01T01:00:00Z


@pytest.mark.parametrize(
    ("query", "parsed"),
    [
        ("SELECT Id, Name FROM Account", Soql(("Id", "Name"), "Account", None, None)),
        (
            "select Id from Contact where SystemModstamp >= 2025-01-01T01:00:00.000Z "
            "order by SystemModstamp, Id limit 5",
            Soql(("Id",), "Contact", (T, BEFORE_ANY_ID), 5),
        ),
        (
            "SELECT Id FROM Account WHERE SystemModstamp > 2025-01-01T01:00:00Z ORDER BY SystemModstamp ASC, Id ASC",
            Soql(("Id",), "Account", (T, AFTER_EVERY_ID), None),
        ),
        (
            "SELECT Id FROM Account WHERE SystemModstamp > 2025-01-01T01:00:00.000Z OR "
            "(SystemModstamp = 2025-01-01T01:00:00.000Z AND Id > '001SB0000000003AAA') "
            "ORDER BY SystemModstamp ASC, Id ASC",
            Soql(("Id",), "Account", (T, "001SB0000000003AAA"), None),
        ),
    ],
)
def test_the_shapes_an_incremental_reader_sends(query: str, parsed: Soql) -> None:
    assert parse(query) == parsed


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELEC Id FROM Account", "unexpected token"),
        ("SELECT COUNT() FROM Account", "plain field names"),
        ("SELECT Id FROM Account WHERE Name = 'x'", "filters on SystemModstamp"),
        ("SELECT Id FROM Account ORDER BY Name", "orders by SystemModstamp, Id"),
        ("SELECT Id FROM Account WHERE SystemModstamp > yesterday", "invalid datetime literal"),
        (
            "SELECT Id FROM Account WHERE SystemModstamp > 2025-01-01T01:00:00Z OR "
            "(SystemModstamp = 2025-01-02T01:00:00Z AND Id > '001SB0000000003AAA')",
            "must be equal",
        ),
    ],
)
def test_anything_else_is_a_malformed_query(query: str, message: str) -> None:
    with pytest.raises(SoqlError, match=message) as raised:
        parse(query)
    assert raised.value.code == "MALFORMED_QUERY"
