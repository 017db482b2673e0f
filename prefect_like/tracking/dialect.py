"""SQLite's SQL as PostgreSQL runs it: the one place where the two dialects differ.

The store's SQL is written once, for SQLite (``store``, ``queries``, the migration steps of
``schema``); the PostgreSQL store (``postgres``) runs the same statements through ``translate``
(queries and writes) and ``ddl`` (migration steps). Everything SQLite-only the store uses is
rewritten here, so a statement or a step someone adds later runs on both backends unless it
uses something new, and then a test run against PostgreSQL says which statement.

Statements (``translate``), outside string literals:

- placeholders: ``?`` and ``?NNN`` become psycopg's ``%s`` and ``%(pNNN)s``, ``:name`` becomes
  ``%(name)s``, and a literal ``%`` is doubled;
- ``INSERT OR IGNORE INTO ...`` is ``INSERT INTO ... ON CONFLICT DO NOTHING``;
- the scalar ``MIN(a, b)`` and ``MAX(a, b)`` (two or more arguments) are ``LEAST`` and
  ``GREATEST`` (the store COALESCEs both sides, so PostgreSQL's skipping of NULLs agrees);
- ``CAST(x AS INTEGER)`` truncates toward zero, as SQLite's does (PostgreSQL's rounds);
  SQLite's ``total(x)`` (a float sum, 0.0 over no rows) is ``COALESCE(SUM(x), 0)`` as a float;
- ``instr`` is ``strpos``, ``ifnull`` is ``coalesce``, ``json_each`` is our ``sqlite_json_each``
  (PostgreSQL's own takes JSON and gives other columns), and a ``rowid`` compared with a
  ``json_each`` value compares it as the integer SQLite reads it as; SQLite's ``CROSS JOIN
  ... ON`` (its way to fix the join order) is a plain ``JOIN``;
- ``LIMIT ?`` takes SQLite's ``-1`` (no limit) as PostgreSQL's NULL;
- ``CASE WHEN json_valid(x) THEN json_extract(x, p) END`` (a value in JSON that may not be
  JSON) is one ``sqlite_json_at(x, p)``, which parses the text once.

The functions SQLite has and PostgreSQL lacks (``json_valid``, ``json_extract``, the array
``json_each``) are made in the store's schema by ``FUNCTIONS``.

Migration steps (``ddl``): ``INTEGER`` is ``BIGINT`` (SQLite's integers are 64-bit), an
``INTEGER PRIMARY KEY`` an identity column, ``REAL`` is ``DOUBLE PRECISION``, ``BLOB`` is
``BYTEA``, ``TEXT`` compares byte by byte (``COLLATE "C"``, SQLite's BINARY: ids sort and
prefix-match the same), and a table that has a rowid in SQLite gets a ``rowid`` identity
column, unique, so the queries that page by rowid read the same order.
"""

from __future__ import annotations

import functools
import re

# SQLite functions PostgreSQL lacks, as PostgreSQL functions in the store's own schema.
# json_valid needs an exception block (PostgreSQL 15 has no IS JSON), which a parallel plan may
# not run (a subtransaction): those are not PARALLEL SAFE. The others are plain SQL, which the
# planner inlines.
FUNCTIONS = (
    """CREATE OR REPLACE FUNCTION json_valid(doc text) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN
        IF doc IS NULL THEN
            RETURN NULL;
        END IF;
        PERFORM doc::jsonb;
        RETURN true;
    EXCEPTION WHEN others THEN
        RETURN false;
    END
    $$""",
    """CREATE OR REPLACE FUNCTION json_extract(doc text, path text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT doc::jsonb #> CASE WHEN path = '$' THEN '{}'::text[]
                                 ELSE string_to_array(substr(path, 3), '.') END
    $$""",
    # json_valid and json_extract of one value, parsing it once (as json, which only checks
    # the text, and only the value at the path made jsonb, which orders numbers as numbers):
    # what a sort by a result key runs for every row of a flow run.
    """CREATE OR REPLACE FUNCTION sqlite_json_at(doc text, path text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN
        RETURN (doc::json #> CASE WHEN path = '$' THEN '{}'::text[]
                                  ELSE string_to_array(substr(path, 3), '.') END)::jsonb;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END
    $$""",
    """CREATE OR REPLACE FUNCTION sqlite_json_each(doc text) RETURNS TABLE (key bigint, value text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT e.n - 1, e.v FROM json_array_elements_text(doc::json) WITH ORDINALITY AS e(v, n)
    $$""",
)

_LITERAL = re.compile(r"('(?:[^']|'')*')")
_NUMBERED = re.compile(r"\?(\d+)")
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_OR_IGNORE = re.compile(r"\bINSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_RENAMES = [
    (re.compile(r"\binstr\s*\(", re.IGNORECASE), "strpos("),
    (re.compile(r"\bifnull\s*\(", re.IGNORECASE), "coalesce("),
    (re.compile(r"\bjson_each\s*\(", re.IGNORECASE), "sqlite_json_each("),
]
_JSON_AT = re.compile(
    r"CASE\s+WHEN\s+json_valid\(([\w.]+)\)\s+THEN\s+json_extract\(\1,\s*([^()]+?)\)\s+END", re.IGNORECASE
)
_CROSS_ON = re.compile(r"\bCROSS\s+JOIN\s+(\w+(?:\s+AS\s+\w+)?)\s+ON\b", re.IGNORECASE)
_ROWID_VALUE = re.compile(r"(\browid\s*=\s*)(\w+\.value)\b", re.IGNORECASE)
_LIMIT = re.compile(r"\bLIMIT\s+%s", re.IGNORECASE)
_CALL = re.compile(r"\b(MIN|MAX|CAST|TOTAL)\s*\(", re.IGNORECASE)


