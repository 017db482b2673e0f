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

Crashes (``mark_crashed``, called by the server and by every embedded reader): a live flow run
whose last sign of life (``heartbeat``: the latest of its heartbeats and of every event of it and
its task runs) is older than its own heartbeat timeout, which its first event carries, is ended
CRASHED as of that last sign of life; its task runs that were running end Crashed, those that
never started Cancelled. It is a verdict, not a fact: anything the run sends later (a late
heartbeat after SIGCONT, a spill file delivered after an outage) withdraws it, and the run's own
events win. See "verdicts from silence" below; the flow run's history records both.

Opening a file checks it before anything else (``schema``): a file that is not a prefect-like
store, one made by a newer version, or one that cannot be written is refused in one line and left
untouched; an older one is migrated in one transaction.

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
import math
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

import orjson

from prefect_like.errors import TrackingError
from prefect_like.states import (
    DEFAULT_NAMES,
    FINAL_STATE_NAMES,
    FINAL_TYPES,
    STATE_TYPES,
    StateType,
)
from prefect_like.tracking import queries as q
from prefect_like.tracking import schema
from prefect_like.tracking.events import ARTIFACT, FLOW, HEARTBEAT, LOG, METRIC, SWEEP, TASK, Event
from prefect_like.tracking.sweep_reads import SweepReads
from prefect_like.tracking.trial_reads import TrialReads

T = TypeVar("T")

# The states a run is still live in, as SQL lists (constants of the vocabulary, no user text).
_LIVE_TYPES = ", ".join(f"'{t}'" for t in STATE_TYPES if t not in FINAL_TYPES)
_FINAL_NAMES = ", ".join(f"'{n}'" for n in sorted(FINAL_STATE_NAMES))


def _wins(table: str) -> str:
    # The incoming event replaces the stored state: it is newer, or the stored state is a verdict
    # of the store made at this seq (``judged``: see ``_judge``), which the run's own event beats.
    return f"(excluded.seq > {table}.seq OR (excluded.seq = {table}.seq AND {table}.judged IS NOT NULL))"


def _newer(table: str, column: str) -> str:
    return f"{column} = CASE WHEN {_wins(table)} THEN excluded.{column} ELSE {table}.{column} END"


def _newer_known(table: str, column: str) -> str:
    # Like _newer, but an event that lacks the value does not erase a known one.
    return (
        f"{column} = CASE WHEN {_wins(table)} "
        f"THEN COALESCE(excluded.{column}, {table}.{column}) "
        f"ELSE COALESCE({table}.{column}, excluded.{column}) END"
    )


def _unjudged(table: str) -> str:
    return f"judged = CASE WHEN {_wins(table)} THEN NULL ELSE {table}.judged END"


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
    {_unjudged("task_runs")},
    seq = MAX(task_runs.seq, excluded.seq)
"""

_FLOW_INSERT = f"""
INSERT INTO flow_runs (id, parent_flow_run_id, name, flow_name, runner, parameters,
    parent_task_run_id, seq, state_type, state_name, message, end_time, task_runs, error,
    duration, created, start_time, heartbeat, heartbeat_timeout, tags, heard)
VALUES ({", ".join("?" * 21)})
ON CONFLICT (id) DO UPDATE SET
    {", ".join(_once("flow_runs", c) for c in ("parent_flow_run_id", "name", "flow_name", "runner", "parameters", "parent_task_run_id", "heartbeat_timeout", "tags"))},
    {", ".join(_newer("flow_runs", c) for c in ("state_type", "state_name", "message", "end_time", "error"))},
    {", ".join(_newer_known("flow_runs", c) for c in ("task_runs", "duration"))},
    {_extreme("MIN", "flow_runs", "created")},
    {_extreme("MIN", "flow_runs", "start_time")},
    {_extreme("MAX", "flow_runs", "heartbeat")},
    {_extreme("MAX", "flow_runs", "heard")},
    {_unjudged("flow_runs")},
    seq = MAX(flow_runs.seq, excluded.seq)
