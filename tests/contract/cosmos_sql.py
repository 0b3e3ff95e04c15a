"""The part of Cosmos DB's NoSQL query language that the Cosmos store and the SDK send, evaluated over JSON documents.

The fake account (``cosmos_wire``) runs the query text the SDK put on the wire, so the store's SQL generation is
exercised for real, not bypassed. Semantics follow the service's documentation: a missing property is *undefined*;
comparing values of different types is undefined, never false; ``AND``/``OR``/``NOT`` are three-valued and ``WHERE``
keeps a row only when its condition is exactly ``true``; ``ORDER BY`` sorts undefined < null < booleans < numbers <
strings < arrays < objects. Covered: ``SELECT [TOP n] * | VALUE expr | expr [AS name], ...``, ``FROM c``,
``WHERE``, ``ORDER BY``, ``IN``, comparisons, ``@parameters``, ``c.a`` and ``c["a"]`` paths, array and object
literals, ``COUNT``, ``IS_DEFINED``, ``IS_NULL``, ``IS_BOOL``, ``IS_NUMBER``, ``IS_STRING``, ``IS_ARRAY``,
``IS_OBJECT``, ``ARRAY_CONTAINS``. Anything else raises ``SqlError`` (the account answers 400, as Cosmos DB would for
a syntax error).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson


class SqlError(ValueError):
    """A query outside the supported subset, or malformed."""


class _Undefined:
    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()
"""A missing property, or the result of an undefined comparison."""

_TOKEN = re.compile(
    r"""\s*(?:(?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    r"""|(?P<param>@\w+)|(?P<placeholder>\{documentdb-formattableorderbyquery-filter\})"""
    r"""|(?P<word>[A-Za-z_]\w*)|(?P<op>!=|<>|<=|>=|[=<>(),.\[\]{}:*]))"""
)
_KEYWORDS = frozenset({"SELECT", "TOP", "VALUE", "FROM", "WHERE", "ORDER", "BY", "ASC", "DESC", "AND", "OR", "NOT",
                       "IN", "AS", "TRUE", "FALSE", "NULL"})  # fmt: skip


def type_rank(value: Any) -> int:
    """Cosmos DB's order of types: undefined, null, boolean, number, string, array, object."""
    if value is UNDEFINED:
        return 0
    if value is None:
        return 1
    if isinstance(value, bool):
        return 2
    if isinstance(value, int | float):
        return 3
    if isinstance(value, str):
        return 4
    return 5 if isinstance(value, list) else 6


def sort_key(value: Any) -> tuple[int, Any]:
    """A key sorting values as ``ORDER BY`` does (arrays and objects by their text: an arbitrary total order)."""
    rank = type_rank(value)
    if rank in (2, 3, 4):
        return rank, value
    return rank, repr(value) if rank >= 5 else 0


Expr = Callable[[Mapping[str, Any], Mapping[str, Any], "_Group"], Any]


@dataclass
class _Group:
    """The rows an aggregate sees (all rows passing WHERE)."""

    rows: Sequence[Mapping[str, Any]] = ()


@dataclass
class Parsed:
    """A parsed query: evaluate it with ``run``; the clauses' text is kept for the gateway's query plan."""

    top: int | None
    value: bool
    projection: list[tuple[str | None, Expr]] | None  # None: SELECT *
    where: Expr | None
    order_by: list[tuple[Expr, str]]
    order_paths: list[str]
    where_text: str | None
    aggregates: list[str] = field(default_factory=list)

    def run(self, docs: Sequence[Mapping[str, Any]], parameters: Mapping[str, Any]) -> list[Any]:
        """The query's results over ``docs``, in order."""
        empty = _Group()
        rows = [doc for doc in docs if self.where is None or self.where(doc, parameters, empty) is True]
        if self.aggregates:
            group = _Group(rows)
            return [self._project({}, parameters, group)]
        for expression, direction in reversed(self.order_by):
            rows.sort(key=lambda doc, e=expression: sort_key(e(doc, parameters, empty)), reverse=direction == "DESC")
        if self.top is not None:
            rows = rows[: self.top]
        return [self._project(doc, parameters, empty) for doc in rows]

    def _project(self, doc: Mapping[str, Any], parameters: Mapping[str, Any], group: _Group) -> Any:
        if self.projection is None:
            return dict(doc)
        if self.value:
            return self.projection[0][1](doc, parameters, group)
        out = {}
        for name, expression in self.projection:
            result = expression(doc, parameters, group)
            if result is not UNDEFINED:
                out[name or "$1"] = result
        return out


def parse(text: str) -> Parsed:
    """Parse ``text``; ``SqlError`` outside the supported subset."""
    return _Parser(text).query()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int, int]] = []
        position = 0
        while position < len(text.rstrip()):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise SqlError(f"syntax error at {text[position : position + 20]!r}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match[kind], match.start(kind), match.end(kind)))
            position = match.end()
        self.at = 0
        self.aggregates: list[str] = []

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.at + offset
        if index >= len(self.tokens):
            return "end", ""
        kind, value, _, _ = self.tokens[index]
        return kind, value.upper() if kind == "word" and value.upper() in _KEYWORDS else value

    def take(self, expected: str | None = None) -> str:
        kind, value = self.peek()
        if kind == "end" or (expected is not None and value != expected):
            raise SqlError(f"expected {expected or 'more'}, found {value or 'the end'!r}")
        self.at += 1
        return value

    def accept(self, value: str) -> bool:
        if self.peek()[1] == value:
            self.at += 1
            return True
        return False

    def query(self) -> Parsed:
        self.take("SELECT")
        top = int(self.take()) if self.accept("TOP") else None
        value = self.accept("VALUE")
        projection: list[tuple[str | None, Expr]] | None = None
        if not self.accept("*"):
            projection = [self.projection_item()]
            while not value and self.accept(","):
                projection.append(self.projection_item())
        self.take("FROM")
        if self.take() != "c":
            raise SqlError("only FROM c is supported")
        where, where_text = None, None
        if self.accept("WHERE"):
            start = self.tokens[self.at][2]
            where = self.expression()
            where_text = self.text[start : self._end_of_previous()]
        order_by: list[tuple[Expr, str]] = []
        order_paths: list[str] = []
        if self.accept("ORDER"):
            self.take("BY")
            while True:
                start = self.tokens[self.at][2]
                expression = self.operand()
                order_paths.append(self.text[start : self._end_of_previous()])
                direction = "DESC" if self.accept("DESC") else "ASC"
                self.accept("ASC")
                order_by.append((expression, direction))
                if not self.accept(","):
                    break
        if self.peek()[0] != "end":
            raise SqlError(f"unexpected {self.peek()[1]!r}")
        return Parsed(top, value, projection, where, order_by, order_paths, where_text, self.aggregates)

    def _end_of_previous(self) -> int:
        return self.tokens[self.at - 1][3]

    def projection_item(self) -> tuple[str | None, Expr]:
        start = self.at
        expression = self.expression()
        name = None
        if self.accept("AS"):
            name = self.take()
        elif self.at - start >= 3 and self.tokens[self.at - 2][1] == ".":
            name = self.tokens[self.at - 1][1]  # c._rid is projected as _rid
        return name, expression

    def expression(self) -> Expr:
        left = self.conjunction()
        while self.accept("OR"):
            left = _logical(left, self.conjunction(), is_and=False)
        return left

    def conjunction(self) -> Expr:
        left = self.negation()
        while self.accept("AND"):
            left = _logical(left, self.negation(), is_and=True)
        return left

    def negation(self) -> Expr:
        if self.accept("NOT"):
            return _negated(self.negation())
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.operand()
        operator = self.peek()[1]
        if operator in ("=", "!=", "<>", "<", "<=", ">", ">="):
            self.take()
            return _compare(left, self.operand(), "!=" if operator == "<>" else operator)
        if self.accept("IN"):
            self.take("(")
            choices = [self.operand()]
            while self.accept(","):
                choices.append(self.operand())
            self.take(")")
            equal = [_compare(left, choice, "=") for choice in choices]
            return functools.reduce(lambda a, b: _logical(a, b, is_and=False), equal)
        return left

    def operand(self) -> Expr:
        kind, value = self.peek()
        if kind == "number":
            self.take()
            number = float(value) if any(c in value for c in ".eE") else int(value)
            return lambda d, p, g: number
        if kind == "string":
            text = _unquote(self.take())
            return lambda d, p, g: text
        if kind == "param":
            self.take()
            return lambda d, p, g: p.get(value, UNDEFINED)
        if kind == "placeholder":
            raise SqlError("the order-by filter placeholder must be replaced before the query is sent")
        if value in ("TRUE", "FALSE", "NULL"):
            self.take()
            constant = {"TRUE": True, "FALSE": False, "NULL": None}[value]
            return lambda d, p, g: constant
        if self.accept("("):
            inner = self.expression()
            self.take(")")
            return inner
        if self.accept("["):
            items = [] if self.peek()[1] == "]" else [self.expression()]
            while self.accept(","):
                items.append(self.expression())
            self.take("]")
            return lambda d, p, g: [item(d, p, g) for item in items]
        if self.accept("{"):
            members: list[tuple[str, Expr]] = []
            while not self.accept("}"):
                key = _unquote(self.take())
                self.take(":")
                members.append((key, self.expression()))
                self.accept(",")
            return lambda d, p, g: {k: v for k, e in members if (v := e(d, p, g)) is not UNDEFINED}
        if kind == "word" and self.peek(1)[1] == "(":
            return self.function(self.take().upper())
        if kind == "word" and value == "c":
            return self.path()
        raise SqlError(f"unsupported {value!r}")

    def path(self) -> Expr:
        self.take("c")
        segments: list[str] = []
        while self.peek()[1] in (".", "["):
            if self.accept("."):
                segments.append(self.take())
            else:
                self.take("[")
                segments.append(_unquote(self.take()))
                self.take("]")
        return lambda d, p, g: _value_at(d, segments)

    def function(self, name: str) -> Expr:
        self.take("(")
        arguments = [] if self.peek()[1] == ")" else [self.expression()]
        while self.accept(","):
            arguments.append(self.expression())
        self.take(")")
        if name == "COUNT":
            self.aggregates.append("Count")
            return lambda d, p, g: len(g.rows)
        tests: dict[str, Callable[[Any], bool]] = {
            "IS_DEFINED": lambda v: v is not UNDEFINED,
            "IS_NULL": lambda v: v is None,
            "IS_BOOL": lambda v: type_rank(v) == 2,
            "IS_NUMBER": lambda v: type_rank(v) == 3,
            "IS_STRING": lambda v: type_rank(v) == 4,
            "IS_ARRAY": lambda v: type_rank(v) == 5,
            "IS_OBJECT": lambda v: type_rank(v) == 6,
        }
        if name in tests and len(arguments) == 1:
            test, (argument,) = tests[name], arguments
            return lambda d, p, g: test(argument(d, p, g))
        if name == "ARRAY_CONTAINS" and len(arguments) == 2:
            return _array_contains(*arguments)
        raise SqlError(f"unsupported function {name}")


def _unquote(token: str) -> str:
    if token[:1] not in ("'", '"'):
        raise SqlError(f"expected a string, found {token!r}")
    if token[0] == '"':
        text: str = orjson.loads(token)
        return text
    single: str = orjson.loads('"' + token[1:-1].replace("\\'", "'").replace('"', '\\"') + '"')
    return single


def _negated(inner: Expr) -> Expr:
    def negate(doc: Mapping[str, Any], parameters: Mapping[str, Any], group: _Group) -> Any:
        value = inner(doc, parameters, group)
        return (not value) if isinstance(value, bool) else UNDEFINED

    return negate


def _value_at(doc: Any, segments: Sequence[str]) -> Any:
    value = doc
    for segment in segments:
        if not isinstance(value, Mapping) or segment not in value:
            return UNDEFINED
        value = value[segment]
    return value


def _array_contains(array: Expr, wanted: Expr) -> Expr:
    # A query's id list is one parameter evaluated once per document: index it once.
    indexed: list[Any] = [None, frozenset()]

    def contains(doc: Mapping[str, Any], parameters: Mapping[str, Any], group: _Group) -> Any:
        values, value = array(doc, parameters, group), wanted(doc, parameters, group)
        if not isinstance(values, list):
            return UNDEFINED
        if indexed[0] is not values:
            indexed[:] = [values, frozenset(_hashable(item) for item in values)]
        return _hashable(value) in indexed[1]

    return contains


def _hashable(value: Any) -> tuple[int, Any]:
    return type_rank(value), orjson.dumps(value) if type_rank(value) >= 5 else value


def _compare(left: Expr, right: Expr, operator: str) -> Expr:
    def compare(doc: Mapping[str, Any], parameters: Mapping[str, Any], group: _Group) -> Any:
        a, b = left(doc, parameters, group), right(doc, parameters, group)
        rank = type_rank(a)
        if rank == 0 or rank != type_rank(b):
            return UNDEFINED
        if operator == "=":
            return a == b
        if operator == "!=":
            return a != b
        if rank not in (2, 3, 4):
            return UNDEFINED
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[operator]

    return compare


def _logical(left: Expr, right: Expr, *, is_and: bool) -> Expr:
    def combine(doc: Mapping[str, Any], parameters: Mapping[str, Any], group: _Group) -> Any:
        values = [left(doc, parameters, group), right(doc, parameters, group)]
        decisive = not is_and  # false decides an AND, true an OR
        if decisive in values:
            return decisive
        return (not decisive) if all(isinstance(v, bool) for v in values) else UNDEFINED

    return combine
