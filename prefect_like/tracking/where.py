"""Filter expressions over task runs: ``param.kernel == "rbf" and result.accuracy > 0.95``.

What ``--where`` on ``prefect-like runs tasks`` and ``sweeps show``, and ``where=`` on the API's
task-run list, take. A small language of its own, tokenized and parsed here and compiled to one
SQL fragment whose every value, and every JSON path, is a bound parameter: the text a user types
is never evaluated and never pasted into SQL.

    expression := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand [("==" | "!=" | "<" | "<=" | ">" | ">=") operand]
                | operand ["not"] "in" "(" literal ("," literal)* ")"
                | operand "is" ["not"] "null"
    operand    := field | literal | "(" expression ")"
    field      := "param." key ("." key)* | "result" ("." key)* | state | state_name | task_name
                | name | map_index | run_count | duration | start_time | end_time
    literal    := number | "text" | 'text' | true | false | null

A key is letters, digits and underscores, not starting with a digit. ``param.x`` is the task
run's parameter ``x`` as stored (``runs tasks`` shows the same), ``result.x`` a field of its
result (``result`` alone for a scalar result). Comparing with ``null`` is spelled ``is null``.
A run whose field is missing matches no comparison, as in SQL. ``state`` matches the state
type (``COMPLETED``), ``state_name`` the name (``Pruned``).

Given the parameter names and result keys a flow run has, a field naming neither is an error
that lists them (``result.acuracy`` is a typo, not an empty answer). Input that is not of the
language (an SQL fragment, an unknown character, text past ``MAX_LENGTH`` or nesting past
``MAX_DEPTH``) is a ``ValueError`` of one line that says where.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 4000
MAX_DEPTH = 32
MAX_IN_VALUES = 1000

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Plain fields: a fixed SQL fragment each, over ``task_runs AS t``.
COLUMNS = {
    "state": "t.state_type",
    "state_name": "t.state_name",
    "task_name": "t.task_name",
    "name": "t.name",
    "map_index": "t.map_index",
    "run_count": "t.run_count",
    "duration": "(t.end_time - t.start_time)",
    "start_time": "t.start_time",
    "end_time": "t.end_time",
}
KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})
_OPERATORS = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_PARAM_AT = "json_extract(t.parameters, ?)"
_RESULT_AT = "(CASE WHEN json_valid(t.result) THEN json_extract(t.result, ?) END)"

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|<|>|\(|\)|,|\.)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number, string, op, word, end
    text: str
    at: int


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``; a character outside the language is an error naming it."""
    if not isinstance(text, str):
        raise ValueError(f"a where expression is text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"where expression too long ({len(text):,} characters; at most {MAX_LENGTH:,})")
    tokens: list[Token] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            char = text[position]
            hint = " (use == for equality)" if char == "=" else ""
            hint = hint or (" (strings are quoted with \" or ')" if char in "`" else "")
            raise ValueError(f"unexpected character {char!r} at position {position + 1} of the where expression{hint}")
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _unquote(token: Token) -> str:
    body = token.text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Field:
    kind: str  # "param", "result" or "column"
    path: tuple[str, ...]

    @property
    def text(self) -> str:
        if self.kind == "column":
            return self.path[0]
        return ".".join((self.kind, *self.path))


@dataclass(frozen=True, slots=True)
class _Sql:
    """A fragment of SQL, its bound parameters in order, and what it is: ``json`` (a value read
    out of a JSON column), ``column``, ``number``/``text``/``bool``/``null`` (a literal), or
    ``test`` (a condition)."""

    text: str
    params: tuple[Any, ...]
    kind: str


class _Parser:
    """Recursive descent over the tokens, building SQL as it goes.

    SQLite's ``json_extract`` gives SQL values, compared as they are. On PostgreSQL (whose
    ``json_extract`` the store defines to give ``jsonb``) a JSON value compared with a literal is
    read as that literal's type first (``jsonb_typeof``): a text is never compared with a number."""

    def __init__(self, text: str, params: Collection[str] | None, results: Collection[str] | None,
                 dialect: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.position = 0
        self.depth = 0
        self.known_params = params
        self.known_results = results
        self.postgres = dialect == "postgres"
        self.fields: list[Field] = []

    # -- tokens ------------------------------------------------------------------------------

    def peek(self) -> Token:
        return self.tokens[self.position]

    def take(self) -> Token:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def at_word(self, *words: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text.lower() in words

    def at_op(self, *ops: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.text in ops

    def fail(self, what: str, token: Token | None = None) -> ValueError:
        token = token or self.peek()
        found = "the end" if token.kind == "end" else repr(token.text)
        return ValueError(f"where expression: {what} at position {token.at + 1}, found {found}")

    def expect_op(self, op: str) -> None:
        if not self.at_op(op):
            raise self.fail(f"expected {op!r}")
        self.take()

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError(f"where expression nested too deeply (more than {MAX_DEPTH} levels)")

    # -- grammar -----------------------------------------------------------------------------

    def parse(self) -> _Sql:
        if self.peek().kind == "end":
            raise ValueError("where expression is empty; e.g. --where 'result.loss < 0.1'")
        sql = self.expression()
        if self.peek().kind != "end":
            raise self.fail("expected 'and', 'or' or the end")
        return sql

    def expression(self) -> _Sql:
        self.deeper()
        try:
            parts = [self.conjunction()]
            while self.at_word("or"):
                self.take()
                parts.append(self.conjunction())
            return _join(parts, " OR ")
        finally:
            self.depth -= 1

    def conjunction(self) -> _Sql:
        parts = [self.negation()]
        while self.at_word("and"):
            self.take()
            parts.append(self.negation())
        return _join(parts, " AND ")

    def negation(self) -> _Sql:
        if self.at_word("not"):
            self.take()
            self.deeper()
            try:
                inner = self.negation()
                return _Sql(f"(NOT COALESCE({inner.text}, FALSE))", inner.params, "test")
            finally:
                self.depth -= 1
        return self.comparison()

    def comparison(self) -> _Sql:
        start = self.peek()
        left = self.operand()
        if self.at_op(*_OPERATORS):
            op = _OPERATORS[self.take().text]
            right_token = self.peek()
            right = self.operand()
            if left.kind in _LITERALS and right.kind in _LITERALS:
                raise self.fail("a comparison needs a field on one side", start)
            if right.kind == "null" or left.kind == "null":
                raise self.fail("compare with null as 'is null' or 'is not null'", right_token)
            left, right = self.typed(left, right), self.typed(right, left)
            return _Sql(f"({left.text} {op} {right.text})", left.params + right.params, "test")
        negated = False
        if self.at_word("not"):
            self.take()
            negated = True
            if not self.at_word("in"):
                raise self.fail("expected 'in' after 'not'")
        if self.at_word("in"):
            self.take()
            self.expect_op("(")
            values: list[_Sql] = []
            while True:
                values.append(self.literal())
                if len(values) > MAX_IN_VALUES:
                    raise ValueError(f"where expression: more than {MAX_IN_VALUES} values in one 'in'")
                if self.at_op(","):
                    self.take()
                    continue
                self.expect_op(")")
                break
            # One IN per type of value, so that each compares with the field read as its type.
            parts = []
            for kind in dict.fromkeys(v.kind for v in values):
                same = [v for v in values if v.kind == kind]
                field = self.typed(left, same[0])
                listed = ", ".join(v.text for v in same)
                parts.append(_Sql(f"({field.text} IN ({listed}))", field.params + sum((v.params for v in same), ()),
                                  "test"))
            found = _join(parts, " OR ")
            return _Sql(f"(NOT COALESCE({found.text}, FALSE))", found.params, "test") if negated else found
        if self.at_word("is"):
            self.take()
            negated = False
            if self.at_word("not"):
                self.take()
                negated = True
            if not self.at_word("null"):
                raise self.fail("expected 'null' after 'is'")
            self.take()
            text = f"{left.text} IS NULL"
            params = left.params
            if self.postgres and left.kind == "json":  # a JSON null is jsonb 'null' there, not SQL NULL
                text = f"({left.text} IS NULL OR {left.text} = 'null'::jsonb)"
                params = left.params * 2
            return _Sql(f"(NOT {text})" if negated else f"({text})", params, "test")
        if left.kind in _LITERALS:
            raise self.fail("expected a comparison", self.peek())
        if left.kind == "test":
            return left
        # A bare field is true when it is (a boolean parameter or result): ``result.converged``.
        true = _Sql("TRUE" if self.postgres else "1", (), "bool")
        left = self.typed(left, true)
        return _Sql(f"({left.text} = {true.text})", left.params, "test")

    def typed(self, value: _Sql, other: _Sql) -> _Sql:
        """``value`` read as ``other``'s type where it is JSON (a text is never compared with a
        number: SQLite would order every text above every number); else as it is."""
        if value.kind != "json" or other.kind in ("json", "test"):
            return value
        if not self.postgres:
            if other.kind == "number":
                cast = "(CASE WHEN typeof({0}) IN ('integer', 'real') THEN {0} END)"
            elif other.kind == "text":
                cast = "(CASE WHEN typeof({0}) = 'text' THEN {0} END)"
            else:
                return value
            return _Sql(cast.format(value.text), value.params * 2, other.kind)
        if other.kind == "number":
            cast, kind = "(CASE WHEN jsonb_typeof({0}) = 'number' THEN ({0})::double precision END)", "number"
        elif other.kind == "bool":
            cast, kind = "(CASE WHEN jsonb_typeof({0}) = 'boolean' THEN ({0})::boolean END)", "bool"
        else:
            cast, kind = "(CASE WHEN jsonb_typeof({0}) IN ('string', 'number', 'boolean') THEN {0} #>> '{{}}' END)", "text"
        return _Sql(cast.format(value.text), value.params * cast.count("{0}"), kind)

    def operand(self) -> _Sql:
        token = self.peek()
        if token.kind == "op" and token.text == "(":
            self.take()
            inner = self.expression()
            self.expect_op(")")
            return inner
        if token.kind in ("number", "string") or (token.kind == "word" and token.text.lower() in ("true", "false", "null")):
            return self.literal()
        if token.kind == "word":
            return self.field()
        raise self.fail("expected a field (param.NAME, result.KEY, state, ...) or a value")

    def literal(self) -> _Sql:
        token = self.take()
        if token.kind == "number":
            number = float(token.text)
            value: Any = int(token.text) if re.fullmatch(r"-?\d+", token.text) else number
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                value = number
            return _Sql("?", (value,), "number")
        if token.kind == "string":
            return _Sql("?", (_unquote(token),), "text")
        if token.kind == "word":
            word = token.text.lower()
            if word in ("true", "false"):
                if self.postgres:
                    return _Sql(word.upper(), (), "bool")
                return _Sql("1" if word == "true" else "0", (), "bool")
            if word == "null":
                return _Sql("NULL", (), "null")
        raise self.fail("expected a value (a number, a quoted text, true, false)", token)

    def field(self) -> _Sql:
        token = self.take()
        name = token.text
        lowered = name.lower()
        if lowered in KEYWORDS:
            raise self.fail("expected a field", token)
        if lowered in ("param", "params", "result"):
            kind = "result" if lowered == "result" else "param"
            path: list[str] = []
            while self.at_op("."):
                self.take()
                key = self.take()
                if key.kind != "word":
                    raise self.fail("expected a key after '.'", key)
                path.append(key.text)
            if kind == "param" and not path:
                raise self.fail("expected '.NAME' after 'param'", self.peek())
            field = Field(kind, tuple(path))
            self.check(field)
            self.fields.append(field)
            json_path = "$" + "".join(f".{p}" for p in path)  # keys are plain words: no quoting needed
            return _Sql(_PARAM_AT if kind == "param" else _RESULT_AT, (json_path,), "json")
        if name in COLUMNS:
            if self.at_op("."):
                raise self.fail(f"{name} has no keys", self.peek())
            self.fields.append(Field("column", (name,)))
            return _Sql(COLUMNS[name], (), "column")
        raise ValueError(
            f"where expression: unknown field {name!r} at position {token.at + 1}; use param.NAME, "
            f"result.KEY or one of {', '.join(COLUMNS)}"
        )

    def check(self, field: Field) -> None:
        known = self.known_params if field.kind == "param" else self.known_results
        if known is None or not field.path:
            return
        if field.path[0] not in known:
            what = "parameter" if field.kind == "param" else "result key"
            listed = ", ".join(f"{field.kind}.{k}" for k in sorted(known)) or "none"
            raise ValueError(f"unknown {what} {field.text!r}; the known ones are {listed}")


_LITERALS = frozenset({"number", "text", "bool", "null"})


def _join(parts: list[_Sql], joiner: str) -> _Sql:
    if len(parts) == 1:
        return parts[0]
    return _Sql("(" + joiner.join(p.text for p in parts) + ")", sum((p.params for p in parts), ()), "test")


@dataclass(frozen=True, slots=True)
class Compiled:
    """A where expression as SQL over ``task_runs AS t``, its bound parameters, and its fields."""

    sql: str
    params: tuple[Any, ...]
    fields: tuple[Field, ...]


def compile_where(
    text: str, params: Collection[str] | None = None, results: Collection[str] | None = None,
    dialect: str = "sqlite",
) -> Compiled:
    """Compile ``text`` for ``dialect`` (``sqlite`` or ``postgres``); given the known parameter
    names and result keys, an unknown one is an error."""
    parser = _Parser(text, params, results, dialect)
    sql = parser.parse()
    return Compiled(sql.text, sql.params, tuple(parser.fields))


def check_key(kind: str, key: str, known: Collection[str] | None) -> None:
    """An ``order_by`` or ``best`` key (``param.C``, ``result.loss``): an unknown one is an error
    listing the known ones, as in a where expression."""
    parts = key.split(".")
    if any(not KEY.match(p) for p in parts):
        raise ValueError(f"invalid key {key!r}; a key is letters, digits and underscores, not starting with a digit")
    if known is not None and parts[0] not in known:
        what = "parameter" if kind == "param" else "result key"
        listed = ", ".join(f"{kind}.{k}" for k in sorted(known)) or "none"
        raise ValueError(f"unknown {what} '{kind}.{key}'; the known ones are {listed}")


__all__ = ["COLUMNS", "Compiled", "Field", "Token", "check_key", "compile_where", "tokenize"]