"""

_HISTORY_INSERT = "INSERT OR IGNORE INTO state_history VALUES (?, ?, ?, ?, ?, ?)"
_LOG_INSERT = "INSERT OR IGNORE INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_METRIC_INSERT = "INSERT OR IGNORE INTO metrics VALUES (?, ?, ?, ?, ?, ?)"
_SWEEP_INSERT = "INSERT OR IGNORE INTO sweeps VALUES (?, ?, ?, ?)"
_SWEEP_RUN_INSERT = "INSERT OR IGNORE INTO sweep_runs VALUES (?, ?, ?, ?)"
# An artifact's payload (and a description given with it) is the latest update's; the rest is
# set once, whichever of its events arrives first.
_ARTIFACT_INSERT = f"""
INSERT INTO artifacts (id, key, type, description, data, flow_run_id, task_run_id, seq, created, updated)
VALUES ({", ".join("?" * 10)})
ON CONFLICT (id) DO UPDATE SET
    {", ".join(_once("artifacts", c) for c in ("key", "type", "flow_run_id", "task_run_id"))},
    description = CASE WHEN excluded.seq > artifacts.seq
        THEN COALESCE(excluded.description, artifacts.description)
        ELSE COALESCE(artifacts.description, excluded.description) END,
    data = CASE WHEN excluded.seq > artifacts.seq THEN excluded.data ELSE artifacts.data END,
    {_extreme("MIN", "artifacts", "created")},
    {_extreme("MAX", "artifacts", "updated")},
    seq = MAX(artifacts.seq, excluded.seq)
