"""The read side of the store: SQL fragments built from user input, and rows turned into dicts.

Everything a user can type (a state, a sort key, a result key) becomes either a bound parameter
or one of a fixed set of SQL fragments chosen here; no user text is ever pasted into SQL. The
dicts built here are the stable shapes the CLI's ``--json`` and the tracking API return: plain
JSON-able values, times as ISO-8601 UTC strings, ``duration`` in seconds.

No stored value breaks a read. What an older version or another writer may have left in a row
(a time out of range or not a number, text where a number belongs, malformed JSON) is shown as
null (or empty, for parameters and tags), a result or an error that is not JSON as its raw
text, and the rest of the row and of the list is served.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from prefect_like.errors import RunNotFoundError
from prefect_like.states import NAMES, STATE_TYPES, is_final
from prefect_like.tracking import where as where_lang
from prefect_like.tracking.limits import MAX_TIMESTAMP

# The state names the framework itself produces; a store may hold others, found at query time.
KNOWN_STATE_NAMES = frozenset(NAMES)

T = TypeVar("T")

RESULT_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Plain sort keys. Each is a fixed fragment; the table's rowid breaks ties so pages are stable.
_ORDER_COLUMNS = {
    "start_time": "start_time",
    "end_time": "end_time",
    "duration": "(end_time - start_time)",
    "map_index": "map_index",
    "task_name": "task_name",
    "state": "state_name",
    "created": "created",
}
ORDER_KEYS = (*_ORDER_COLUMNS, "result", "result.<key>", "param.<name>")
# A value in the result's JSON; a result that is not JSON sorts as missing (json_extract would
# fail the whole query over it).
_RESULT_AT = "CASE WHEN json_valid(result) THEN json_extract(result, {}) END"

# Task rows are always read as ``task_runs AS t``; they refer to their flow run by its key.
TASK_COLUMNS = (
    "t.id, (SELECT f.id FROM flow_runs AS f WHERE f.key = t.flow_key), t.task_name, t.name, "
    "t.map_index, t.tags, t.state_type, t.state_name, t.message, t.run_count, t.parameters, "
    "t.result, t.error, t.created, t.start_time, t.end_time, t.duration"
)
# The flow run's key comes last: it is used to count its task runs, and is not shown.
FLOW_COLUMNS = (
    "id, name, flow_name, state_type, state_name, message, start_time, end_time, duration, "
    "parameters, task_runs, parent_flow_run_id, parent_task_run_id, error, heartbeat, tags, key"
)
LOG_COLUMNS = "run_id, seq, flow_run_id, task_run_id, level, logger, timestamp, message"
ARTIFACT_COLUMNS = "id, key, type, description, data, flow_run_id, task_run_id, created, updated"


def _number(value: Any) -> float | None:
    """A stored number, or None for anything else (text, a blob, NaN, an infinity)."""
    return value if value.__class__ in (float, int) and math.isfinite(value) else None


def _time(value: Any) -> float | None:
    """A stored timestamp, or None if it is not seconds since the epoch in the range ingest allows."""
    ts = _number(value)
    return ts if ts is not None and 0 <= ts <= MAX_TIMESTAMP else None


def iso(ts: Any) -> str | None:
    """An epoch timestamp as an ISO-8601 UTC string; None for None and for a stored value that
    is not a time (``_time``)."""
    ts = _time(ts)
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def loads(text: str | bytes | None) -> Any:
    """A JSON column's value; text that is not JSON comes back as it is stored."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        pass
    try:
        # What json writes and orjson does not read (NaN, Infinity); integers past 64 bits
        # become floats, as orjson reads them, so the value can be served as JSON again.
        return json.loads(text, parse_int=_parse_int)
    except (ValueError, TypeError, RecursionError):
        return text.decode(errors="replace") if isinstance(text, bytes) else text


def _parse_int(digits: str) -> int | float:
    value = int(digits)
    return value if -(2**63) <= value < 2**64 else float(value)


def _duration(start: Any, end: Any, stored: Any) -> float | None:
    start, end = _time(start), _time(end)
    if start is not None and end is not None:
        return round(end - start, 6)
    return _number(stored)


def _counts(value: Any) -> dict[str, int] | None:
    """Task run counts by state name as stored, or None if the column does not hold them."""
    if isinstance(value, dict) and all(isinstance(n, int) and not isinstance(n, bool) for n in value.values()):
        return value
    return None


