"""What the tracking server hands out: deployments, their scheduled flow runs, workers' claims,
cancellation requests and notifications. The server's side of ``prefect_like.deployments``.

The tables are schema step 5 (``schema``), in the same store as the runs. A flow run a
deployment makes is two rows made in one transaction: its ``deployment_runs`` row (when it is
due, its parameters, who claimed it) and its ``flow_runs`` row, state SCHEDULED at seq -1, so the
run's own first event (seq 0, RUNNING, from the worker's process) takes its place as any newer
event does, and ``runs ls`` shows it from the moment it is made.

Every change is one ``BEGIN IMMEDIATE`` transaction on this object's own connection: SQLite
has one writer at a time across every connection and process (on PostgreSQL, ``postgres.control``
runs the same code under the store's write lock), so these are the guarantees:

- **A claim is made once.** ``claim`` picks due runs of a pool and marks them claimed in the
  same transaction; two workers (or two servers over one file) never get the same run.
- **No duplicate scheduled runs.** A schedule's run at time ``t`` has the id
  ``uuid5(schedule, t)`` and the unique key (deployment, schedule, t); made with ``INSERT OR
  IGNORE``, a restart or a second server making the same runs changes nothing. A schedule
  remembers how far it has made runs (``scheduled_until``), so after a restart the times missed
  meanwhile are made too (no gaps, back to ``HORIZON`` at most) and then run, named Late.
- **A crash is retried once per attempt.** A claimed run that ends CRASHED (its process died:
  the store's verdict from silence) is made again as a new flow run, attempt + 1, while the
  deployment's ``retries`` allow; the unique key on ``retry_of`` makes that once.
- **A run claimed by a worker that vanished before its process said anything** is handed out
  again (it never started, so it is not Crashed).

``tick`` does the periodic part (the server's scheduler loop calls it every second or so):
make runs ahead of time, name overdue ones Late, retry crashed ones, hand back orphaned claims,
and return the notifications due, which ``notify`` sends off the loop.
"""

from __future__ import annotations

import json
import math
import random
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from prefect_like import settings
from prefect_like.errors import RunNotFoundError, TrackingError
from prefect_like.states import FINAL_TYPES
from prefect_like.tracking.schedules import (
    MAX_MADE_PER_TICK,
    check_schedule,
    horizon,
    max_runs_ahead,
    next_times,
)
from prefect_like.tracking.transactions import immediate_transaction

T = TypeVar("T")

_NAMESPACE = uuid.UUID("6f1c1d2e-8a57-4c36-9d1b-2b5e6c0f7a11")
_FINAL = ", ".join(f"'{t}'" for t in sorted(FINAL_TYPES))
_OVERRIDE_SEQ = 1 << 40  # events.OVERRIDE_SEQ: a decision from outside the run
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,199}$")


def late_after() -> float:
    """Seconds past its time after which a run nobody claimed is named Late."""
    return settings.float_setting("LATE_AFTER", 15.0)


def worker_timeout() -> float:
    """Seconds of silence after which a worker is taken for gone (its unstarted claims return)."""
    return settings.float_setting("WORKER_TIMEOUT", 30.0)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def _prefix(text: str) -> str:
    """A LIKE pattern for the ids starting with ``text``; ids are hex, so LIKE's wildcards in
    what is given are dropped rather than matched. A parameter, not SQL text: PostgreSQL's
    driver takes a ``%`` in the statement for a placeholder."""
    return text.replace("%", "").replace("_", "") + "%"


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


# -- checking what a user gives ------------------------------------------------------------


def check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise ValueError(
            f"{what} must be 1-200 letters, digits or _.:/@+- (starting with a letter or digit), got {value!r}"
        )
    return value


def check_parameters(schema: dict[str, Any] | None, parameters: dict[str, Any], flow_name: str) -> None:
    """Refuse parameters the flow's signature (its stored JSON schema) does not take: unknown
    names, missing required ones, values of the wrong JSON type. ValueError names each."""
    if not isinstance(parameters, dict):
        raise ValueError(f"parameters must be an object of name: value, got {parameters!r}")
    if not schema:
        return
    properties = schema.get("properties") or {}
    problems: list[str] = []
    if not schema.get("additionalProperties"):
        unknown = sorted(set(parameters) - set(properties))
        if unknown:
            problems.append(f"unexpected parameter(s) {', '.join(unknown)} (it takes: {', '.join(properties) or 'none'})")
    missing = [name for name in schema.get("required") or [] if name not in parameters]
    if missing:
        problems.append(f"missing required parameter(s) {', '.join(missing)}")
    try:
        import jsonschema
    except ImportError:  # the names are checked; the worker's flow checks the types
        jsonschema = None
    if jsonschema is not None:
        for name, value in parameters.items():
            prop = properties.get(name)
            if not prop:
                continue
            sub = {**prop, "definitions": schema.get("definitions") or {}}
            validator = jsonschema.Draft202012Validator(sub)
            error = next(iter(validator.iter_errors(value)), None)
            if error is not None:
                problems.append(f"{name}: {error.message}")
    if problems:
        raise ValueError(f"flow {flow_name!r} got invalid parameters: " + "; ".join(problems))