"""


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


def _flow_slots() -> list[Any]:
    slots: list[Any] = [None] * 19
    slots[6] = -1  # seq: below any event's, so a placeholder takes the first state that comes
    return slots


def _seconds(value: Any) -> float | None:
    """A flow run's heartbeat timeout as its first event gives it: positive seconds, or None
    (a run from a version that sent none; readers then use their own setting)."""
    if value is None:
        return None
    seconds = float(value)  # anything else makes the batch malformed
    if not 0 < seconds < math.inf:
        raise ValueError(f"heartbeat_timeout must be a positive number of seconds, got {value!r}")
    return seconds


class Rows(NamedTuple):
    """A batch folded into rows, each list ready for ``executemany``."""

    flows: list[tuple[Any, ...]]
    tasks: list[tuple[Any, ...]]
    history: list[tuple[Any, ...]]
    logs: list[tuple[Any, ...]]
    artifacts: list[tuple[Any, ...]]
    metrics: list[tuple[Any, ...]]
    sweeps: list[tuple[Any, ...]]
    sweep_runs: list[tuple[Any, ...]]


def _collapse(events: Sequence[Event] | Sequence[Sequence[Any]]) -> Rows:
    """Fold a batch into rows. A step or a metric value that is not a number makes the batch
    malformed (``ValueError``), so nothing of it is stored.

    This loop runs once per event (600k times for a 200k-task map, as many again for a search
    reporting ten steps a trial), so it works on plain lists indexed by literal slot numbers;
    the layouts are spelled out below.
    """
    final_types = FINAL_TYPES
    final_names = FINAL_STATE_NAMES
    # task slots: 0 flow_run_id, 1 task_name, 2 map_index, 3 name, 4 tags, 5 seq, 6 state_type,
    # 7 state_name, 8 message, 9 end_time, 10 result, 11 error, 12 duration, 13 parameters,
    # 14 parameters' seq, 15 run_count, 16 run_count's seq, 17 created, 18 start_time
    tasks: dict[str, list[Any]] = {}
    # flow slots: 0 parent_flow_run_id, 1 name, 2 flow_name, 3 runner, 4 parameters,
    # 5 parent_task_run_id, 6 seq, 7 state_type, 8 state_name, 9 message, 10 end_time,
    # 11 task_runs, 12 error, 13 duration, 14 created, 15 start_time, 16 heartbeat (the last
    # sign of life: of any event of the flow run or its task runs), 17 heartbeat_timeout, 18 tags
    flows: dict[str, list[Any]] = {}
    seen: dict[str | None, float] = {}  # flow run id -> its task runs' latest event here
    seen_get = seen.get
    history: list[tuple[Any, ...]] = []
    logs: list[tuple[Any, ...]] = []
    # artifact slots: 0 key, 1 type, 2 description, 3 data, 4 flow_run_id, 5 task_run_id,
    # 6 seq, 7 created, 8 updated
    artifacts: dict[str, list[Any]] = {}
    metrics: list[tuple[Any, ...]] = []
    sweeps: list[tuple[Any, ...]] = []
    sweep_runs: list[tuple[Any, ...]] = []
    add_history = history.append
    add_metric = metrics.append
    number = (int, float)
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
            if ts > seen_get(flow_run_id, 0.0):
                seen[flow_run_id] = ts
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
                f = flows[run_id] = _flow_slots()
            if f[16] is None or ts > f[16]:
                f[16] = ts
            if kind == HEARTBEAT:
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
                f[17] = _seconds(data.get("heartbeat_timeout"))
                f[18] = data.get("tags")
            if seq > f[6]:
                f[6] = seq
                f[7] = stype
                f[8] = sname
                f[9] = message
                f[10] = ts if (stype in final_types or sname in final_names) else None
                f[11] = data.get("task_runs") if data else None
                f[12] = data.get("error") if data else None
                f[13] = data.get("duration") if data else None
        elif kind == ARTIFACT:
            a = artifacts.get(run_id)
            if a is None:
                a = artifacts[run_id] = [None, None, None, None, None, None, -1, ts, ts]
            a[7], a[8] = min(a[7], ts), max(a[8], ts)
            a[1] = a[1] or sname
            a[4] = a[4] or flow_run_id
            if data:
                a[0] = a[0] or data.get("key")
                a[5] = a[5] or data.get("task_run_id")
                if seq > a[6]:
                    a[6] = seq
                    a[3] = data.get("data")
                    a[2] = data.get("description") or a[2]
                else:
                    a[2] = a[2] or data.get("description")
        elif kind == METRIC:
            # A row of its own per report, beside the runs: nothing to fold.
            group = data.get("points") if data else None
            if group is None:
                step = data.get("step") if data else None
                group = ((seq, ts, step, data.get("metrics") if data else None),)
            elif not isinstance(group, list | tuple):
                raise ValueError(f"the points of the reports of task run {run_id!r} are not a list: {group!r}")
            for point in group:
                if not isinstance(point, list | tuple) or len(point) != 4:
                    raise ValueError(f"a report of task run {run_id!r} is not [seq, timestamp, step, metrics]: {point!r}")
                point_seq, point_ts, step, values = point
                if step is not None and (step.__class__ is bool or not isinstance(step, number)):
                    raise ValueError(f"the step of a report of task run {run_id!r} is not a number: {step!r}")
                if not isinstance(values, dict):
                    values = {}  # a report that says nothing is kept as such, never fails its batch
                add_metric((run_id, point_seq, flow_run_id, step, point_ts, dumps(values)))
        elif kind == SWEEP:
            data = data or {}
            sweeps.append((run_id, data.get("name"), ts, dumps(data.get("spec"))))
            if flow_run_id is not None:
                sweep_runs.append((run_id, flow_run_id, seq, ts))
        else:
            raise TrackingError(f"unknown event kind {kind!r} for run {run_id!r}")
    for flow_run_id, ts in seen.items():
        if flow_run_id is None:  # task runs outside any flow run
            continue
        f = flows.get(flow_run_id)
        if f is None:
            f = flows[flow_run_id] = _flow_slots()  # seq -1: a placeholder until its own events
        if f[16] is None or ts > f[16]:
            f[16] = ts

    task_rows = [
        (run_id, r[0], r[1], r[2], r[3], dumps(r[4]) if r[4] else None, r[5], r[6], r[7],
         r[8], r[9], dumps(r[10]), dumps(r[11]), r[12], dumps(r[13]), r[15], r[17], r[18])
        for run_id, r in tasks.items()
    ]
    flow_rows = [
        (run_id, f[0], f[1], f[2], f[3], dumps(f[4]), f[5], f[6], f[7], f[8], f[9], f[10],
         dumps(f[11]), dumps(f[12]), f[13], f[14], f[15], f[16], f[17], dumps(f[18]) if f[18] else None)
        for run_id, f in flows.items()
    ]
    artifact_rows = [
        (run_id, a[0], a[1], a[2], dumps(a[3]), a[4], a[5], a[6], a[7], a[8])
        for run_id, a in artifacts.items()
    ]
    return Rows(flow_rows, task_rows, history, logs, artifact_rows, metrics, sweeps, sweep_runs)


class Store(q.Reads, SweepReads, TrialReads):
    """The SQLite tracking store. Thread-safe: one connection, guarded by a lock.

    The read methods (``list_flow_runs``, ``get_task_run``, ...) live in ``queries.Reads``,
    ``sweep_reads.SweepReads`` and ``trial_reads.TrialReads``.
    """

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 5.0, retry_for: float = 120.0
    ) -> None:
        self.path = Path(path).expanduser()
        self.retry_for = retry_for
        self._lock = threading.RLock()
        self._optimize = True
        schema.check_writable(self.path)
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise TrackingError(f"cannot open the tracking database {self.path}: {exc}") from exc
        try:
            self._retry(self._setup)
        except BaseException:
            self._conn.close()
            raise

    # -- connection ------------------------------------------------------------------------

    def _setup(self) -> None:
        conn = self._conn
        # Inspect first, reading only: a file that is not ours, or is newer, is left untouched.
        version = schema.inspect(conn, self.path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: keeps the indexes hot during ingest
        if version < schema.SCHEMA_VERSION:
            schema.migrate(conn, self.path)

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
                    raise schema.refusal(self.path, exc) from exc
                if time.monotonic() > deadline:
                    raise TrackingError(
                        f"the tracking database {self.path} stayed locked for "
                        f"{self.retry_for:.0f} s; is another process holding it?"
                    ) from exc
            except sqlite3.Error as exc:
                raise schema.refusal(self.path, exc) from exc
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)

    def sibling(self) -> Store | None:
        """Another connection to the same file, for one read (close it after): SQLite runs
        each connection's reads in parallel, and outside the interpreter's lock."""
        twin = Store(self.path, retry_for=self.retry_for)
        twin._optimize = False  # this store's own close keeps the statistics fresh
        return twin

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._retry(lambda: self._conn.execute(sql, params).fetchall())

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._retry(lambda: self._conn.execute(sql, params).fetchone())

    def close(self) -> None:
        with self._lock:
            # Cheap, and keeps the planner's statistics fresh for the next reader; if another
            # writer holds the file, the statistics can wait for the next close.
            if self._optimize:
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

    def mark_crashed(self, default_timeout: float) -> int:
        """End CRASHED every live flow run silent past its own heartbeat timeout; returns how many.

        A live flow run sends a heartbeat every few seconds (see the Recorder); one whose process
        was killed would otherwise look RUNNING forever. Each run is judged by the timeout its
        own process sent (``default_timeout``, the reader's setting, only for runs stored by a
        version that sent none), so a reader with a short timeout never ends another process's
        healthy run. The verdict is dated at the run's last sign of life and is correctable:
        see ``_judge`` and ``_withdraw``.
        """
        now = time.time()
        params = {"now": now, "fallback": default_timeout}
        # The usual answer, found without taking the write lock.
        if not self._retry(lambda: self._conn.execute(_STALE, params).fetchall()):
            return 0

        def transaction() -> int:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Again under the write lock: a heartbeat may have come in meanwhile.
                stale = conn.execute(_STALE, params).fetchall()
                for key, flow_run_id, seq, last_seen, timeout in stale:
                    _judge(conn, key, flow_run_id, seq, last_seen, timeout, now)
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
            flow_rows, task_rows, history, logs, artifacts, metric_rows, sweep_rows, sweep_run_rows = (
                _collapse(events)
            )
        except (TypeError, ValueError) as exc:
            raise TrackingError(f"malformed event batch: {exc}") from exc

        def transaction() -> None:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now, so busy_timeout applies
            try:
                if flow_rows:
                    # Before the batch: it then applies to the rows as they were before the verdict.
                    _withdraw(conn, {row[0]: row[17] for row in flow_rows})
                    heard = time.time()
                    conn.executemany(_FLOW_INSERT, [(*row, heard) for row in flow_rows])
                if task_rows:
                    keys = self._flow_keys(conn, {row[1] for row in task_rows})
                    conn.executemany(
                        _TASK_INSERT, [(r[0], keys.get(r[1]), *r[2:]) for r in task_rows]
                    )
                if history:
                    conn.executemany(_HISTORY_INSERT, history)
                if logs:
                    conn.executemany(_LOG_INSERT, logs)
                if metric_rows:
                    conn.executemany(_METRIC_INSERT, metric_rows)
                if sweep_rows:
                    conn.executemany(_SWEEP_INSERT, sweep_rows)
                    conn.executemany(_SWEEP_RUN_INSERT, sweep_run_rows)
                if artifacts:
                    conn.executemany(_ARTIFACT_INSERT, artifacts)
                if flow_rows or task_rows:
                    _close_ended(conn, {row[0] for row in flow_rows} | {row[1] for row in task_rows})
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


# -- verdicts from silence ---------------------------------------------------------------------
#
# A verdict is a state the store writes into a run's row at the seq the run's own next event
# will have (s + 1 for a row at s), marked ``judged``. The run's next real event (s + 1, or
# OVERRIDE_SEQ for a decision from outside, a cancellation) replaces it as any newer event does
# (``_wins``), and clears the mark; a replay of an event already stored (s or less) does not:
# a batch applied twice or out of order still gives the same rows. A flow run's ``judged`` holds
# the last sign of life it was judged by, and stays until the verdict is withdrawn or replaced.
#
# The flow run's history tells the story in rows of its own: the verdict, then its withdrawal,
# both dated at that last sign of life (the time the verdict is about), with seqs from
# ``_MADE_SEQ`` up, above any seq a run sends, so they never take the place of its own states.

_MADE_SEQ = 1 << 50
_LIVE = f"state_type IN ({_LIVE_TYPES}) AND state_name NOT IN ({_FINAL_NAMES})"
_CRASHED = (StateType.CRASHED.value, DEFAULT_NAMES[StateType.CRASHED.value])
_CANCELLED = (StateType.CANCELLED.value, DEFAULT_NAMES[StateType.CANCELLED.value])
_RUNNING = (StateType.RUNNING.value, DEFAULT_NAMES[StateType.RUNNING.value])

# Live flow runs silent past their own timeout (or the reader's, for rows that have none): no
# sign of life that recent, and nothing of theirs received that recently either, for a run
# whose events still arrive is not silent however old they are (a backlog after an outage).
_STALE = (
    "SELECT key, id, seq, COALESCE(heartbeat, start_time, created), COALESCE(heartbeat_timeout, :fallback) "
    f"FROM flow_runs WHERE state_type IN ({_LIVE_TYPES}) AND seq >= 0 "
    "AND MAX(COALESCE(heartbeat, start_time, created), COALESCE(heard, 0)) "
    "< :now - COALESCE(heartbeat_timeout, :fallback)"
)


def _restore(table: str) -> str:
    # A judged row says again what it said before the verdict (_judge wrote that into its history).
    return (
        "(state_type, state_name, message) = (SELECT h.state_type, h.state_name, h.message "
        f"FROM state_history AS h WHERE h.run_id = {table}.id AND h.seq = {table}.seq - 1), "
        "end_time = NULL, seq = seq - 1, judged = NULL"
    )


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _made(conn: sqlite3.Connection, flow_run_id: str, state: tuple[str, str], at: float, message: str) -> None:
    """Add a state the store made to a flow run's history, after those it made before."""
    (made,) = conn.execute(
        "SELECT COUNT(*) FROM state_history WHERE run_id = ? AND seq >= ?", (flow_run_id, _MADE_SEQ)
    ).fetchone()
    conn.execute(_HISTORY_INSERT, (flow_run_id, _MADE_SEQ + made, *state, at, message))


