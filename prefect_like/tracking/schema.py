"""The store's schema: its DDL, its version, the migrations between versions, and the checks made
when a file is opened.

The version lives in the file's header (``PRAGMA user_version``). A file is built, or brought
forward, by the same path: ``STEPS[v]`` takes a file from version ``v - 1`` to ``v``, so a new
file runs every step from 1 and an old one the steps it lacks, all in one transaction (a file is
at one version or the next, never between). Step 1 is the schema as version 1 made it, kept
verbatim: a file made then must migrate exactly as a new one is built.

Opening a file (``Store.__init__``), in this order, each refusal one line (``TrackingError``):

1. ``check_writable``: the directory can be made and written, and so can the file if it
   exists. A store is read and written by the same code (a reader ends silent runs CRASHED), so
   a store that cannot be written is refused before anything else runs, a flow's tasks included.
2. ``inspect``, reading only: a file SQLite cannot read is not a prefect-like database; one that
   holds other tables (another program's database) is foreign; one of a later version was made
   by a newer prefect-like. None of them is touched: no pragma is set, nothing is written.
3. ``migrate``, if the version is older: under the write lock, checked again (another process
   may have just done it), every missing step, then the new version, in one transaction.

History of versions:

1. flow_runs, task_runs, state_history, logs.
2. ``flow_runs.heartbeat_timeout``: the seconds of silence after which the flow run's own
   process (not whoever reads the store) takes it for crashed. ``judged`` on both tables: the
   row states a verdict of the store made from its flow run's silence, not an event of its own,
   and holds the last sign of life it was judged by (see the store's "verdicts from silence").
   ``flow_runs.heard``: when the store last received an event of the flow run (its own clock).
3. ``artifacts``: what flow and task runs publish (tables, markdown, links, progress), one row
   per artifact, its data replaced by later updates. ``concurrency_limits`` and
   ``concurrency_slots``: named limits (a task tag's or a global one's, one namespace) and the
   leases that hold their slots. ``task_runs_tags``: a partial index over the task runs that
   have tags, so filtering a flow run's task runs by tag reads only those (untagged runs, the
   most, add nothing to it).
4. ``metrics``: what task runs reported at each step (``sweep.report``), keyed like logs.
   ``sweeps``: a search's name, id and what it is (its objective, space, sampler, scheduler),
   and ``sweep_runs``: the flow runs of each sweep, the first and every resume.
5. ``deployments`` (a flow stored to be run by workers: where its code is, its pool, its
   parameters and their schema, its retry policy), ``schedules`` (cron with a time zone,
   interval, one-off; paused or active; how far ahead runs are made), ``deployment_runs`` (each
   flow run a deployment made: when it is due, its parameters, which worker claimed it; one row
   per deployment and scheduled time, so a restart or a second server makes no duplicate),
   ``work_pools`` (a pool's concurrency limit) and ``workers`` (last seen), ``cancellations``
   (requests to cancel a flow run, seen by its process in the answer to its events),
   ``notifications`` and ``notifications_sent`` (webhooks on a run's Failed, Crashed or Late).
6. ``flow_runs.tags``: the tags of ``with tags(...)`` around the flow call, a compact JSON list
   as task runs' are, so flow runs are filtered by tag the same way.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from prefect_like.errors import TrackingError

SCHEMA_VERSION = 7

# The tables every version has; a file with other tables and none of these is not ours.
TABLES = frozenset({"flow_runs", "task_runs", "state_history", "logs"})

_VERSION_1 = """
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

_VERSION_2 = """
ALTER TABLE flow_runs ADD COLUMN heartbeat_timeout REAL;
ALTER TABLE flow_runs ADD COLUMN judged REAL;
ALTER TABLE flow_runs ADD COLUMN heard REAL;
ALTER TABLE task_runs ADD COLUMN judged REAL;
"""

