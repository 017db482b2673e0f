"""The store's reads of what searches add: reported metrics, sweeps and the flow runs of each.

A mixin of ``Store`` beside ``queries.Reads`` (whose id lookups and locked-retry loop it uses),
returning the same kind of plain JSON-able dicts, times as ISO-8601 UTC strings.

- ``metrics``: what task runs reported (``sweep.report``), per task run or for a whole flow run,
  in step order: ``{"task_run_id", "seq", "step", "timestamp", "metrics"}``.
- ``list_sweeps`` / ``get_sweep``: a sweep is a search with a name and an id; its flow runs are
  the first run and every resume (``attempt`` 0, 1, ...). ``get_sweep`` takes an id, a unique id
  prefix, or a name (the newest sweep of that name).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prefect_like.errors import RunNotFoundError
from prefect_like.tracking.queries import _count, iso, loads

T = TypeVar("T")

_SWEEP_COLUMNS = (
    "s.id, s.name, s.created, s.spec, "
    "(SELECT COUNT(*) FROM sweep_runs AS r WHERE r.sweep_id = s.id)"
)


def metric_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    run_id, seq, step, timestamp, values = row
    step = int(step) if isinstance(step, float) and step.is_integer() else step
    return {"task_run_id": run_id, "seq": seq, "step": step, "timestamp": iso(timestamp),
            "metrics": loads(values)}


def sweep_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    id_, name, created, spec, runs = row
    spec = loads(spec)
    return {"id": id_, "name": name, "created": iso(created),
            "spec": spec if isinstance(spec, dict) else {}, "flow_runs": runs}


class SweepReads:
    """Reads of metrics and sweeps; ``Store`` supplies the connection (through ``queries.Reads``)."""

    _all: Callable[..., list[Any]]
    _one: Callable[..., Any]
    _flow_ref: Callable[[str], tuple[int, str]]
    _task_run_id: Callable[[str], str]
    _matches: Callable[[str, str], list[str]]

    # -- metrics ---------------------------------------------------------------------------

    def metrics(
        self, task_run_id: str | None = None, flow_run_id: str | None = None,
        limit: int | None = None, offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Reported metrics of one task run, or of every task run of a flow run, by run then step."""
        if (task_run_id is None) == (flow_run_id is None):
            raise ValueError("give exactly one of task_run_id and flow_run_id")
        param: str | int
        if task_run_id is not None:
            where, param = "run_id = ?", self._task_run_id(task_run_id)
        else:
            # Through the flow run's task runs: the metrics table has no index of its own on it.
            where = "run_id IN (SELECT id FROM task_runs WHERE flow_key = ?)"
            param = self._flow_ref(str(flow_run_id))[0]
        rows = self._all(
            f"SELECT run_id, seq, step, timestamp, metrics FROM metrics WHERE {where} "
            "ORDER BY run_id, step, seq LIMIT ? OFFSET ?",
            (param, -1 if limit is None else _count(limit, "limit"), _count(offset, "offset")),
        )
        return [metric_dict(row) for row in rows]

    # -- sweeps ----------------------------------------------------------------------------

    def list_sweeps(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Sweeps, newest first."""
        rows = self._all(
            f"SELECT {_SWEEP_COLUMNS} FROM sweeps AS s ORDER BY s.created DESC, s.id LIMIT ? OFFSET ?",
            (_count(limit, "limit"), _count(offset, "offset")),
        )
        return [sweep_dict(row) for row in rows]

    def count_sweeps(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM sweeps")[0])

    def _sweep_id(self, ident: str) -> str:
        ident = str(ident).strip()
        found = self._matches("sweeps", ident)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            shown = ", ".join(found)
            raise RunNotFoundError(f"{ident!r} is ambiguous: it starts the ids of sweeps {shown}; give more of it")
        row = self._one("SELECT id FROM sweeps WHERE name = ? ORDER BY created DESC LIMIT 1", (ident,))
        if row is None:
            raise RunNotFoundError(f"no sweep with id or name {ident!r}; `prefect-like sweeps ls` lists them")
        return str(row[0])

    def get_sweep(self, id_or_name: str) -> dict[str, Any]:
        """A sweep, with ``runs``: its flow runs, oldest first (the first run, then each resume),
        each with its state and its task runs counted by state name."""
        sweep_id = self._sweep_id(id_or_name)
        sweep = sweep_dict(self._one(f"SELECT {_SWEEP_COLUMNS} FROM sweeps AS s WHERE s.id = ?", (sweep_id,)))
        runs = self._all(
            "SELECT r.flow_run_id, r.attempt, f.state_type, f.state_name, f.start_time, f.end_time, f.key "
            "FROM sweep_runs AS r LEFT JOIN flow_runs AS f ON f.id = r.flow_run_id "
            "WHERE r.sweep_id = ? ORDER BY r.attempt, r.created",
            (sweep_id,),
        )
        sweep["runs"] = [
            {
                "id": flow_run_id, "attempt": attempt, "state": state_type, "state_name": state_name,
                "start_time": iso(start), "end_time": iso(end),
                "task_runs": self._counts_of(key) if key is not None else {},
            }
            for flow_run_id, attempt, state_type, state_name, start, end, key in runs
        ]
        return sweep

    def _counts_of(self, flow_key: int) -> dict[str, int]:
        rows = self._all(
            "SELECT state_name, COUNT(*) FROM task_runs WHERE flow_key = ? GROUP BY state_name ORDER BY state_name",
            (flow_key,),
        )
        return {name or "Unknown": n for name, n in rows}

    def sweep_of(self, flow_run_id: str) -> str | None:
        """The id of the sweep a flow run belongs to, if any."""
        row = self._one("SELECT sweep_id FROM sweep_runs WHERE flow_run_id = ? LIMIT 1",
                        (self._flow_ref(flow_run_id)[1],))
        return None if row is None else str(row[0])


def flow_run_ids(reader: Any, sweep: dict[str, Any]) -> Sequence[str]:
    """The ids of a sweep's flow runs (as ``get_sweep`` gives it), oldest first."""
    return [run["id"] for run in sweep.get("runs", [])]


__all__ = ["SweepReads", "flow_run_ids", "metric_dict", "sweep_dict"]