def _judge(
    conn: sqlite3.Connection, key: int, flow_run_id: str, seq: int, last_seen: float,
    timeout: float, now: float,
) -> None:
    """End a silent flow run Crashed, its task runs that started Crashed and those that never
    did Cancelled, all as of its last sign of life (not as of now, when it was noticed)."""
    # What each task run says now goes into its history first (most keep no history row for a
    # Pending or a first Running), so a withdrawal can put it back exactly. A flow run's
    # history has every state already.
    conn.execute(
        "INSERT OR IGNORE INTO state_history SELECT id, seq, state_type, state_name, "
        f"COALESCE(start_time, created), message FROM task_runs WHERE flow_key = ? AND {_LIVE}",
        (key,),
    )
    conn.execute(
        "UPDATE task_runs SET state_type = CASE WHEN start_time IS NULL THEN ? ELSE ? END, "
        "state_name = CASE WHEN start_time IS NULL THEN ? ELSE ? END, "
        "message = CASE WHEN start_time IS NULL THEN ? ELSE ? END, "
        f"end_time = ?, seq = seq + 1, judged = ? WHERE flow_key = ? AND {_LIVE}",
        (_CANCELLED[0], _CRASHED[0], _CANCELLED[1], _CRASHED[1],
         "Cancelled: never started; its flow run's process stopped sending heartbeats first",
         "Crashed: its flow run's process stopped sending heartbeats while this ran",
         last_seen, last_seen, key),
    )
    message = (
        f"Crashed: no heartbeat from its process since {_utc(last_seen)} ({now - last_seen:.0f} s; "
        f"its timeout is {timeout:g} s): killed, stopped, or its machine went away. Anything it "
        "sends later withdraws this verdict."
    )
    conn.execute(
        "UPDATE flow_runs SET state_type = ?, state_name = ?, message = ?, end_time = ?, seq = ?, "
        "judged = ? WHERE key = ?",
        (*_CRASHED, message, last_seen, seq + 1, last_seen, key),
    )
    _made(conn, flow_run_id, _CRASHED, last_seen, message)