# No semicolon inside a statement, comments included: ``migrate`` splits a step on them.
_VERSION_3 = """
CREATE TABLE artifacts (
    id TEXT PRIMARY KEY,
    key TEXT,
    type TEXT,
    description TEXT,
    data TEXT,
    flow_run_id TEXT,
    task_run_id TEXT,
    seq INTEGER NOT NULL,
    created REAL,
    updated REAL
);
CREATE INDEX artifacts_flow_run ON artifacts (flow_run_id, created);
CREATE INDEX artifacts_task_run ON artifacts (task_run_id, created);
CREATE INDEX artifacts_key ON artifacts (key, created);

CREATE TABLE concurrency_limits (
    name TEXT PRIMARY KEY,
    slots INTEGER NOT NULL,
    slot_decay_per_second REAL,
    active INTEGER NOT NULL DEFAULT 1,
    decaying REAL NOT NULL DEFAULT 0,
    decayed_at REAL,
    created REAL
);
CREATE TABLE concurrency_slots (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    occupy INTEGER NOT NULL,
    holder TEXT,
    acquired REAL,
    expires REAL NOT NULL
);
CREATE INDEX concurrency_slots_name ON concurrency_slots (name, expires);

CREATE INDEX task_runs_tags ON task_runs (flow_key, tags) WHERE tags IS NOT NULL;
"""

_VERSION_4 = """
CREATE TABLE metrics (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    flow_run_id TEXT,
    step REAL,
    timestamp REAL,
    metrics TEXT,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE INDEX metrics_flow_run ON metrics (flow_run_id, run_id);

CREATE TABLE sweeps (
    id TEXT PRIMARY KEY,
    name TEXT,
    created REAL,
    spec TEXT
);
CREATE INDEX sweeps_created ON sweeps (created);

CREATE TABLE sweep_runs (
    sweep_id TEXT NOT NULL,
    flow_run_id TEXT NOT NULL,
    attempt INTEGER,
    created REAL,
    PRIMARY KEY (sweep_id, flow_run_id)
) WITHOUT ROWID;
CREATE INDEX sweep_runs_flow_run ON sweep_runs (flow_run_id);
"""

_VERSION_5 = """
CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    flow_name TEXT NOT NULL,
    entrypoint TEXT NOT NULL,
    work_pool TEXT NOT NULL,
    parameters TEXT,
    parameter_schema TEXT,
    tags TEXT,
    description TEXT,
    retries INTEGER NOT NULL DEFAULT 0,
    paused INTEGER NOT NULL DEFAULT 0,
    created REAL,
    updated REAL
);

CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    cron TEXT,
    timezone TEXT,
    every REAL,
    anchor REAL,
    active INTEGER NOT NULL DEFAULT 1,
    scheduled_until REAL,
    next_due REAL,
    created REAL
);
CREATE INDEX schedules_deployment ON schedules (deployment_id);

CREATE TABLE deployment_runs (
    flow_run_id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,
    work_pool TEXT NOT NULL,
    schedule_id TEXT,
    scheduled REAL NOT NULL,
    parameters TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    retry_of TEXT,
    status TEXT NOT NULL,
    late REAL NOT NULL DEFAULT 0,
    worker TEXT,
    claimed REAL,
    created REAL
);
CREATE UNIQUE INDEX deployment_runs_slot ON deployment_runs (deployment_id, schedule_id, scheduled)
    WHERE schedule_id IS NOT NULL AND retry_of IS NULL;
CREATE UNIQUE INDEX deployment_runs_retry ON deployment_runs (retry_of) WHERE retry_of IS NOT NULL;
CREATE INDEX deployment_runs_queue ON deployment_runs (work_pool, status, scheduled);
CREATE INDEX deployment_runs_deployment ON deployment_runs (deployment_id, scheduled);
CREATE INDEX deployment_runs_schedule ON deployment_runs (schedule_id, status, scheduled);
CREATE INDEX deployment_runs_status ON deployment_runs (status, scheduled);

CREATE TABLE work_pools (
    name TEXT PRIMARY KEY,
    concurrency_limit INTEGER,
    created REAL
);

CREATE TABLE workers (
    work_pool TEXT NOT NULL,
    name TEXT NOT NULL,
    host TEXT,
    pid INTEGER,
    started REAL,
    last_seen REAL,
    running INTEGER,
    PRIMARY KEY (work_pool, name)
) WITHOUT ROWID;

CREATE TABLE cancellations (
    flow_run_id TEXT PRIMARY KEY,
    requested REAL,
    reason TEXT
);

CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    states TEXT NOT NULL,
    webhook TEXT NOT NULL,
    flow_name TEXT,
    tag TEXT,
    deployment_id TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    created REAL,
    checked REAL
);
CREATE TABLE notifications_sent (
    notification_id TEXT NOT NULL,
    flow_run_id TEXT NOT NULL,
    state_name TEXT NOT NULL,
    sent REAL,
    PRIMARY KEY (notification_id, flow_run_id, state_name)
) WITHOUT ROWID;
"""