class Translated(str):
    """A statement for psycopg; ``numbered``: its parameters are ``?NNN`` (pass a dict)."""

    numbered: bool = False


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> Translated:
    """``sql`` (SQLite's dialect, ``?``/``?NNN``/``:name`` parameters) for PostgreSQL."""
    parts = _LITERAL.split(sql)
    numbered = False
    ignore = False
    for i in range(0, len(parts), 2):  # the even parts are outside string literals
        text = parts[i].replace("%", "%%")
        if _NUMBERED.search(text):
            numbered = True
            text = _NUMBERED.sub(r"%(p\1)s", text)
        text = text.replace("?", "%s")
        text = _NAMED.sub(r"%(\1)s", text)
        if _OR_IGNORE.search(text):
            ignore = True
            text = _OR_IGNORE.sub("INSERT INTO", text)
        for pattern, replacement in _RENAMES:
            text = pattern.sub(replacement, text)
        text = _CROSS_ON.sub(r"JOIN \1 ON", text)
        text = _ROWID_VALUE.sub(r"\1\2::bigint", text)
        text = _LIMIT.sub("LIMIT NULLIF(%s, -1)", text)
        parts[i] = text
    out = _JSON_AT.sub(r"sqlite_json_at(\1, \2)", _calls("".join(parts)))
    if ignore:
        out = out.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    result = Translated(out)
    result.numbered = numbered
    return result


def _calls(sql: str) -> str:
    """Rewrite scalar MIN/MAX, CAST(... AS INTEGER) and TOTAL, innermost calls included."""
    out: list[str] = []
    pos = 0
    while True:
        match = _CALL.search(sql, pos)
        if match is None:
            out.append(sql[pos:])
            return "".join(out)
        name = match.group(1).upper()
        start = match.end()
        end, commas = _closing(sql, start)
        if end < 0:  # unbalanced: leave the rest for PostgreSQL to report
            out.append(sql[pos:])
            return "".join(out)
        inner = _calls(sql[start:end])
        out.append(sql[pos : match.start()])
        if name in ("MIN", "MAX") and commas:
            out.append(("LEAST(" if name == "MIN" else "GREATEST(") + inner + ")")
        elif name == "TOTAL":  # SQLite's float sum, 0.0 over no rows
            out.append(f"CAST(COALESCE(SUM({inner}), 0) AS DOUBLE PRECISION)")
        elif name == "CAST" and re.search(r"\s+AS\s+INTEGER\s*$", inner, re.IGNORECASE):
            expr = re.sub(r"\s+AS\s+INTEGER\s*$", "", inner, flags=re.IGNORECASE)
            out.append(f"CAST(trunc({expr}) AS BIGINT)")
        else:
            out.append(sql[match.start() : match.end()] + inner + ")")
        pos = end + 1


def _closing(sql: str, start: int) -> tuple[int, bool]:
    """The index of the parenthesis closing the one before ``start``, and whether a comma
    separates arguments at its top level; -1 if it is never closed."""
    depth = 0
    commas = False
    quoted = False
    for i in range(start, len(sql)):
        c = sql[i]
        if c == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                return i, commas
            depth -= 1
        elif c == "," and depth == 0:
            commas = True
    return -1, commas


def numbered_params(params: tuple[object, ...] | list[object]) -> dict[str, object]:
    """``?NNN`` parameters as the dict psycopg takes for ``%(pNNN)s``."""
    return {f"p{i}": value for i, value in enumerate(params, 1)}


_TYPES = [
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b", re.IGNORECASE),
     "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b", re.IGNORECASE), "BIGINT"),
    (re.compile(r"\bREAL\b", re.IGNORECASE), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.IGNORECASE), "BYTEA"),
    (re.compile(r"\bTEXT\b", re.IGNORECASE), 'TEXT COLLATE "C"'),
]
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\b", re.IGNORECASE)
_WITHOUT_ROWID = re.compile(r"\)\s*WITHOUT\s+ROWID\s*$", re.IGNORECASE)


def ddl(statement: str) -> str:
    """One statement of a migration step (SQLite DDL) as PostgreSQL DDL."""
    statement = _strip_comments(statement).strip()
    for pattern, replacement in _TYPES:
        statement = pattern.sub(replacement, statement)
    if _CREATE_TABLE.match(statement):
        if _WITHOUT_ROWID.search(statement):
            statement = _WITHOUT_ROWID.sub(")", statement)
        elif statement.endswith(")"):
            statement = statement[:-1].rstrip() + ",\n    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE\n)"
    return statement


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] if "--" in line and "'" not in line else line for line in sql.splitlines())