def _close_ended(conn: sqlite3.Connection, flow_run_ids: set[str | None]) -> None:
    """Of the flow runs a batch touched, those over (a final state of their own, not a verdict
    from silence): a task run of theirs still PENDING or RUNNING will not end by itself (its
    flow's process ended it, or exited first), so it ends CANCELLED, saying which; it keeps its
    seq, so an end of its own that still arrives wins. Then the flow run's counts are counted
    again from its task runs: its record counts what the store holds, whatever it was sent."""
    ids = [i for i in flow_run_ids if i is not None]
    ended = conn.execute(
        "SELECT key, state_name, COALESCE(end_time, heartbeat, start_time, created) FROM flow_runs "
        "WHERE id IN (SELECT value FROM json_each(?)) AND seq >= 0 AND judged IS NULL "
        f"AND state_type NOT IN ({_LIVE_TYPES})",
        (orjson.dumps(ids).decode(),),
    ).fetchall()
    for key, state_name, ended_at in ended:
        conn.execute(
            "UPDATE task_runs SET state_type = 'CANCELLED', state_name = 'Cancelled', end_time = ?, "
            "message = CASE WHEN state_type = 'PENDING' THEN ? ELSE ? END "
            f"WHERE flow_key = ? AND state_type IN ({_LIVE_TYPES}) AND state_name NOT IN ({_FINAL_NAMES})",
            (
                ended_at,
                f"Cancelled before it started: its flow run ended {state_name}",
                f"Cancelled: its flow run ended {state_name} and no end of its own reached the tracker",
                key,
            ),
        )
        counts = dict(conn.execute(
            "SELECT state_name, COUNT(*) FROM task_runs WHERE flow_key = ? GROUP BY state_name", (key,)
        ).fetchall())
        conn.execute("UPDATE flow_runs SET task_runs = ? WHERE key = ?", (dumps(counts), key))