# Columns whose shape readers rely on (the CLI, the export, the dashboard): a stored value of
# another shape is not shown. Results and errors can be anything, so they are shown raw.
def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def task_dict(row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    (id_, flow_run_id, task_name, name, map_index, tags, state_type, state_name, message,
     run_count, parameters, result, error, created, start, end, duration) = row
    return {
        "id": id_,
        "flow_run_id": flow_run_id,
        "task_name": task_name,
        "name": name,
        "map_index": map_index,
        "tags": _list(loads(tags)),
        "state": state_type,
        "state_name": state_name,
        "message": message,
        "run_count": run_count,
        "parameters": _dict(loads(parameters)),
        "result": loads(result),
        "error": loads(error),
        "created": iso(created),
        "start_time": iso(start),
        "end_time": iso(end),
        "duration": _duration(start, end, duration),
    }


def flow_dict(row: tuple[Any, ...], counts: dict[str, int]) -> dict[str, Any]:
    (id_, name, flow_name, state_type, state_name, message, start, end, duration, parameters,
     _stored_counts, parent_flow_run_id, parent_task_run_id, error, heartbeat, tags, _key) = row
    return {
        "id": id_,
        "name": name,
        "flow_name": flow_name,
        "state": state_type,
        "state_name": state_name,
        "message": message,
        "start_time": iso(start),
        "end_time": iso(end),
        "duration": _duration(start, end, duration),
        "parameters": _dict(loads(parameters)) or {},
        "tags": _list(loads(tags)),
        "task_runs": counts,
        "parent_flow_run_id": parent_flow_run_id,
        "parent_task_run_id": parent_task_run_id,
        "error": loads(error),
        "heartbeat": iso(heartbeat),
    }


def log_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    run_id, seq, flow_run_id, task_run_id, level, logger, timestamp, message = row
    return {
        "run_id": run_id,
        "seq": seq,
        "flow_run_id": flow_run_id,
        "task_run_id": task_run_id,
        "level": level,
        "logger": logger,
        "timestamp": iso(timestamp),
        "message": message,
    }


def artifact_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    id_, key, type_, description, data, flow_run_id, task_run_id, created, updated = row
    return {
        "id": id_,
        "key": key,
        "type": type_,
        "description": description,
        "data": loads(data),
        "flow_run_id": flow_run_id,
        "task_run_id": task_run_id,
        "created": iso(created),
        "updated": iso(updated),
    }


def tag_clause(tags: Sequence[str]) -> tuple[str, list[Any]]:
    """Runs that have every one of ``tags``, as a WHERE fragment on ``task_runs`` or ``flow_runs``.

    Tags are stored as a compact JSON list of strings (``["a","b"]``), so a tag is an element
    exactly when its quoted text follows ``[`` or ``,``: inside a string a quote is always
    escaped, so ``[`` or ``,`` before a bare quote can only open an element. ``instr`` on the
    text then decides it from the ``task_runs_tags`` partial index alone (it holds the tags of
    tagged runs only), with no JSON parsed per row."""
    parts: list[str] = ["tags IS NOT NULL"]
    params: list[Any] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"a tag is a non-empty string, got {tag!r}")
        quoted = orjson.dumps(tag).decode()
        parts.append("(instr(tags, ?) > 0 OR instr(tags, ?) > 0)")
        params.extend(("[" + quoted, "," + quoted))
    return "(" + " AND ".join(parts) + ")", params


def state_clause(state: str, names_in_store: set[str]) -> tuple[str, list[Any]]:
    """``state`` as a WHERE fragment matching the state type OR the state name, any case.

    Names are matched in Python against the names actually stored, so the SQL compares with
    ``=``/``IN`` on the raw column and the (flow_run_id, state_name) index stays usable.
    """
    wanted = state.strip()
    state_type = wanted.upper() if wanted.upper() in STATE_TYPES else None
    candidates = KNOWN_STATE_NAMES | names_in_store
    names = sorted(n for n in candidates if n.lower() == wanted.lower())
    if state_type is None and not names:
        raise ValueError(
            f"unknown state {state!r}; use a state type ({', '.join(STATE_TYPES)}) "
            f"or a state name ({', '.join(sorted(candidates))})"
        )
    parts: list[str] = []
    params: list[Any] = []
    if state_type is not None:
        parts.append("state_type = ?")
        params.append(state_type)
    if names:
        parts.append(f"state_name IN ({', '.join('?' * len(names))})")
        params.extend(names)
    return "(" + " OR ".join(parts) + ")", params