class Control:
    """Deployments, schedules, claims, cancellations and notifications over one SQLite file
    (``postgres.control`` gives the same over a PostgreSQL store).

    Thread-safe: one connection, one lock. Open it after a ``Store`` made (or migrated) the file.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0, retry_for: float = 60.0) -> None:
        self.path = Path(path)
        self.retry_for = retry_for
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        # The flow runs asked to cancel and not ended yet, refreshed by ``tick``: what the
        # answer to an events batch checks, in memory.
        self.cancelling: dict[str, str] = {}

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _retry(self, fn: Callable[[], T]) -> T:
        delay = 0.005
        deadline = time.monotonic() + self.retry_for
        while True:
            try:
                with self._lock:
                    return fn()
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if "locked" not in text and "busy" not in text:
                    raise TrackingError(f"tracking database error: {exc} ({self.path})") from exc
                if time.monotonic() > deadline:
                    raise TrackingError(f"the tracking database {self.path} stayed locked") from exc
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return immediate_transaction(self, fn)

    def _all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return self._retry(lambda: self._conn.execute(sql, params).fetchall())

    # -- deployments ---------------------------------------------------------------------

    def put_deployment(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Make or replace the deployment named ``spec["name"]`` (its id is kept on replace,
        and so are the runs it made); its schedules are replaced by those given."""
        name = check_name(spec.get("name"), "a deployment name")
        flow_name = spec.get("flow_name")
        if not isinstance(flow_name, str) or not flow_name:
            raise ValueError("flow_name is required")
        entrypoint = spec.get("entrypoint")
        if not isinstance(entrypoint, str) or ":" not in entrypoint:
            raise ValueError(f"entrypoint must be 'path/to/file.py:flow' or 'package.module:flow', got {entrypoint!r}")
        pool = check_name(spec.get("work_pool"), "a work pool name")
        parameters = spec.get("parameters") or {}
        schema = spec.get("parameter_schema")
        if schema is not None and not isinstance(schema, dict):
            raise ValueError("parameter_schema must be a JSON schema object")
        check_parameters({**(schema or {}), "required": []}, parameters, flow_name)
        retries = spec.get("retries", 0)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise ValueError(f"retries must be a whole number from 0 to 100, got {retries!r}")
        tags = spec.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValueError("tags must be a list of strings")
        schedules = [check_schedule(s) for s in spec.get("schedules") or []]
        unset = [n for n in (schema or {}).get("required") or [] if n not in parameters]
        if unset and schedules:
            raise ValueError(
                f"the schedule's runs of {flow_name!r} would have no value for its required parameter(s) "
                f"{', '.join(unset)}: give them in the deployment's parameters"
            )
        now = time.time()

        def write(conn: sqlite3.Connection) -> str:
            row = conn.execute("SELECT id FROM deployments WHERE name = ?", (name,)).fetchone()
            deployment_id = row["id"] if row else uuid.uuid4().hex
            conn.execute(
                "INSERT INTO deployments (id, name, flow_name, entrypoint, work_pool, parameters, "
                "parameter_schema, tags, description, retries, paused, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "flow_name = excluded.flow_name, entrypoint = excluded.entrypoint, "
                "work_pool = excluded.work_pool, parameters = excluded.parameters, "
                "parameter_schema = excluded.parameter_schema, tags = excluded.tags, "
                "description = excluded.description, retries = excluded.retries, updated = excluded.updated",
                (deployment_id, name, flow_name, entrypoint, pool, json.dumps(parameters, default=str),
                 json.dumps(schema) if schema is not None else None, json.dumps(tags),
                 spec.get("description"), retries, now, now),
            )
            old = {r["id"]: r for r in conn.execute("SELECT * FROM schedules WHERE deployment_id = ?", (deployment_id,))}
            kept: set[str] = set()
            for schedule in schedules:
                # The same schedule given again keeps its id, so its runs are not made twice.
                key = json.dumps([schedule.get(k) for k in ("kind", "cron", "timezone", "interval", "anchor")])
                schedule_id = uuid.uuid5(_NAMESPACE, f"{deployment_id}:{key}").hex
                kept.add(schedule_id)
                anchor = schedule.get("anchor")
                if schedule["kind"] == "interval" and anchor is None:
                    anchor = old[schedule_id]["anchor"] if schedule_id in old else now
                conn.execute(
                    "INSERT INTO schedules (id, deployment_id, kind, cron, timezone, every, anchor, "
                    "active, scheduled_until, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET active = excluded.active",
                    (schedule_id, deployment_id, schedule["kind"], schedule.get("cron"), schedule.get("timezone"),
                     schedule.get("interval"), anchor, int(schedule["active"]), None, now),
                )
            for schedule_id in set(old) - kept:
                conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
                # Its future runs go with it; those due or claimed stay.
                self._cancel_unclaimed(conn, "schedule_id = ? AND scheduled > ?", (schedule_id, now),
                                       "Cancelled: its schedule was removed from the deployment")
            return deployment_id

        deployment_id = self._tx(write)
        return self.get_deployment(deployment_id)

    def _deployment_row(self, conn: sqlite3.Connection, name_or_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM deployments WHERE name = ? OR id = ?", (name_or_id, name_or_id)).fetchone()
        if row is None:
            raise RunNotFoundError(f"no deployment named {name_or_id!r}; `prefect-like deployment ls` lists them")
        return row

    def _deployment(self, conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
        schedules = [
            {"id": s["id"], "kind": s["kind"], "cron": s["cron"], "timezone": s["timezone"],
             "interval": s["every"], "anchor": s["anchor"], "active": bool(s["active"]),
             "scheduled_until": _iso(s["scheduled_until"])}
            for s in conn.execute("SELECT * FROM schedules WHERE deployment_id = ? ORDER BY created", (row["id"],))
        ]
        upcoming = conn.execute(
            "SELECT MIN(scheduled) FROM deployment_runs WHERE deployment_id = ? AND status = 'scheduled'",
            (row["id"],),
        ).fetchone()[0]
        return {
            "id": row["id"], "name": row["name"], "flow_name": row["flow_name"],
            "entrypoint": row["entrypoint"], "work_pool": row["work_pool"],
            "parameters": _loads(row["parameters"]) or {}, "parameter_schema": _loads(row["parameter_schema"]),
            "tags": _loads(row["tags"]) or [], "description": row["description"], "retries": row["retries"],
            "paused": bool(row["paused"]), "schedules": schedules, "next_run": _iso(upcoming),
            "created": _iso(row["created"]), "updated": _iso(row["updated"]),
        }

    def get_deployment(self, name_or_id: str) -> dict[str, Any]:
        return self._retry(lambda: self._deployment(self._conn, self._deployment_row(self._conn, name_or_id)))

    def list_deployments(self, work_pool: str | None = None) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            sql = "SELECT * FROM deployments" + (" WHERE work_pool = ?" if work_pool else "") + " ORDER BY name"
            rows = self._conn.execute(sql, (work_pool,) if work_pool else ()).fetchall()
            return [self._deployment(self._conn, r) for r in rows]

        return self._retry(read)

    def delete_deployment(self, name_or_id: str) -> dict[str, Any]:
        def write(conn: sqlite3.Connection) -> dict[str, Any]:
            row = self._deployment_row(conn, name_or_id)
            cancelled = self._cancel_unclaimed(conn, "deployment_id = ?", (row["id"],),
                                               "Cancelled: its deployment was deleted")
            conn.execute("DELETE FROM schedules WHERE deployment_id = ?", (row["id"],))
            conn.execute("DELETE FROM deployments WHERE id = ?", (row["id"],))
            return {"id": row["id"], "name": row["name"], "cancelled_runs": cancelled}

        return self._tx(write)

    def set_paused(self, name_or_id: str, paused: bool) -> dict[str, Any]:
        """Pause (or resume) a deployment's schedules: its future scheduled runs are withdrawn
        while paused and made again on resume; runs triggered by hand still run."""
        now = time.time()

        def write(conn: sqlite3.Connection) -> str:
            row = self._deployment_row(conn, name_or_id)
            conn.execute("UPDATE deployments SET paused = ?, updated = ? WHERE id = ?", (int(paused), now, row["id"]))
            if paused:
                self._withdraw_future(conn, row["id"], now)
            else:
                # Made again from now: the times paused over are skipped, not caught up.
                conn.execute("UPDATE schedules SET scheduled_until = ?, next_due = NULL WHERE deployment_id = ?", (now, row["id"]))
            return str(row["id"])

        return self.get_deployment(self._tx(write))

    def _withdraw_future(self, conn: sqlite3.Connection, deployment_id: str, now: float) -> None:
        """Delete the unclaimed future runs of a deployment's schedules (never started, so
        nothing is lost) and let its schedules make them again from now."""
        ids = [r[0] for r in conn.execute(
            "SELECT flow_run_id FROM deployment_runs WHERE deployment_id = ? AND status = 'scheduled' "
            "AND schedule_id IS NOT NULL AND scheduled > ?", (deployment_id, now))]
        for flow_run_id in ids:
            conn.execute("DELETE FROM deployment_runs WHERE flow_run_id = ?", (flow_run_id,))
            conn.execute("DELETE FROM state_history WHERE run_id = ?", (flow_run_id,))
            conn.execute("DELETE FROM flow_runs WHERE id = ? AND seq < 0", (flow_run_id,))
        conn.execute("UPDATE schedules SET scheduled_until = ?, next_due = NULL WHERE deployment_id = ?", (now, deployment_id))

    # -- flow runs of deployments --------------------------------------------------------

    def create_run(
        self, name_or_id: str, parameters: dict[str, Any] | None = None, scheduled: float | None = None
    ) -> dict[str, Any]:
        """Trigger a run of a deployment: its parameters over the deployment's, validated
        against the flow's signature (ValueError, a 422, says what is wrong)."""
        now = time.time()

        def write(conn: sqlite3.Connection) -> str:
            row = self._deployment_row(conn, name_or_id)
            merged = {**(_loads(row["parameters"]) or {}), **(parameters or {})}
            check_parameters(_loads(row["parameter_schema"]), merged, row["flow_name"])
            flow_run_id = uuid.uuid4().hex
            self._insert_run(conn, row, flow_run_id, scheduled if scheduled is not None else now, merged, None, 1, None, now)
            return flow_run_id

        return self.get_run(self._tx(write))

    @staticmethod
    def _insert_run(
        conn: sqlite3.Connection, deployment: sqlite3.Row, flow_run_id: str, scheduled: float,
        parameters: dict[str, Any], schedule_id: str | None, attempt: int, retry_of: str | None, now: float,
    ) -> bool:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO deployment_runs (flow_run_id, deployment_id, work_pool, schedule_id, "
            "scheduled, parameters, attempt, retry_of, status, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'scheduled', ?)",
            (flow_run_id, deployment["id"], deployment["work_pool"], schedule_id, scheduled,
             json.dumps(parameters, default=str), attempt, retry_of, now),
        )
        if cursor.rowcount != 1:
            return False  # made already (another server, or before a restart)
        from prefect_like.results import summarize_parameters

        when = _iso(scheduled)
        message = f"Scheduled for {when} by deployment {deployment['name']!r}" + (f" (attempt {attempt})" if attempt > 1 else "")
        conn.execute(
            "INSERT INTO flow_runs (id, flow_name, parameters, seq, state_type, state_name, message, created) "
            "VALUES (?, ?, ?, -1, 'SCHEDULED', 'Scheduled', ?, ?) ON CONFLICT (id) DO NOTHING",
            (flow_run_id, deployment["flow_name"], json.dumps(summarize_parameters(parameters), default=str), message, now),
        )
        conn.execute("INSERT OR IGNORE INTO state_history VALUES (?, -1, 'SCHEDULED', 'Scheduled', ?, ?)",
                     (flow_run_id, now, message))
        return True

    _RUN_SELECT = (
        "SELECT r.*, d.name AS deployment_name, d.flow_name, d.entrypoint, f.state_type, f.state_name, "
        "f.message, f.start_time, f.end_time FROM deployment_runs r JOIN flow_runs f ON f.id = r.flow_run_id "
        "LEFT JOIN deployments d ON d.id = r.deployment_id"
    )

    @staticmethod
    def _run(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": row["flow_run_id"], "deployment_id": row["deployment_id"], "deployment": row["deployment_name"],
            "flow_name": row["flow_name"], "entrypoint": row["entrypoint"], "work_pool": row["work_pool"],
            "parameters": _loads(row["parameters"]) or {}, "scheduled_time": _iso(row["scheduled"]),
            "scheduled": row["scheduled"], "attempt": row["attempt"], "retry_of": row["retry_of"],
            "worker": row["worker"], "claimed": _iso(row["claimed"]), "state": row["state_type"],
            "state_name": row["state_name"], "message": row["message"],
            "start_time": _iso(row["start_time"]), "end_time": _iso(row["end_time"]),
        }

    def get_run(self, flow_run_id: str) -> dict[str, Any]:
        rows = self._all(self._RUN_SELECT + " WHERE r.flow_run_id = ?", (flow_run_id,))
        if not rows:
            raise RunNotFoundError(f"no flow run {flow_run_id!r} of a deployment")
        return self._run(rows[0])

    def list_runs(
        self, deployment: str | None = None, upcoming: bool = False, limit: int = 50
    ) -> list[dict[str, Any]]:
        """A deployment's runs (or every deployment's): those not started yet soonest first
        (``upcoming``), else those due or begun, latest first."""
        where: list[str] = []
        params: list[Any] = []
        if deployment is not None:
            row = self._retry(lambda: self._deployment_row(self._conn, deployment))
            where.append("r.deployment_id = ?")
            params.append(row["id"])
        if upcoming:
            where.append("r.status = 'scheduled'")
        else:  # what has happened: runs due or begun, not those made ahead of time
            where.append("(r.scheduled <= ? OR r.claimed IS NOT NULL)")
            params.append(time.time())
        sql = self._RUN_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY r.scheduled " + ("ASC" if upcoming else "DESC") + " LIMIT ?"
        return [self._run(r) for r in self._all(sql, (*params, limit))]

    def _cancel_unclaimed(self, conn: sqlite3.Connection, where: str, params: Sequence[Any], message: str) -> int:
        ids = [r[0] for r in conn.execute(
            f"SELECT flow_run_id FROM deployment_runs WHERE status = 'scheduled' AND {where}", params)]
        now = time.time()
        for flow_run_id in ids:
            conn.execute("UPDATE deployment_runs SET status = 'done' WHERE flow_run_id = ?", (flow_run_id,))
            conn.execute(
                "UPDATE flow_runs SET state_type = 'CANCELLED', state_name = 'Cancelled', message = ?, "
                "end_time = ?, seq = ? WHERE id = ? AND seq < 0", (message, now, _OVERRIDE_SEQ, flow_run_id))
            conn.execute("INSERT OR IGNORE INTO state_history VALUES (?, ?, 'CANCELLED', 'Cancelled', ?, ?)",
                         (flow_run_id, _OVERRIDE_SEQ, now, message))
        return len(ids)

    # -- workers -------------------------------------------------------------------------

    def claim(self, pool: str, worker: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` due runs of ``pool``, oldest first, claimed by ``worker`` in one
        transaction (no other claim can get them), within the pool's concurrency limit."""
        check_name(pool, "a work pool name")
        check_name(worker, "a worker name")
        now = time.time()

        def write(conn: sqlite3.Connection) -> list[str]:
            self._seen(conn, pool, worker, None, None, None, now)
            room = limit
            row = conn.execute("SELECT concurrency_limit FROM work_pools WHERE name = ?", (pool,)).fetchone()
            if row is not None and row[0] is not None:
                (active,) = conn.execute(
                    "SELECT COUNT(*) FROM deployment_runs r JOIN flow_runs f ON f.id = r.flow_run_id "
                    f"WHERE r.work_pool = ? AND r.status = 'claimed' AND f.state_type NOT IN ({_FINAL})", (pool,),
                ).fetchone()
                room = min(room, row[0] - active)
            if room <= 0:
                return []
            ids = [r[0] for r in conn.execute(
                "SELECT flow_run_id FROM deployment_runs WHERE work_pool = ? AND status = 'scheduled' "
                "AND scheduled <= ? ORDER BY scheduled LIMIT ?", (pool, now, room))]
            for flow_run_id in ids:
                conn.execute("UPDATE deployment_runs SET status = 'claimed', worker = ?, claimed = ? WHERE flow_run_id = ?",
                             (worker, now, flow_run_id))
                conn.execute("UPDATE flow_runs SET state_type = 'PENDING', state_name = 'Pending', "
                             "message = ? WHERE id = ? AND seq < 0", (f"Claimed by worker {worker!r}", flow_run_id))
            return ids

        ids = self._tx(write)
        return [self.get_run(i) for i in ids]

    @staticmethod
    def _seen(
        conn: sqlite3.Connection, pool: str, worker: str, running: int | None, host: str | None,
        pid: int | None, now: float,
    ) -> None:
        conn.execute(
            "INSERT INTO workers (work_pool, name, host, pid, started, last_seen, running) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (work_pool, name) DO UPDATE SET last_seen = excluded.last_seen, "
            "host = COALESCE(excluded.host, workers.host), pid = COALESCE(excluded.pid, workers.pid), "
            "running = COALESCE(excluded.running, workers.running)",
            (pool, worker, host, pid, now, now, running),
        )

    def heartbeat(
        self, pool: str, worker: str, running: Sequence[str], host: str | None = None, pid: int | None = None
    ) -> dict[str, Any]:
        """A worker's sign of life; answers with the cancellation requests for its runs."""
        check_name(pool, "a work pool name")
        check_name(worker, "a worker name")
        now = time.time()
        self._tx(lambda conn: self._seen(conn, pool, worker, len(running), host, pid, now))
        return {"cancel": self.cancels_for(running, from_store=True)}

    def list_workers(self, pool: str | None = None) -> list[dict[str, Any]]:
        now = time.time()
        rows = self._all("SELECT * FROM workers" + (" WHERE work_pool = ?" if pool else "") + " ORDER BY work_pool, name",
                         (pool,) if pool else ())
        gone = worker_timeout()
        return [
            {"work_pool": r["work_pool"], "name": r["name"], "host": r["host"], "pid": r["pid"],
             "started": _iso(r["started"]), "last_seen": _iso(r["last_seen"]), "running": r["running"],
             "seconds_since_seen": round(now - r["last_seen"], 1), "online": now - r["last_seen"] < gone}
            for r in rows
        ]

    def set_pool_limit(self, pool: str, limit: int | None) -> dict[str, Any]:
        check_name(pool, "a work pool name")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"a concurrency limit is a whole number of runs (0 or more), got {limit!r}")
        self._tx(lambda conn: conn.execute(
            "INSERT INTO work_pools (name, concurrency_limit, created) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET concurrency_limit = excluded.concurrency_limit",
            (pool, limit, time.time())))
        return {"name": pool, "concurrency_limit": limit}

    def list_pools(self) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT p.name, w.concurrency_limit, "
            "(SELECT COUNT(*) FROM deployment_runs r WHERE r.work_pool = p.name AND r.status = 'scheduled') AS queued "
            "FROM (SELECT work_pool AS name FROM deployments UNION SELECT name FROM work_pools "
            "UNION SELECT work_pool FROM workers) AS p LEFT JOIN work_pools w ON w.name = p.name ORDER BY p.name")
        return [{"name": r["name"], "concurrency_limit": r["concurrency_limit"], "queued": r["queued"]} for r in rows]

    def report_crash(self, flow_run_id: str, message: str) -> bool:
        """A worker says the process of a run it claimed ended without a final state of its own
        (it could not load the flow, or was killed): the run ends CRASHED, unless it has ended."""
        now = time.time()

        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE flow_runs SET state_type = 'CRASHED', state_name = 'Crashed', message = ?, end_time = ?, "
                f"seq = MAX(seq + 1, 0), judged = NULL WHERE id = ? AND state_type NOT IN ({_FINAL})",
                (message, now, flow_run_id))
            conn.execute("INSERT OR IGNORE INTO state_history SELECT id, seq, state_type, state_name, ?, message "
                         "FROM flow_runs WHERE id = ?", (now, flow_run_id))
            return cursor.rowcount == 1

        return self._tx(write)

    # -- cancellation --------------------------------------------------------------------

    def request_cancel(self, flow_run_id: str, reason: str | None = None) -> dict[str, Any]:
        """Ask a flow run to end CANCELLED. One not started yet (scheduled, or claimed before its
        process said anything) is cancelled here and now; a running one's process sees the
        request in the answer to its next events (or its worker's next heartbeat)."""
        now = time.time()
        why = reason or "requested from the tracking server (prefect-like runs cancel)"

        def write(conn: sqlite3.Connection) -> dict[str, Any]:
            row = conn.execute("SELECT id, seq, state_type, state_name FROM flow_runs WHERE id = ?", (flow_run_id,)).fetchone()
            if row is None:
                rows = conn.execute("SELECT id, seq, state_type, state_name FROM flow_runs WHERE id LIKE ? LIMIT 2",
                                    (_prefix(flow_run_id),)).fetchall()
                if len(rows) != 1:
                    raise RunNotFoundError(f"no flow run with id {flow_run_id!r}")
                row = rows[0]
            if row["state_type"] in FINAL_TYPES:
                return {"id": row["id"], "state": row["state_type"], "state_name": row["state_name"], "cancelling": False}
            if row["seq"] < 0:  # not started: cancelled now, and its process, if one starts, stops at once
                message = f"Cancelled before it started: {why}"
                conn.execute("UPDATE deployment_runs SET status = 'done' WHERE flow_run_id = ?", (row["id"],))
                conn.execute(
                    "UPDATE flow_runs SET state_type = 'CANCELLED', state_name = 'Cancelled', message = ?, "
                    "end_time = ?, seq = ? WHERE id = ?", (message, now, _OVERRIDE_SEQ, row["id"]))
                conn.execute("INSERT OR IGNORE INTO state_history VALUES (?, ?, 'CANCELLED', 'Cancelled', ?, ?)",
                             (row["id"], _OVERRIDE_SEQ, now, message))
                conn.execute("INSERT INTO cancellations VALUES (?, ?, ?) ON CONFLICT (flow_run_id) DO NOTHING",
                             (row["id"], now, why))
                return {"id": row["id"], "state": "CANCELLED", "state_name": "Cancelled", "cancelling": False}
            conn.execute("INSERT INTO cancellations VALUES (?, ?, ?) ON CONFLICT (flow_run_id) DO NOTHING",
                         (row["id"], now, why))
            return {"id": row["id"], "state": row["state_type"], "state_name": row["state_name"], "cancelling": True}

        answer = self._tx(write)
        if answer["cancelling"]:
            self.cancelling[answer["id"]] = why
        return answer

    def cancels_for(self, flow_run_ids: Sequence[str], from_store: bool = False) -> dict[str, str]:
        """The cancellation requests among these flow runs: from memory (refreshed every tick),
        or from the store."""
        if not from_store:
            pending = self.cancelling
            return {i: pending[i] for i in flow_run_ids if i in pending} if pending else {}
        if not flow_run_ids:
            return {}
        rows = self._all("SELECT flow_run_id, reason FROM cancellations WHERE flow_run_id IN (SELECT value FROM json_each(?))",
                         (json.dumps(list(flow_run_ids)),))
        return {r[0]: r[1] for r in rows}

    # -- notifications -------------------------------------------------------------------

    def create_notification(self, spec: dict[str, Any]) -> dict[str, Any]:
        states = spec.get("states")
        if isinstance(states, str):
            states = [states]
        allowed = {"failed", "crashed", "late", "cancelled", "completed", "timedout"}
        if not states or not all(isinstance(s, str) and s.lower() in allowed for s in states):
            raise ValueError(f"--on takes one or more of {', '.join(sorted(allowed))}, got {states!r}")
        webhook = spec.get("webhook")
        if not isinstance(webhook, str) or not re.match(r"^https?://[^\s/]+", webhook):
            raise ValueError("webhook must be an http:// or https:// URL")
        deployment_id = None
        if spec.get("deployment"):
            deployment_id = self._retry(lambda: self._deployment_row(self._conn, spec["deployment"]))["id"]
        notification_id = uuid.uuid4().hex
        now = time.time()
        self._tx(lambda conn: conn.execute(
            "INSERT INTO notifications (id, states, webhook, flow_name, tag, deployment_id, active, created, checked) "
            "VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
            (notification_id, json.dumps(sorted({s.lower() for s in states})), webhook, spec.get("flow_name"),
             spec.get("tag"), deployment_id, now, now)))
        return self.get_notification(notification_id)

    @staticmethod
    def _notification(row: sqlite3.Row) -> dict[str, Any]:
        from prefect_like.notify import redact

        return {"id": row["id"], "on": _loads(row["states"]), "webhook": redact(row["webhook"]),
                "flow_name": row["flow_name"], "tag": row["tag"], "deployment_id": row["deployment_id"],
                "active": bool(row["active"]), "created": _iso(row["created"])}

    def get_notification(self, notification_id: str) -> dict[str, Any]:
        rows = self._all("SELECT * FROM notifications WHERE id = ? OR id LIKE ? LIMIT 2",
                         (notification_id, _prefix(notification_id)))
        if len(rows) != 1:
            raise RunNotFoundError(f"no notification {notification_id!r}")
        return self._notification(rows[0])

    def list_notifications(self) -> list[dict[str, Any]]:
        return [self._notification(r) for r in self._all("SELECT * FROM notifications ORDER BY created")]

    def delete_notification(self, notification_id: str) -> dict[str, Any]:
        found = self.get_notification(notification_id)
        self._tx(lambda conn: conn.execute("DELETE FROM notifications WHERE id = ?", (found["id"],)))
        return found

    def _due_notifications(self, conn: sqlite3.Connection, now: float) -> list[tuple[str, dict[str, Any]]]:
        """(webhook, body) of each notification due, each marked sent in the same transaction:
        a run's state is notified once, whichever server sees it first."""
        due: list[tuple[str, dict[str, Any]]] = []
        for n in conn.execute("SELECT * FROM notifications WHERE active = 1").fetchall():
            states = _loads(n["states"]) or []
            names = {"failed": ("Failed", "TimedOut"), "timedout": ("TimedOut",), "crashed": ("Crashed",),
                     "late": ("Late",), "cancelled": ("Cancelled",), "completed": ("Completed", "Cached")}
            wanted = sorted({name for s in states for name in names.get(s, ())})
            scope, params = "", [json.dumps(wanted), n["created"], n["id"]]
            if n["flow_name"] is not None:
                scope += " AND f.flow_name = ?"
                params.append(n["flow_name"])
            if n["deployment_id"] is not None:
                scope += " AND r.deployment_id = ?"
                params.append(n["deployment_id"])
            rows = conn.execute(
                "SELECT f.id, f.name, f.flow_name, f.state_type, f.state_name, f.message, f.end_time, "
                "r.deployment_id, d.name AS deployment, d.tags, f.tags AS run_tags, r.scheduled FROM flow_runs f "
                "LEFT JOIN deployment_runs r ON r.flow_run_id = f.id LEFT JOIN deployments d ON d.id = r.deployment_id "
                "WHERE f.state_name IN (SELECT value FROM json_each(?)) AND f.parent_flow_run_id IS NULL "
                "AND COALESCE(f.end_time, NULLIF(r.late, 0), f.created) >= ? "
                "AND NOT EXISTS (SELECT 1 FROM notifications_sent s WHERE s.notification_id = ? "
                "AND s.flow_run_id = f.id AND s.state_name = f.state_name)" + scope,
                params,
            ).fetchall()
            for r in rows:
                # the deployment's tags, then those of `with tags(...)` around the flow call
                tags = list(dict.fromkeys([*(_loads(r["tags"]) or []), *(_loads(r["run_tags"]) or [])]))
                if n["tag"] and n["tag"] not in tags:
                    continue
                conn.execute("INSERT OR IGNORE INTO notifications_sent VALUES (?, ?, ?, ?)",
                             (n["id"], r["id"], r["state_name"], now))
                due.append((n["webhook"], {
                    "notification_id": n["id"], "flow_run_id": r["id"], "flow_run_name": r["name"],
                    "flow_name": r["flow_name"], "state": r["state_type"], "state_name": r["state_name"],
                    "message": r["message"], "deployment": r["deployment"], "tags": tags,
                    "end_time": _iso(r["end_time"]), "scheduled_time": _iso(r["scheduled"]),
                }))
        return due

    # -- the scheduler's tick ------------------------------------------------------------

    def tick(self, now: float | None = None) -> list[tuple[str, dict[str, Any]]]:
        """One pass of the scheduler loop; returns the notifications to send."""
        now = time.time() if now is None else now

        def write(conn: sqlite3.Connection) -> list[tuple[str, dict[str, Any]]]:
            self._make_scheduled(conn, now)
            self._name_late(conn, now)
            self._finish_claims(conn, now)
            self._requeue_orphans(conn, now)
            return self._due_notifications(conn, now)

        due = self._tx(write)
        rows = self._all(
            "SELECT c.flow_run_id, c.reason FROM cancellations c JOIN flow_runs f ON f.id = c.flow_run_id "
            f"WHERE f.state_type NOT IN ({_FINAL})")
        self.cancelling = {r[0]: r[1] for r in rows}
        return due

    def _make_scheduled(self, conn: sqlite3.Connection, now: float) -> int:
        """Make the runs each schedule has due within the horizon. A schedule remembers the
        first time it has not made a run for (``next_due``), so one with nothing new within the
        horizon costs nothing here: of a thousand schedules a minute, a tick sees a few."""
        made = 0
        ahead, most = horizon(), max_runs_ahead()
        schedules = conn.execute(
            "SELECT s.* FROM schedules s JOIN deployments d ON d.id = s.deployment_id "
            "WHERE s.active = 1 AND d.paused = 0 AND (s.next_due IS NULL OR s.next_due <= ?)", (now + ahead,)).fetchall()
        deployments: dict[str, sqlite3.Row] = {}
        for s in schedules:
            if made >= MAX_MADE_PER_TICK:  # the write lock is held meanwhile: the rest next tick
                break
            deployment = deployments.get(s["deployment_id"])
            if deployment is None:
                deployment = deployments[s["deployment_id"]] = conn.execute(
                    "SELECT * FROM deployments WHERE id = ?", (s["deployment_id"],)).fetchone()
            (pending,) = conn.execute(
                "SELECT COUNT(*) FROM deployment_runs WHERE schedule_id = ? AND status = 'scheduled' AND scheduled > ?",
                (s["id"], now)).fetchone()
            room = most - pending
            start = s["scheduled_until"] if s["scheduled_until"] is not None else min(now, s["created"])
            start = max(start, now - ahead)  # a gap longer than the horizon is not filled
            spec = {"kind": s["kind"], "cron": s["cron"], "timezone": s["timezone"],
                    "interval": s["every"], "anchor": s["anchor"]}
            # Times missed (the server was down) first, then the future ones; a long gap is
            # filled over several ticks.
            times = next_times(spec, start, now + ahead, max(0, room) + 500)
            chosen = [t for t in times if t <= now] + [t for t in times if t > now][:max(0, room)]
            parameters = _loads(deployment["parameters"]) or {}
            for t in chosen:
                flow_run_id = uuid.uuid5(_NAMESPACE, f"{s['id']}:{t!r}").hex
                if self._insert_run(conn, deployment, flow_run_id, t, parameters, s["id"], 1, None, now):
                    made += 1
            until = chosen[-1] if chosen else start
            following = next_times(spec, until, math.inf, 1)
            conn.execute(
                "UPDATE schedules SET scheduled_until = MAX(COALESCE(scheduled_until, 0), ?), next_due = ? WHERE id = ?",
                (until, following[0] if following else math.inf, s["id"]))
        return made

    @staticmethod
    def _name_late(conn: sqlite3.Connection, now: float) -> list[str]:
        """Name Late the runs still unclaimed ``late_after`` seconds past their time."""
        late = [r[0] for r in conn.execute(
            "SELECT flow_run_id FROM deployment_runs WHERE status = 'scheduled' AND scheduled < ? AND late = 0",
            (now - late_after(),))]
        for flow_run_id in late:
            conn.execute("UPDATE deployment_runs SET late = ? WHERE flow_run_id = ?", (now, flow_run_id))
            conn.execute(
                "UPDATE flow_runs SET state_name = 'Late', message = 'Late: its scheduled time passed and no worker "
                "of its pool claimed it' WHERE id = ? AND seq < 0 AND state_name = 'Scheduled'", (flow_run_id,))
        return late

    def _finish_claims(self, conn: sqlite3.Connection, now: float) -> None:
        """Claimed runs that ended are done; a crashed one runs again while its deployment's
        retries allow, as a new flow run (its attempt number one higher)."""
        rows = conn.execute(
            "SELECT r.*, f.state_type FROM deployment_runs r JOIN flow_runs f ON f.id = r.flow_run_id "
            f"WHERE r.status = 'claimed' AND f.state_type IN ({_FINAL})").fetchall()
        for r in rows:
            conn.execute("UPDATE deployment_runs SET status = 'done' WHERE flow_run_id = ?", (r["flow_run_id"],))
            if r["state_type"] != "CRASHED":
                continue
            deployment = conn.execute("SELECT * FROM deployments WHERE id = ?", (r["deployment_id"],)).fetchone()
            if deployment is None or r["attempt"] > deployment["retries"]:
                continue
            retry_id = uuid.uuid5(_NAMESPACE, f"retry:{r['flow_run_id']}").hex
            self._insert_run(conn, deployment, retry_id, now, _loads(r["parameters"]) or {}, r["schedule_id"],
                             r["attempt"] + 1, r["flow_run_id"], now)

    @staticmethod
    def _requeue_orphans(conn: sqlite3.Connection, now: float) -> None:
        """Hand out again the runs claimed by a worker gone silent before they began."""
        orphans = [r[0] for r in conn.execute(
            "SELECT r.flow_run_id FROM deployment_runs r JOIN flow_runs f ON f.id = r.flow_run_id "
            "WHERE r.status = 'claimed' AND f.seq < 0 AND NOT EXISTS (SELECT 1 FROM workers w "
            "WHERE w.work_pool = r.work_pool AND w.name = r.worker AND w.last_seen > ?)", (now - worker_timeout(),))]
        for flow_run_id in orphans:
            conn.execute("UPDATE deployment_runs SET status = 'scheduled', worker = NULL, claimed = NULL "
                         "WHERE flow_run_id = ?", (flow_run_id,))
            conn.execute(
                "UPDATE flow_runs SET state_type = 'SCHEDULED', state_name = 'Scheduled', "
                "message = 'Scheduled again: the worker that claimed it went away before it started' "
                "WHERE id = ? AND seq < 0", (flow_run_id,))


__all__ = ["Control", "check_parameters", "check_schedule", "next_times"]