def _withdraw(conn: sqlite3.Connection, latest: dict[str, float | None]) -> None:
    """Withdraw the verdicts a batch proves wrong: of flow runs it brings a sign of life of (an
    event of theirs or of their task runs, ``latest``) later than the one they were judged by.

    Their task runs, and the flow run itself, say again what they said before the verdict; the
    batch then applies to them as if there had been none. A run really still going is RUNNING.
    """
    judged = conn.execute(
        "SELECT key, id, judged FROM flow_runs "
        "WHERE id IN (SELECT value FROM json_each(?)) AND judged IS NOT NULL",
        (orjson.dumps(list(latest)).decode(),),
    ).fetchall()
    for key, flow_run_id, last_seen in judged:
        heard = latest[flow_run_id]
        if heard is None or heard <= last_seen:
            continue  # a replay of what the verdict already knew
        conn.execute(
            f"UPDATE task_runs SET {_restore('task_runs')} WHERE flow_key = ? AND judged IS NOT NULL",
            (key,),
        )
        conn.execute(f"UPDATE flow_runs SET {_restore('flow_runs')} WHERE key = ?", (key,))
        # Said the same whichever batch withdraws it, so the rows do not depend on the order.
        message = (
            "Running: heard from its process after the Crashed verdict on its silence since "
            f"{_utc(last_seen)}; the verdict is withdrawn and the task runs it ended are restored"
        )
        _made(conn, flow_run_id, _RUNNING, last_seen, message)