def order_clause(order_by: str | None) -> tuple[str, list[Any]]:
    """``order_by`` (``-`` prefix for descending) as an ORDER BY fragment and its parameters.

    Missing values (a running task has no end_time, a failed one no result) sort last either way.
    """
    if not order_by:
        return "created, rowid", []
    key = order_by.strip()
    descending = key.startswith("-")
    key = key.lstrip("-").strip()
    direction = "DESC" if descending else "ASC"
    params: list[Any] = []
    if key in _ORDER_COLUMNS:
        expr = _ORDER_COLUMNS[key]
    elif key == "result":
        expr = _RESULT_AT.format("'$'")
    elif key.startswith("result."):
        parts = key.split(".")[1:]
        bad = [p for p in parts if not RESULT_KEY.match(p)]
        if bad:
            raise ValueError(
                f"invalid result key {key[len('result.'):]!r} in order_by; "
                "a key is letters, digits and underscores, not starting with a digit"
            )
        # The path is a bound parameter too; the regex only keeps it a plain object path.
        expr = _RESULT_AT.format("?")
        params.append("$." + ".".join(parts))
    elif key.startswith("param."):
        name = key[len("param."):]
        where_lang.check_key("param", name, None)
        expr = "json_extract(parameters, ?)"
        params.append("$." + name)  # plain words (check_key): no quoting, on either backend
    else:
        raise ValueError(
            f"unknown order_by key {order_by!r}; use one of {', '.join(ORDER_KEYS)} "
            "(prefix with '-' for descending)"
        )
    return f"{expr} {direction} NULLS LAST, rowid {direction}", params


