"""The tracking store: one SQLite file holding every flow run, task run, state change and log line.

Used by the embedded Recorder (the default sink), by the CLI, and by the tracking server, so
there is exactly one implementation of how events become rows.

Writing (``Store.write``), one batch at a time, from one writer thread per process:

1. Collapse in Python. The batch is folded into one row per run: the event with the highest
   ``seq`` gives the current state; set-once fields (task name, map index, parents) come from
   whichever event carries them; ``created`` is the earliest timestamp seen and ``start_time``
   the earliest RUNNING one. A task run's PENDING, RUNNING and COMPLETED in one batch cost one
   upsert, not three.
2. One transaction (``BEGIN IMMEDIATE``) runs four ``executemany`` calls: upsert flow runs,
   upsert task runs, ``INSERT OR IGNORE`` into the state history and the logs.
   A task run's history keeps only the states its row cannot tell (see ``_collapse``);
   ``queries.get_task_run`` puts the rest back from the row.
3. The upserts are order-independent: a stored row's state columns change only when the
   incoming ``seq`` is greater than the stored one, set-once columns use COALESCE, times use
   MIN/MAX. History and logs are keyed ``(run_id, seq)``. So a batch applied twice, split in
   two, or arriving before an earlier one leaves the same rows.

Concurrency: WAL journal (readers never block the writer), ``synchronous=NORMAL`` (a power cut
may lose the last commits, never corrupt the file), a busy timeout, and on top a retry loop
with jittered backoff, because two flow processes and a server may share the file and SQLite
reports ``database is locked`` without waiting in some cases (e.g. while the schema is made).
A lock that outlasts the retry budget surfaces as ``TrackingError``, never as sqlite's error.

Reading: every read returns plain JSON-able dicts (see ``queries``). Paging is done in SQL with
the rowids of one page chosen first (from an index where possible) and only then its full rows
read, so any page of a 200,000-task flow run costs milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import orjson

from prefect_like.errors import TrackingError
from prefect_like.states import FINAL_STATE_NAMES, FINAL_TYPES, STATE_TYPES
from prefect_like.tracking import queries as q
from prefect_like.tracking.events import FLOW, HEARTBEAT, LOG, OVERRIDE_SEQ, TASK, Event

T = TypeVar("T")

SCHEMA_VERSION = 1

# The states a run is still live in, as SQL lists (constants of the vocabulary, no user text).
_LIVE_TYPES = ", ".join(f"'{t}'" for t in STATE_TYPES if t not in FINAL_TYPES)
_FINAL_NAMES = ", ".join(f"'{n}'" for n in sorted(FINAL_STATE_NAMES))

_SCHEMA = """
CREATE TABLE flow_runs (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT,
    flow_name TEXT,
    runner TEXT,
    parent_flow_run_id TEXT,
    parent_task_run_id TEXT,
    parameters TEXT,
    seq INTEGER NOT NULL,
    state_type TEXT,
    state_name TEXT,
    message TEXT,
    created REAL,
    start_time REAL,
    end_time REAL,
    duration REAL,
    task_runs TEXT,
    error TEXT,
    heartbeat REAL
);
CREATE INDEX flow_runs_created ON flow_runs (created);
CREATE INDEX flow_runs_start_time ON flow_runs (start_time);
CREATE INDEX flow_runs_flow_name ON flow_runs (flow_name, created);

CREATE TABLE task_runs (
    id TEXT PRIMARY KEY,
    flow_key INTEGER,
    task_name TEXT,
    map_index INTEGER,
    name TEXT,
    tags TEXT,
    seq INTEGER NOT NULL,
    state_type TEXT,
    state_name TEXT,
    message TEXT,
    run_count INTEGER,
    parameters TEXT,
    result TEXT,
    error TEXT,
    created REAL NOT NULL,
    start_time REAL,
    end_time REAL,
    duration REAL
);
-- Few indexes: every index is paid for by every upsert of a 200,000-run ingest. Counts and
-- the state filter use the first, default paging the second, the task-name filter and the
-- dashboard's list of task names the third. Filters by state type and the throughput series
-- scan one flow run's rows, still well under a second.
CREATE INDEX task_runs_state_name ON task_runs (flow_key, state_name);
CREATE INDEX task_runs_created ON task_runs (flow_key, created);
CREATE INDEX task_runs_task_name ON task_runs (flow_key, task_name);