_VERSION_6 = """
ALTER TABLE flow_runs ADD COLUMN tags TEXT;
"""

# A search reporting ten steps a trial writes ten metric rows per task run: an index beside the
# key cost 40% of each insert. A flow run's metrics are found through its task runs instead.
_VERSION_7 = """
DROP INDEX metrics_flow_run;
"""

STEPS = {  # version -> the step that makes it
    1: _VERSION_1, 2: _VERSION_2, 3: _VERSION_3, 4: _VERSION_4, 5: _VERSION_5, 6: _VERSION_6,
    7: _VERSION_7,
}

_ELSEWHERE = "move it aside, or set PREFECT_LIKE_HOME to another directory"


def not_ours(path: Path, why: str) -> TrackingError:
    if "malformed" in why:  # SQLite's word for a database file cut short or overwritten in part
        return TrackingError(f"the tracking database {path} is damaged ({why}); {_ELSEWHERE}")
    return TrackingError(f"not a prefect-like database ({why}): {path}; {_ELSEWHERE}")


def unwritable(path: Path, why: str) -> TrackingError:
    return TrackingError(
        f"cannot write the tracking database {path}: {why}; fix the permissions, "
        "or set PREFECT_LIKE_HOME to a writable directory"
    )


def refusal(path: Path, exc: sqlite3.Error) -> TrackingError:
    """The one line for an SQLite error that retrying will not cure."""
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return unwritable(path, text)
    if not isinstance(exc, sqlite3.OperationalError) and isinstance(exc, sqlite3.DatabaseError):
        return not_ours(path, text)  # "file is not a database", "... is malformed"
    return TrackingError(f"tracking database error: {text} ({path})")


def check_writable(path: Path) -> None:
    """Refuse, in one line, a store whose directory cannot be made or written, or whose file
    cannot be written (SQLite writes its journal beside the file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unwritable(
            path,
            f"cannot create the directory {exc.filename or path.parent}: {exc.strerror or exc}",
        ) from None
    if not os.access(path.parent, os.W_OK):
        raise unwritable(path, f"the directory {path.parent} is read-only")
    if path.exists() and not os.access(path, os.W_OK):
        raise unwritable(path, "the file is read-only")


def inspect(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version (0: a new, empty file), reading only; refuses a file that is
    not a database, holds another program's tables, or was made by a newer prefect-like."""
    # Both reads in one snapshot: another process may be building the file right now, and
    # its tables and its version number arrive in the same commit.
    own = not conn.in_transaction
    try:
        if own:
            conn.execute("BEGIN")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            tables = {
                name
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
            }
        finally:
            if own and conn.in_transaction:
                conn.execute("COMMIT")
    except sqlite3.OperationalError:
        raise  # locked, say: the caller retries
    except sqlite3.DatabaseError as exc:
        raise not_ours(path, str(exc)) from None
    if version == 0 and not tables:
        return 0
    if version == 0 or "flow_runs" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise not_ours(path, f"it holds tables prefect-like did not make: {shown}")
    if version > SCHEMA_VERSION:
        raise TrackingError(
            f"{path} was made by a newer prefect-like: schema {version}, this one reads up to "
            f"{SCHEMA_VERSION}; upgrade prefect-like (pip install -U prefect-like)"
        )
    missing = TABLES - tables
    if missing:
        raise not_ours(path, f"schema {version} without the table(s) {', '.join(sorted(missing))}")
    return version


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Build a new file, or bring an old one to ``SCHEMA_VERSION``, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = inspect(conn, path)  # again, under the write lock
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in STEPS[step].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