class Reads:
    """Every read of the store. ``Store`` supplies the connection and the locked-retry loop."""

    _conn: sqlite3.Connection

    def _retry(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._retry(lambda: self._conn.execute(sql, params).fetchall())

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._retry(lambda: self._conn.execute(sql, params).fetchone())

    # -- ids -------------------------------------------------------------------------------

    def _matches(self, table: str, ident: str) -> list[str]:
        """Ids in ``table`` equal to ``ident``, else starting with it (at most 3, for messages)."""
        row = self._one(f"SELECT id FROM {table} WHERE id = ?", (ident,))
        if row is not None:
            return [row[0]]
        if len(ident) < 4:
            return []
        # A range on the unique id index: a seek, where LIKE would scan the table.
        rows = self._all(
            f"SELECT id FROM {table} WHERE id >= ? AND id < ? ORDER BY id LIMIT 3",
            (ident, ident + "\U0010ffff"),
        )
        return [r[0] for r in rows]

    def _task_run_id(self, ident: str) -> str:
        ident = str(ident).strip()
        found = self._matches("task_runs", ident)
        if len(found) == 1:
            return found[0]
        if found:
            raise RunNotFoundError(_ambiguous(ident, [("task run", i) for i in found]))
        raise RunNotFoundError(f"no task run with id {ident!r}")

    def _flow_ref(self, ident: str) -> tuple[int, str]:
        """(key, id) of the flow run with this id or unique id prefix."""
        ident = str(ident).strip()
        found = self._matches("flow_runs", ident)
        if len(found) > 1:
            raise RunNotFoundError(_ambiguous(ident, [("flow run", i) for i in found]))
        if not found:
            raise RunNotFoundError(f"no flow run with id {ident!r}")
        (key,) = self._one("SELECT key FROM flow_runs WHERE id = ?", (found[0],))
        return key, found[0]

    def find_run(self, id_or_prefix: str) -> tuple[str, str]:
        """``("flow", id)`` or ``("task", id)`` for a full id or a unique prefix of either."""
        ident = str(id_or_prefix).strip()
        flows = self._matches("flow_runs", ident)
        tasks = self._matches("task_runs", ident)
        if ident in flows:
            return "flow", ident
        if ident in tasks:
            return "task", ident
        if len(flows) == 1 and all(t.startswith(flows[0][:12]) for t in tasks):
            # A task run's id starts with its flow run's first 12 characters: a shorter prefix
            # that names one flow run means that flow run, not an ambiguity with its own task runs.
            return "flow", flows[0]
        found = [("flow run", i) for i in flows] + [("task run", i) for i in tasks]
        if len(found) == 1:
            return ("flow" if flows else "task"), found[0][1]
        if found:
            raise RunNotFoundError(_ambiguous(ident, found))
        raise RunNotFoundError(f"no flow run or task run with id {ident!r}")

    # -- flow runs -------------------------------------------------------------------------

    def _flow_where(
        self, state: str | None, flow_name: str | None, tags: Sequence[str] | None = None
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if tags:
            clause, tag_params = tag_clause(tags)
            clauses.append(clause)
            params.extend(tag_params)
        if state is not None:
            names = {r[0] for r in self._all("SELECT DISTINCT state_name FROM flow_runs") if isinstance(r[0], str)}
            clause, state_params = state_clause(state, names)
            clauses.append(clause)
            params.extend(state_params)
        if flow_name is not None:
            clauses.append("flow_name = ?")
            params.append(flow_name)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _flow(self, row: tuple[Any, ...]) -> dict[str, Any]:
        state_type, state_name, stored_counts, key = row[3], row[4], row[10], row[-1]
        # A final run's counts are frozen in its terminal event; a live one's are counted now,
        # and so are those of a final run whose stored counts are not counts.
        counts = _counts(loads(stored_counts)) if is_final(state_type, state_name) else None
        if counts is None:
            counts = self._task_counts(key)
        return flow_dict(row, counts)

    def list_flow_runs(
        self,
        state: str | None = None,
        flow_name: str | None = None,
        limit: int = 50,
        offset: int = 0,
        tags: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Flow runs, newest first; with ``tags``, those that have every one of them."""
        where, params = self._flow_where(state, flow_name, tags)
        rows = self._all(
            f"SELECT {FLOW_COLUMNS} FROM flow_runs{where} "
            "ORDER BY created DESC, key DESC LIMIT ? OFFSET ?",
            (*params, _count(limit, "limit"), _count(offset, "offset")),
        )
        return [self._flow(row) for row in rows]

    def count_flow_runs(
        self, state: str | None = None, flow_name: str | None = None, tags: Sequence[str] | None = None
    ) -> int:
        where, params = self._flow_where(state, flow_name, tags)
        return int(self._one(f"SELECT COUNT(*) FROM flow_runs{where}", params)[0])

    def get_flow_run(self, id_or_prefix: str) -> dict[str, Any]:
        """A flow run, with ``states``: its state history in time order (a verdict the store made
        on its silence, and its withdrawal, are dated at the last sign of life they are about)."""
        key, flow_run_id = self._flow_ref(id_or_prefix)
        run = self._flow(self._one(f"SELECT {FLOW_COLUMNS} FROM flow_runs WHERE key = ?", (key,)))
        run["states"] = [
            {"seq": s, "state": t, "state_name": n, "timestamp": iso(ts), "message": m}
            for s, t, n, ts, m in self._all(
                "SELECT seq, state_type, state_name, timestamp, message FROM state_history "
                "WHERE run_id = ? ORDER BY timestamp, seq",
                (flow_run_id,),
            )
        ]
        return run

    # -- task runs -------------------------------------------------------------------------

    def _task_where(
        self, flow_key: int, state: str | None, task_name: str | None,
        tags: Sequence[str] | None = None, where_text: str | None = None,
    ) -> tuple[str, list[Any]]:
        clauses = ["flow_key = ?"]
        params: list[Any] = [flow_key]
        if state is not None:
            names = {
                r[0]
                for r in self._all(
                    "SELECT DISTINCT state_name FROM task_runs WHERE flow_key = ?", (flow_key,)
                )
                if isinstance(r[0], str)
            }
            clause, state_params = state_clause(state, names)
            clauses.append(clause)
            params.extend(state_params)
        if task_name is not None:
            clauses.append("task_name = ?")
            params.append(task_name)
        if where_text is not None:
            known_params, known_results = self.known_fields(flow_key)
            dialect = "postgres" if hasattr(self, "pg") else "sqlite"  # PgStore's connection
            compiled = where_lang.compile_where(where_text, known_params, known_results, dialect)
            clauses.append(compiled.sql)
            params.extend(compiled.params)
        if tags:
            clause, tag_params = tag_clause(tags)
            clauses.append(clause)
            params.extend(tag_params)
        return " WHERE " + " AND ".join(clauses), params

    def list_task_runs(
        self,
        flow_run_id: str,
        state: str | None = None,
        task_name: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str | None = None,
        tags: Sequence[str] | None = None,
        where_text: str | None = None,
    ) -> list[dict[str, Any]]:
        """One page of a flow run's task runs; submission order unless ``order_by`` says else.
        ``where_text`` filters them by parameter and result (``tracking.where``).
        With ``tags``, only the runs that have every one of them."""
        order, order_params = order_clause(order_by)  # a bad key fails before any query
        key, _ = self._flow_ref(flow_run_id)
        where, params = self._task_where(key, state, task_name, tags, where_text=where_text)
        page_params = (*params, *order_params, _count(limit, "limit"), _count(offset, "offset"))

        def page() -> list[Any]:
            # Choose the page's rowids first (often from an index alone), then read only those
            # rows in full: sorting 200k full rows to show 100 would cost far more.
            rowids = self._conn.execute(
                f"SELECT rowid FROM task_runs AS t{where} ORDER BY {order} LIMIT ? OFFSET ?",
                page_params,
            ).fetchall()
            if not rowids:
                return []
            return self._conn.execute(
                f"SELECT {TASK_COLUMNS} FROM json_each(?) AS j "
                "CROSS JOIN task_runs AS t ON t.rowid = j.value ORDER BY j.key",
                (orjson.dumps([r[0] for r in rowids]).decode(),),
            ).fetchall()

        return [task_dict(row) for row in self._retry(page)]

    def count_task_runs(
        self, flow_run_id: str, state: str | None = None, task_name: str | None = None,
        tags: Sequence[str] | None = None, where_text: str | None = None,
    ) -> int:
        key, _ = self._flow_ref(flow_run_id)
        where, params = self._task_where(key, state, task_name, tags, where_text=where_text)
        return int(self._one(f"SELECT COUNT(*) FROM task_runs AS t{where}", params)[0])

    def get_task_run(self, id_or_prefix: str) -> dict[str, Any]:
        """A task run, with ``states``: its state history, oldest first."""
        task_run_id = self._task_run_id(id_or_prefix)
        run = task_dict(
            self._one(f"SELECT {TASK_COLUMNS} FROM task_runs AS t WHERE t.id = ?", (task_run_id,))
        )
        stored = self._all(
            "SELECT seq, state_type, state_name, timestamp, message FROM state_history "
            "WHERE run_id = ? ORDER BY seq",
            (task_run_id,),
        )
        seq, created, start, end, stype, sname, message = self._one(
            "SELECT seq, created, start_time, end_time, state_type, state_name, message "
            "FROM task_runs WHERE id = ?",
            (task_run_id,),
        )
        # The store keeps no rows for the states the task run's own row records: put them back.
        history = {row[0]: tuple(row) for row in stored}
        seq = seq if isinstance(seq, int) else -1  # not a number: the row's own state is not shown
        if created is not None and 0 not in history and (seq > 0 or sname == "Pending"):
            history[0] = (0, "PENDING", "Pending", created, None)
        if start is not None and 1 not in history:
            history[1] = (1, "RUNNING", "Running", start, None if seq > 1 else message)
        if seq not in history and seq >= 0:
            history[seq] = (seq, stype, sname, end if end is not None else start, message)
        run["states"] = [
            {"seq": s, "state": t, "state_name": n, "timestamp": iso(ts), "message": m}
            for s, t, n, ts, m in (history[k] for k in sorted(history, key=_seq_order))
        ]
        return run

    def _task_counts(self, flow_key: int) -> dict[str, int]:
        # Served from the (flow_key, state_name) index alone.
        rows = self._all(
            "SELECT state_name, COUNT(*) FROM task_runs WHERE flow_key = ? "
            "GROUP BY state_name ORDER BY state_name",
            (flow_key,),
        )
        return {name or "Unknown": n for name, n in rows}

    def task_tags(self, flow_run_id: str, limit: int = 500) -> list[str]:
        """The tags a flow run's task runs have, sorted: read as the distinct tag lists of the
        ``task_runs_tags`` index, one seek each (runs share a few lists), never row by row."""
        key, _ = self._flow_ref(flow_run_id)
        lists = self._all(
            "WITH RECURSIVE v(x) AS ("
            " SELECT MIN(tags) FROM task_runs WHERE flow_key = ?1 AND tags IS NOT NULL"
            " UNION ALL SELECT (SELECT MIN(tags) FROM task_runs"
            "  WHERE flow_key = ?1 AND tags IS NOT NULL AND tags > x) FROM v WHERE x IS NOT NULL"
            ") SELECT x FROM v WHERE x IS NOT NULL LIMIT ?2",
            (key, _count(limit, "limit")),
        )
        found = {tag for (text,) in lists for tag in _list(loads(text)) if isinstance(tag, str)}
        return sorted(found)[:limit]

    def known_fields(self, flow_key: int, sample: int = 200) -> tuple[set[str], set[str]]:
        """The parameter names and result keys a flow run's task runs have, from the first
        ``sample`` of them (and of its completed ones): what a where expression or a sort key
        may name. Task runs of one task are alike, so a sample finds them all."""
        params: set[str] = set()
        results: set[str] = set()
        rows = self._all(
            "SELECT * FROM (SELECT parameters, NULL AS result FROM task_runs WHERE flow_key = ? LIMIT ?) AS p "
            "UNION ALL SELECT * FROM (SELECT NULL AS parameters, result FROM task_runs WHERE flow_key = ? "
            "AND state_type = 'COMPLETED' LIMIT ?) AS r",
            (flow_key, sample, flow_key, sample),
        )
        for parameters, result in rows:
            value = _dict(loads(parameters)) if parameters is not None else None
            params.update(value or ())
            value = loads(result) if result is not None else None
            if isinstance(value, dict):
                results.update(k for k in value if isinstance(k, str))
        return params, results

    def task_run_counts(self, flow_run_id: str) -> dict[str, int]:
        """Task runs of a flow run by state name, e.g. ``{"Completed": 9, "Failed": 1}``."""
        return self._task_counts(self._flow_ref(flow_run_id)[0])

    def iter_task_runs(self, flow_run_id: str, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every task run of a flow run in submission order, read ``batch`` rows at a time."""
        key, _ = self._flow_ref(flow_run_id)
        batch = max(1, _count(batch, "batch"))
        # Keyset paging on (created, rowid): each batch is an index seek, however deep.
        after: tuple[float, int] = (float("-inf"), -1)
        while True:
            rows = self._all(
                f"SELECT {TASK_COLUMNS}, t.rowid FROM task_runs AS t "
                "WHERE t.flow_key = ? AND (t.created, t.rowid) > (?, ?) "
                "ORDER BY t.created, t.rowid LIMIT ?",
                (key, *after, batch),
            )
            for row in rows:
                yield task_dict(row[:-1])
            if len(rows) < batch:
                return
            after = (rows[-1][13], rows[-1][-1])

    def task_run_ids(
        self, flow_run_id: str, task_name: str | None = None, where_text: str | None = None
    ) -> set[str]:
        """The ids of a flow run's task runs (of one task) that a where expression keeps."""
        key, _ = self._flow_ref(flow_run_id)
        where, params = self._task_where(key, None, task_name, where_text=where_text)
        return {row[0] for row in self._all(f"SELECT t.id FROM task_runs AS t{where}", params)}

    def task_name_counts(self, flow_run_id: str) -> dict[str, int]:
        """How many task runs a flow run has of each task, most first."""
        key, _ = self._flow_ref(flow_run_id)
        rows = self._all(
            "SELECT task_name, count(*) FROM task_runs WHERE flow_key = ? GROUP BY task_name "
            "ORDER BY count(*) DESC, task_name",
            (key,),
        )
        return {name if name is not None else "": n for name, n in rows}

    def throughput(self, flow_run_id: str, buckets: int = 60) -> list[dict[str, Any]]:
        """Task runs finished over the flow run, in up to ``buckets`` buckets of whole seconds.

        Each bucket: ``t`` (its start), ``count`` (task runs that ended in it) and
        ``per_second`` (count divided by the bucket's width).
        """
        key, _ = self._flow_ref(flow_run_id)
        buckets = max(1, _count(buckets, "buckets"))
        # Only end times that are times: in SQLite's order text and blobs sort above any number.
        lo, hi, start = self._one(
            "SELECT MIN(end_time), MAX(end_time), (SELECT start_time FROM flow_runs WHERE key = ?) "
            "FROM task_runs WHERE flow_key = ? AND end_time BETWEEN 0 AND ?",
            (key, key, MAX_TIMESTAMP),
        )
        if lo is None:
            return []
        start = _time(start)
        lo = lo if start is None else min(lo, start)
        width = float(int((hi - lo) / buckets) + 1)
        n = min(buckets, int((hi - lo) / width) + 1)
        counts = dict(
            self._all(
                "SELECT MIN(CAST((end_time - ?) / ? AS INTEGER), ?) AS bucket, COUNT(*) "
                "FROM task_runs WHERE flow_key = ? AND end_time BETWEEN 0 AND ? GROUP BY bucket",
                (lo, width, n - 1, key, MAX_TIMESTAMP),
            )
        )
        return [
            {"t": iso(lo + i * width), "count": counts.get(i, 0),
             "per_second": counts.get(i, 0) / width}
            for i in range(n)
        ]

    # -- logs ------------------------------------------------------------------------------

    def logs(
        self,
        flow_run_id: str | None = None,
        task_run_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Log lines, oldest first; a flow run's include those of its task runs."""
        clauses: list[str] = []
        params: list[Any] = []
        if flow_run_id is not None:
            clauses.append("flow_run_id = ?")
            params.append(self._flow_ref(flow_run_id)[1])
        if task_run_id is not None:
            clauses.append("run_id = ?")
            params.append(self._task_run_id(task_run_id))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._all(
            f"SELECT {LOG_COLUMNS} FROM logs{where} ORDER BY timestamp, seq LIMIT ? OFFSET ?",
            (*params, -1 if limit is None else _count(limit, "limit"), _count(offset, "offset")),
        )
        return [log_dict(row) for row in rows]

    # -- artifacts ------------------------------------------------------------------------------

    def list_artifacts(
        self,
        key: str | None = None,
        flow_run_id: str | None = None,
        task_run_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Artifacts, newest first: of one key, flow run (its task runs' included) or task run."""
        where, params = self._artifact_where(key, flow_run_id, task_run_id)
        rows = self._all(
            f"SELECT {ARTIFACT_COLUMNS} FROM artifacts{where} ORDER BY created DESC, rowid DESC "
            "LIMIT ? OFFSET ?",
            (*params, _count(limit, "limit"), _count(offset, "offset")),
        )
        return [artifact_dict(row) for row in rows]

    def count_artifacts(
        self, key: str | None = None, flow_run_id: str | None = None, task_run_id: str | None = None
    ) -> int:
        where, params = self._artifact_where(key, flow_run_id, task_run_id)
        return int(self._one(f"SELECT COUNT(*) FROM artifacts{where}", params)[0])

    def _artifact_where(
        self, key: str | None, flow_run_id: str | None, task_run_id: str | None
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if key is not None:
            clauses.append("key = ?")
            params.append(key)
        if flow_run_id is not None:
            clauses.append("flow_run_id = ?")
            params.append(self._flow_ref(flow_run_id)[1])
        if task_run_id is not None:
            clauses.append("task_run_id = ?")
            params.append(self._task_run_id(task_run_id))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def get_artifact(self, key_or_id: str) -> dict[str, Any]:
        """An artifact by id (or unique id prefix), else the latest of a key, with ``versions``:
        how many artifacts have its key."""
        ident = str(key_or_id).strip()
        found = self._matches("artifacts", ident)
        if len(found) > 1:
            raise RunNotFoundError(_ambiguous(ident, [("artifact", i) for i in found]))
        if found:
            row = self._one(f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE id = ?", (found[0],))
        else:
            row = self._one(
                f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE key = ? "
                "ORDER BY created DESC, rowid DESC LIMIT 1",
                (ident,),
            )
        if row is None:
            raise RunNotFoundError(f"no artifact with key or id {ident!r}")
        artifact = artifact_dict(row)
        artifact["versions"] = (
            self.count_artifacts(key=artifact["key"]) if artifact["key"] is not None else 1
        )
        return artifact


def _seq_order(seq: Any) -> tuple[bool, Any]:
    # Numbers in order, then anything a bad writer stored as a seq, by its text.
    return (False, seq) if isinstance(seq, int) else (True, str(seq))


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _ambiguous(ident: str, found: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{kind} {run_id}" for kind, run_id in found[:3])
    return f"id prefix {ident!r} is ambiguous: it matches {shown}; give more characters"
