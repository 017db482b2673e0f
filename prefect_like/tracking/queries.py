"""The read side of the store: SQL fragments built from user input, and rows turned into dicts.

Everything a user can type (a state, a sort key, a result key) becomes either a bound parameter
or one of a fixed set of SQL fragments chosen here; no user text is ever pasted into SQL. The
dicts built here are the stable shapes the CLI's ``--json`` and the tracking API return: plain
JSON-able values, times as ISO-8601 UTC strings, ``duration`` in seconds.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from prefect_like.errors import RunNotFoundError
from prefect_like.states import NAMES, STATE_TYPES, is_final

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
ORDER_KEYS = (*_ORDER_COLUMNS, "result", "result.<key>")

# Task rows are always read as ``task_runs AS t``; they refer to their flow run by its key.
TASK_COLUMNS = (
    "t.id, (SELECT f.id FROM flow_runs AS f WHERE f.key = t.flow_key), t.task_name, t.name, "
    "t.map_index, t.tags, t.state_type, t.state_name, t.message, t.run_count, t.parameters, "
    "t.result, t.error, t.created, t.start_time, t.end_time, t.duration"
)
# The flow run's key comes last: it is used to count its task runs, and is not shown.
FLOW_COLUMNS = (
    "id, name, flow_name, state_type, state_name, message, start_time, end_time, duration, "
    "parameters, task_runs, parent_flow_run_id, parent_task_run_id, error, heartbeat, key"
)
LOG_COLUMNS = "run_id, seq, flow_run_id, task_run_id, level, logger, timestamp, message"


def iso(ts: float | None) -> str | None:
    """An epoch timestamp as an ISO-8601 UTC string (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat()


def loads(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


def _duration(start: float | None, end: float | None, stored: float | None) -> float | None:
    if start is not None and end is not None:
        return round(end - start, 6)
    return stored


def task_dict(row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    (id_, flow_run_id, task_name, name, map_index, tags, state_type, state_name, message,
     run_count, parameters, result, error, created, start, end, duration) = row
    return {
        "id": id_,
        "flow_run_id": flow_run_id,
        "task_name": task_name,
        "name": name,
        "map_index": map_index,
        "tags": loads(tags) or [],
        "state": state_type,
        "state_name": state_name,
        "message": message,
        "run_count": run_count,
        "parameters": loads(parameters),
        "result": loads(result),
        "error": loads(error),
        "created": iso(created),
        "start_time": iso(start),
        "end_time": iso(end),
        "duration": _duration(start, end, duration),
    }


def flow_dict(row: tuple[Any, ...], counts: dict[str, int]) -> dict[str, Any]:
    (id_, name, flow_name, state_type, state_name, message, start, end, duration, parameters,
     _stored_counts, parent_flow_run_id, parent_task_run_id, error, heartbeat, _key) = row
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
        "parameters": loads(parameters) or {},
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
        expr = "json_extract(result, '$')"
    elif key.startswith("result."):
        parts = key.split(".")[1:]
        bad = [p for p in parts if not RESULT_KEY.match(p)]
        if bad:
            raise ValueError(
                f"invalid result key {key[len('result.'):]!r} in order_by; "
                "a key is letters, digits and underscores, not starting with a digit"
            )
        # The path is a bound parameter too; the regex only keeps it a plain object path.
        expr = "json_extract(result, ?)"
        params.append("$." + ".".join(parts))
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
        found = [("flow run", i) for i in flows] + [("task run", i) for i in tasks]
        if len(found) == 1:
            return ("flow" if flows else "task"), found[0][1]
        if found:
            raise RunNotFoundError(_ambiguous(ident, found))
        raise RunNotFoundError(f"no flow run or task run with id {ident!r}")

    # -- flow runs -------------------------------------------------------------------------

    def _flow_where(self, state: str | None, flow_name: str | None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if state is not None:
            names = {r[0] for r in self._all("SELECT DISTINCT state_name FROM flow_runs") if r[0]}
            clause, state_params = state_clause(state, names)
            clauses.append(clause)
            params.extend(state_params)
        if flow_name is not None:
            clauses.append("flow_name = ?")
            params.append(flow_name)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _flow(self, row: tuple[Any, ...]) -> dict[str, Any]:
        state_type, state_name, stored_counts, key = row[3], row[4], row[10], row[-1]
        # A final run's counts are frozen in its terminal event; a live one's are counted now.
        if stored_counts is not None and is_final(state_type, state_name):
            counts = loads(stored_counts)
        else:
            counts = self._task_counts(key)
        return flow_dict(row, counts)

    def list_flow_runs(
        self,
        state: str | None = None,
        flow_name: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Flow runs, newest first."""
        where, params = self._flow_where(state, flow_name)
        rows = self._all(
            f"SELECT {FLOW_COLUMNS} FROM flow_runs{where} "
            "ORDER BY created DESC, key DESC LIMIT ? OFFSET ?",
            (*params, _count(limit, "limit"), _count(offset, "offset")),
        )
        return [self._flow(row) for row in rows]

    def count_flow_runs(self, state: str | None = None, flow_name: str | None = None) -> int:
        where, params = self._flow_where(state, flow_name)
        return int(self._one(f"SELECT COUNT(*) FROM flow_runs{where}", params)[0])

    def get_flow_run(self, id_or_prefix: str) -> dict[str, Any]:
        key, _ = self._flow_ref(id_or_prefix)
        return self._flow(self._one(f"SELECT {FLOW_COLUMNS} FROM flow_runs WHERE key = ?", (key,)))

    # -- task runs -------------------------------------------------------------------------

    def _task_where(
        self, flow_key: int, state: str | None, task_name: str | None
    ) -> tuple[str, list[Any]]:
        clauses = ["flow_key = ?"]
        params: list[Any] = [flow_key]
        if state is not None:
            names = {
                r[0]
                for r in self._all(
                    "SELECT DISTINCT state_name FROM task_runs WHERE flow_key = ?", (flow_key,)
                )
                if r[0]
            }
            clause, state_params = state_clause(state, names)
            clauses.append(clause)
            params.extend(state_params)
        if task_name is not None:
            clauses.append("task_name = ?")
            params.append(task_name)
        return " WHERE " + " AND ".join(clauses), params

    def list_task_runs(
        self,
        flow_run_id: str,
        state: str | None = None,
        task_name: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str | None = None,
    ) -> list[dict[str, Any]]:
        """One page of a flow run's task runs; submission order unless ``order_by`` says else."""
        order, order_params = order_clause(order_by)  # a bad key fails before any query
        key, _ = self._flow_ref(flow_run_id)
        where, params = self._task_where(key, state, task_name)
        page_params = (*params, *order_params, _count(limit, "limit"), _count(offset, "offset"))

        def page() -> list[Any]:
            # Choose the page's rowids first (often from an index alone), then read only those
            # rows in full: sorting 200k full rows to show 100 would cost far more.
            rowids = self._conn.execute(
                f"SELECT rowid FROM task_runs{where} ORDER BY {order} LIMIT ? OFFSET ?",
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
        self, flow_run_id: str, state: str | None = None, task_name: str | None = None
    ) -> int:
        key, _ = self._flow_ref(flow_run_id)
        where, params = self._task_where(key, state, task_name)
        return int(self._one(f"SELECT COUNT(*) FROM task_runs{where}", params)[0])

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
        if created is not None and 0 not in history and (seq > 0 or sname == "Pending"):
            history[0] = (0, "PENDING", "Pending", created, None)
        if start is not None and 1 not in history:
            history[1] = (1, "RUNNING", "Running", start, None if seq > 1 else message)
        if seq not in history and seq >= 0:
            history[seq] = (seq, stype, sname, end if end is not None else start, message)
        run["states"] = [
            {"seq": s, "state": t, "state_name": n, "timestamp": iso(ts), "message": m}
            for s, t, n, ts, m in (history[k] for k in sorted(history))
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

    def throughput(self, flow_run_id: str, buckets: int = 60) -> list[dict[str, Any]]:
        """Task runs finished over the flow run, in up to ``buckets`` buckets of whole seconds.

        Each bucket: ``t`` (its start), ``count`` (task runs that ended in it) and
        ``per_second`` (count divided by the bucket's width).
        """
        key, _ = self._flow_ref(flow_run_id)
        buckets = max(1, _count(buckets, "buckets"))
        lo, hi, start = self._one(
            "SELECT MIN(end_time), MAX(end_time), (SELECT start_time FROM flow_runs WHERE key = ?) "
            "FROM task_runs WHERE flow_key = ? AND end_time IS NOT NULL",
            (key, key),
        )
        if lo is None:
            return []
        lo = lo if start is None else min(lo, start)
        width = float(int((hi - lo) / buckets) + 1)
        n = min(buckets, int((hi - lo) / width) + 1)
        counts = dict(
            self._all(
                "SELECT MIN(CAST((end_time - ?) / ? AS INTEGER), ?) AS bucket, COUNT(*) "
                "FROM task_runs WHERE flow_key = ? AND end_time IS NOT NULL GROUP BY bucket",
                (lo, width, n - 1, key),
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


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _ambiguous(ident: str, found: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{kind} {run_id}" for kind, run_id in found[:3])
    return f"id prefix {ident!r} is ambiguous: it matches {shown}; give more characters"