CREATE TABLE state_history (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state_type TEXT,
    state_name TEXT,
    timestamp REAL,
    message TEXT,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE logs (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    flow_run_id TEXT,
    task_run_id TEXT,
    level TEXT,
    logger TEXT,
    timestamp REAL,
    message TEXT,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX logs_flow_run ON logs (flow_run_id, timestamp);
"""


def _newer(table: str, column: str) -> str:
    return (
        f"{column} = CASE WHEN excluded.seq > {table}.seq "
        f"THEN excluded.{column} ELSE {table}.{column} END"
    )


def _newer_known(table: str, column: str) -> str:
    # Like _newer, but an event that lacks the value does not erase a known one.
    return (
        f"{column} = CASE WHEN excluded.seq > {table}.seq "
        f"THEN COALESCE(excluded.{column}, {table}.{column}) "
        f"ELSE COALESCE({table}.{column}, excluded.{column}) END"
    )


def _once(table: str, column: str) -> str:
    return f"{column} = COALESCE({table}.{column}, excluded.{column})"


def _extreme(fn: str, table: str, column: str) -> str:
    # SQLite's scalar MIN/MAX return NULL if either side is NULL; COALESCE both sides first.
    return (
        f"{column} = {fn}(COALESCE({table}.{column}, excluded.{column}), "
        f"COALESCE(excluded.{column}, {table}.{column}))"
    )


_TASK_INSERT = f"""
INSERT INTO task_runs (id, flow_key, task_name, map_index, name, tags, seq, state_type,
    state_name, message, end_time, result, error, duration, parameters, run_count, created,
    start_time)
VALUES ({", ".join("?" * 18)})
ON CONFLICT (id) DO UPDATE SET
    {", ".join(_once("task_runs", c) for c in ("flow_key", "task_name", "map_index", "name", "tags"))},
    {", ".join(_newer("task_runs", c) for c in ("state_type", "state_name", "message", "end_time", "result", "error"))},
    {", ".join(_newer_known("task_runs", c) for c in ("duration", "parameters", "run_count"))},
    {_extreme("MIN", "task_runs", "created")},
    {_extreme("MIN", "task_runs", "start_time")},
    seq = MAX(task_runs.seq, excluded.seq)
"""

_FLOW_INSERT = f"""
INSERT INTO flow_runs (id, parent_flow_run_id, name, flow_name, runner, parameters,
    parent_task_run_id, seq, state_type, state_name, message, end_time, task_runs, error,
    duration, created, start_time, heartbeat)
VALUES ({", ".join("?" * 18)})
ON CONFLICT (id) DO UPDATE SET
    {", ".join(_once("flow_runs", c) for c in ("parent_flow_run_id", "name", "flow_name", "runner", "parameters", "parent_task_run_id"))},
    {", ".join(_newer("flow_runs", c) for c in ("state_type", "state_name", "message", "end_time", "error"))},
    {", ".join(_newer_known("flow_runs", c) for c in ("task_runs", "duration"))},
    {_extreme("MIN", "flow_runs", "created")},
    {_extreme("MIN", "flow_runs", "start_time")},
    {_extreme("MAX", "flow_runs", "heartbeat")},
    seq = MAX(flow_runs.seq, excluded.seq)
"""

_HISTORY_INSERT = "INSERT OR IGNORE INTO state_history VALUES (?, ?, ?, ?, ?, ?)"
_LOG_INSERT = "INSERT OR IGNORE INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def dumps(value: Any) -> str | None:
    """JSON text for a column (None stays SQL NULL); anything odd is stored as its str()."""
    if value is None:
        return None
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        # e.g. an int wider than 64 bits, which orjson refuses and json does not
        return json.dumps(value, default=str)


def _is_locked(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _collapse(
    events: Sequence[Event] | Sequence[Sequence[Any]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Fold a batch into (flow rows, task rows, history rows, log rows) ready for executemany.

    This loop runs once per event (600k times for a 200k-task map), so it works on plain lists
    indexed by literal slot numbers; the layouts are spelled out below.
    """
    final_types = FINAL_TYPES
    final_names = FINAL_STATE_NAMES
    # task slots: 0 flow_run_id, 1 task_name, 2 map_index, 3 name, 4 tags, 5 seq, 6 state_type,
    # 7 state_name, 8 message, 9 end_time, 10 result, 11 error, 12 duration, 13 parameters,
    # 14 parameters' seq, 15 run_count, 16 run_count's seq, 17 created, 18 start_time
    tasks: dict[str, list[Any]] = {}
    # flow slots: 0 parent_flow_run_id, 1 name, 2 flow_name, 3 runner, 4 parameters,
    # 5 parent_task_run_id, 6 seq, 7 state_type, 8 state_name, 9 message, 10 end_time,
    # 11 task_runs, 12 error, 13 duration, 14 created, 15 start_time, 16 heartbeat
    flows: dict[str, list[Any]] = {}
    history: list[tuple[Any, ...]] = []
    logs: list[tuple[Any, ...]] = []
    add_history = history.append
    for kind, run_id, seq, flow_run_id, ts, stype, sname, message, data in events:
        if kind == TASK:
            # A task run's Pending (seq 0), first Running (seq 1) and final state are what its
            # row holds (created, start_time, end_time and state); only the states between
            # (retries) need rows of their own. Most task runs then add no history rows.
            if not (
                (seq == 0 and sname == "Pending")
                or (seq == 1 and sname == "Running")
                or stype in final_types
                or sname in final_names
            ):
                add_history((run_id, seq, stype, sname, ts, message))
            r = tasks.get(run_id)
            if r is None:
                r = tasks[run_id] = [flow_run_id, None, None, None, None, -1, None, None, None,
                                     None, None, None, None, None, -1, None, -1, ts, None]
            else:
                if ts < r[17]:
                    r[17] = ts
                if r[0] is None:
                    r[0] = flow_run_id
            if stype == "RUNNING" and (r[18] is None or ts < r[18]):
                r[18] = ts
            if data:
                if "task_name" in data:
                    r[1] = data["task_name"]
                    r[2] = data.get("map_index")
                    r[3] = data.get("name")
                    r[4] = data.get("tags")
                # A final event that says what its run's Pending and Running said.
                created = data.get("created")
                if created is not None and created < r[17]:
                    r[17] = created
                started = data.get("started")
                if started is not None and (r[18] is None or started < r[18]):
                    r[18] = started
                if "parameters" in data and seq > r[14]:
                    r[13] = data["parameters"]
                    r[14] = seq
                if "run_count" in data and seq > r[16]:
                    r[15] = data["run_count"]
                    r[16] = seq
            if seq > r[5]:
                r[5] = seq
                r[6] = stype
                r[7] = sname
                r[8] = message
                r[9] = ts if (stype in final_types or sname in final_names) else None
                if data:
                    r[10] = data.get("result")
                    r[11] = data.get("error")
                    r[12] = data.get("duration")
                else:
                    r[10] = r[11] = r[12] = None
        elif kind == LOG:
            # A flow's own log lines carry its id as run_id and no other flow run id.
            if flow_run_id is None or flow_run_id == run_id:
                flow_id, task_id = run_id, None
            else:
                flow_id, task_id = flow_run_id, run_id
            logger = data.get("logger") if data else None
            logs.append((run_id, seq, flow_id, task_id, sname, logger, ts, message))
        elif kind in (FLOW, HEARTBEAT):
            f = flows.get(run_id)
            if f is None:
                f = flows[run_id] = [None, None, None, None, None, None, -1, None, None, None,
                                     None, None, None, None, None, None, None]
            if kind == HEARTBEAT:
                if f[16] is None or ts > f[16]:
                    f[16] = ts
                continue
            add_history((run_id, seq, stype, sname, ts, message))
            if f[0] is None:
                f[0] = flow_run_id
            if f[14] is None or ts < f[14]:
                f[14] = ts
            if stype == "RUNNING" and (f[15] is None or ts < f[15]):
                f[15] = ts
            if data and "flow_name" in data:
                f[1] = data.get("name")
                f[2] = data["flow_name"]
                f[3] = data.get("runner")
                f[4] = data.get("parameters")
                f[5] = data.get("parent_task_run_id")
            if seq > f[6]:
                f[6] = seq
                f[7] = stype
                f[8] = sname
                f[9] = message
                f[10] = ts if (stype in final_types or sname in final_names) else None
                f[11] = data.get("task_runs") if data else None
                f[12] = data.get("error") if data else None
                f[13] = data.get("duration") if data else None
        else:
            raise TrackingError(f"unknown event kind {kind!r} for run {run_id!r}")

    task_rows = [
        (run_id, r[0], r[1], r[2], r[3], dumps(r[4]) if r[4] else None, r[5], r[6], r[7],
         r[8], r[9], dumps(r[10]), dumps(r[11]), r[12], dumps(r[13]), r[15], r[17], r[18])
        for run_id, r in tasks.items()
    ]
    flow_rows = [
        (run_id, f[0], f[1], f[2], f[3], dumps(f[4]), f[5], f[6], f[7], f[8], f[9], f[10],
         dumps(f[11]), dumps(f[12]), f[13], f[14], f[15], f[16])
        for run_id, f in flows.items()
    ]
    return flow_rows, task_rows, history, logs


class Store(q.Reads):
    """The SQLite tracking store. Thread-safe: one connection, guarded by a lock.

    The read methods (``list_flow_runs``, ``get_task_run``, ...) live in ``queries.Reads``.
    """

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 5.0, retry_for: float = 120.0
    ) -> None:
        self.path = Path(path).expanduser()
        self.retry_for = retry_for
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise TrackingError(f"cannot open the tracking database {self.path}: {exc}") from exc
        self._retry(self._setup)

    # -- connection ------------------------------------------------------------------------

    def _setup(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: keeps the indexes hot during ingest
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise TrackingError(
                f"{self.path} has schema version {version}, newer than this prefect-like "
                f"understands ({SCHEMA_VERSION}); upgrade prefect-like"
            )
        # Checked again inside the write lock: another process may have just created it.
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the connection lock, retrying with backoff while the file is locked."""
        delay = 0.005
        deadline = time.monotonic() + self.retry_for
        while True:
            try:
                with self._lock:
                    return fn()
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc):
                    raise TrackingError(f"tracking database error: {exc}") from exc
                if time.monotonic() > deadline:
                    raise TrackingError(
                        f"the tracking database {self.path} stayed locked for "
                        f"{self.retry_for:.0f} s; is another process holding it?"
                    ) from exc
            except sqlite3.Error as exc:
                raise TrackingError(f"tracking database error: {exc}") from exc
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._retry(lambda: self._conn.execute(sql, params).fetchall())

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._retry(lambda: self._conn.execute(sql, params).fetchone())

    def close(self) -> None:
        with self._lock:
            # Cheap, and keeps the planner's statistics fresh for the next reader; if another
            # writer holds the file, the statistics can wait for the next close.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA optimize")
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- crash detection ---------------------------------------------------------------------

    def mark_crashed(self, stale_after: float) -> int:
        """End CRASHED every live flow run silent for ``stale_after`` seconds, and its live task runs.

        A live flow run sends a heartbeat every few seconds (see the Recorder); one that stopped
        (its process was killed) would otherwise look RUNNING forever. The decision takes
        ``OVERRIDE_SEQ``, so nothing the run might still send changes it. Returns how many flow
        runs it ended.
        """
        now = time.time()
        cutoff = now - stale_after

        def transaction() -> int:
            conn = self._conn
            stale = conn.execute(
                "SELECT key, id, COALESCE(heartbeat, start_time, created) FROM flow_runs "
                f"WHERE state_type IN ({_LIVE_TYPES}) AND seq >= 0 "
                "AND COALESCE(heartbeat, start_time, created) < ?",
                (cutoff,),
            ).fetchall()
            if not stale:
                return 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                for key, flow_run_id, last_seen in stale:
                    message = (
                        f"Crashed: the flow process stopped sending heartbeats "
                        f"{now - last_seen:.0f} s ago (killed, or its machine went away)"
                    )
                    conn.execute(
                        "UPDATE flow_runs SET state_type = 'CRASHED', state_name = 'Crashed', "
                        "message = ?, end_time = ?, seq = ? WHERE key = ? AND seq < ?",
                        (message, now, OVERRIDE_SEQ, key, OVERRIDE_SEQ),
                    )
                    conn.execute(
                        "INSERT OR IGNORE INTO state_history VALUES (?, ?, 'CRASHED', 'Crashed', ?, ?)",
                        (flow_run_id, OVERRIDE_SEQ, now, message),
                    )
                    conn.execute(
                        "UPDATE task_runs SET state_type = 'CRASHED', state_name = 'Crashed', "
                        "message = ?, end_time = ?, seq = ? WHERE flow_key = ? "
                        f"AND state_type IN ({_LIVE_TYPES}) AND state_name NOT IN ({_FINAL_NAMES})",
                        ("Crashed: its flow run's process stopped", now, OVERRIDE_SEQ, key),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return len(stale)

        return self._retry(transaction)

    # -- writing ---------------------------------------------------------------------------

    def write(self, events: Sequence[Event]) -> None:
        """Store a batch of events in one transaction; idempotent and order-independent."""
        if not events:
            return
        try:
            flow_rows, task_rows, history, logs = _collapse(events)
        except (TypeError, ValueError) as exc:
            raise TrackingError(f"malformed event batch: {exc}") from exc

        def transaction() -> None:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now, so busy_timeout applies
            try:
                if flow_rows:
                    conn.executemany(_FLOW_INSERT, flow_rows)
                if task_rows:
                    keys = self._flow_keys(conn, {row[1] for row in task_rows})
                    conn.executemany(
                        _TASK_INSERT, [(r[0], keys.get(r[1]), *r[2:]) for r in task_rows]
                    )
                if history:
                    conn.executemany(_HISTORY_INSERT, history)
                if logs:
                    conn.executemany(_LOG_INSERT, logs)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed BEGIN leaves nothing to roll back
                    conn.execute("ROLLBACK")
                raise

        self._retry(transaction)

    @staticmethod
    def _flow_keys(conn: sqlite3.Connection, flow_run_ids: set[str | None]) -> dict[str, int]:
        """The integer keys of these flow runs, making a placeholder row for any not seen yet.

        Task rows refer to their flow run by this key, not by its 36-character id: it keeps the
        five (flow run, ...) indexes small, which is most of what a 200k-row ingest costs.
        A placeholder (seq -1) takes the flow run's own events whenever they arrive.
        """
        ids = [(i,) for i in flow_run_ids if i is not None]
        conn.executemany("INSERT INTO flow_runs (id, seq) VALUES (?, -1) ON CONFLICT DO NOTHING", ids)
        keys: dict[str, int] = {}
        for (flow_run_id,) in ids:
            (keys[flow_run_id],) = conn.execute(
                "SELECT key FROM flow_runs WHERE id = ?", (flow_run_id,)
            ).fetchone()
        return keys
