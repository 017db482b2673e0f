"""The dashboard's own JSON routes: what its filters, sort headers and links need beyond the API.

The page itself (``static/``) is plain ES modules over the tracking API, served by the app at
``/``: no build step, no CDN, so it ships inside the package and works offline. What it shows of
a 200,000-task flow run is one page of rows (``/api/flow-runs/{id}/task-runs``, with its total)
or an aggregate computed in SQL (counts by state, ``/api/flow-runs/{id}/throughput``), never the
whole table. The routes here fill the remaining gaps, each a handful of index seeks:

- ``GET /api/dashboard/flow-names``: distinct flow names, for the flow filter.
- ``GET /api/dashboard/flow-tags``: the tags flow runs have, for the tag filter.
- ``GET /api/dashboard/flow-runs/{id}/facets``: the run's task names (task filter) and the keys
  its dict results have (one sortable column each: "the 20 best losses" is one click).
- ``GET /api/dashboard/flow-runs/{id}/subflows``: the flow runs whose parent is this one.
- ``GET /api/dashboard/flow-runs/{id}/sweep``, ``.../sweep/trials`` and ``.../sweep/curves``:
  the sweep view's plots, its trials table and its learning curves, aggregated on the server
  (``sweep_view``); ``/api/dashboard/sweeps/{id}/sweep...`` the same over a stored sweep's
  flow runs (the first and every resume).

They live under ``/api/dashboard/`` so they never collide with the API's own ``/api/flow-runs/{id}``;
the app must include ``router`` before its catch-all ``/api/{rest}`` route. Reads go through the
app's ``Tracker`` (``request.app.state.tracker``), so they share its per-thread read connections
and its error handling (unknown ids 404, bad input 422).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam

from prefect_like.server import sweep_view
from prefect_like.server.schemas import Problem
from prefect_like.tracking import queries as q
from prefect_like.tracking.store import Store

# Completed task runs sampled per task name to find the result keys: results of one task are alike.
RESULT_SAMPLE = 20
MAX_TASK_NAMES = 500
MAX_SUBFLOWS = 1000

IdParam = Annotated[str, PathParam(min_length=1, max_length=200)]
SweepParam = Annotated[str, PathParam(min_length=1, max_length=500)]

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"])

# "The next distinct value after n" as a recursive CTE: one index seek per distinct value, where
# SELECT DISTINCT would walk all 200,000 index entries of a big flow run.
_SKIP_SCAN = (
    "WITH RECURSIVE v(x) AS ("
    " SELECT MIN({col}) FROM {table} WHERE {where}"
    " UNION ALL"
    " SELECT (SELECT MIN({col}) FROM {table} WHERE {where} AND {col} > x) FROM v WHERE x IS NOT NULL"
    ") SELECT x FROM v WHERE x IS NOT NULL LIMIT {limit}"
)
_FLOW_NAMES = _SKIP_SCAN.format(col="flow_name", table="flow_runs", where="1 = 1", limit=MAX_TASK_NAMES)
_TASK_NAMES = _SKIP_SCAN.format(
    col="task_name", table="task_runs", where="flow_key = ?1", limit=MAX_TASK_NAMES
)


def _read(request: Request, fn: Any) -> Any:
    return request.app.state.tracker.read(fn)


@router.get("/flow-names")
def flow_names(request: Request) -> list[str]:
    return _read(request, lambda s: [r[0] for r in s._all(_FLOW_NAMES)])


@router.get("/flow-tags")
def flow_tags(request: Request) -> list[str]:
    def read(s: Store) -> list[str]:
        lists = s._all("SELECT DISTINCT tags FROM flow_runs WHERE tags IS NOT NULL LIMIT 1000")
        return sorted({t for (text,) in lists for t in q._list(q.loads(text)) if isinstance(t, str)})[:MAX_TASK_NAMES]

    return _read(request, read)


@router.get("/flow-runs/{flow_run_id}/facets")
def facets(request: Request, flow_run_id: IdParam) -> dict[str, list[str]]:
    """``task_names`` of the run, and ``result_keys``: the scalar fields of its dict results."""

    def read(s: Store) -> dict[str, list[str]]:
        key, _ = s._flow_ref(flow_run_id)
        names = [r[0] for r in s._all(_TASK_NAMES, (key,))]
        seen: dict[str, int] = {}  # key -> sampled results having it; the commonest lead
        for name in names[:20]:
            rows = s._all(
                "SELECT result FROM task_runs WHERE flow_key = ? AND task_name = ? "
                "AND state_type = 'COMPLETED' AND result IS NOT NULL LIMIT ?",
                (key, name, RESULT_SAMPLE),
            )
            for (text,) in rows:
                value = q.loads(text)  # a result that is not JSON has no keys to offer
                if isinstance(value, dict):
                    for k, v in value.items():
                        if q.RESULT_KEY.match(k) and isinstance(v, int | float | str | bool):
                            seen[k] = seen.get(k, 0) + 1
        keys = sorted(seen, key=lambda k: -seen[k])  # stable: ties keep the results' order
        return {"task_names": names, "result_keys": keys}

    return _read(request, read)


@router.get("/flow-runs/{flow_run_id}/subflows")
def subflows(request: Request, flow_run_id: IdParam) -> list[dict[str, Any]]:
    """The flow runs started from inside this one, oldest first."""

    def read(s: Store) -> list[dict[str, Any]]:
        _, parent = s._flow_ref(flow_run_id)
        rows = s._all(
            f"SELECT {q.FLOW_COLUMNS} FROM flow_runs WHERE parent_flow_run_id = ? "
            "ORDER BY created, key LIMIT ?",
            (parent, MAX_SUBFLOWS),
        )
        return [s._flow(row) for row in rows]

    return _read(request, read)


# -- the sweep view ---------------------------------------------------------------------------
#
# The same views for one flow run (``/flow-runs/{id}/sweep...``) and for a stored sweep, whose
# trials are those of its every flow run, the first and each resume (``/sweeps/{id}/sweep...``).

_trials = sweep_view.TrialsCache()

Task = Annotated[str | None, Query(max_length=500)]
Metric = Annotated[str | None, Query(max_length=500)]
Mode = Annotated[str | None, Query(pattern="^(min|max)$")]
Filters = Annotated[str | None, Query(max_length=100_000)]
Where = Annotated[str | None, Query(max_length=10_000)]
Points = Annotated[int, Query(ge=1, le=sweep_view.MAX_POINTS)]
Bins = Annotated[int, Query(ge=1, le=sweep_view.MAX_BINS)]
OrderBy = Annotated[str | None, Query(max_length=500)]
PageLimit = Annotated[int, Query(ge=0, le=1000)]
PageOffset = Annotated[int, Query(ge=0)]
CurveLimit = Annotated[int, Query(ge=1, le=sweep_view.MAX_CURVES)]


@dataclass
class _Source:
    """What a sweep view shows: its flow runs, the task shown, every task's count, the trials."""

    flow_runs: list[dict[str, Any]]
    task: str | None
    tasks: dict[str, int]
    trials: sweep_view.Trials

    @property
    def live(self) -> bool:
        return any(not q.is_final(r["state"], r["state_name"]) for r in self.flow_runs)

    def only(self, s: Store, where: str | None) -> set[str] | None:
        """The trials a where expression keeps, or None without one."""
        if not where:
            return None
        kept: set[str] = set()
        for run in self.flow_runs:
            kept |= s.task_run_ids(run["id"], self.task, where)
        return kept


def _source(s: Store, flow_runs: list[dict[str, Any]], what: str, task: str | None) -> _Source:
    tasks: dict[str, int] = {}
    for run in flow_runs:
        for name, n in s.task_name_counts(run["id"]).items():
            tasks[name] = tasks.get(name, 0) + n
    tasks = dict(sorted(tasks.items(), key=lambda item: (-item[1], item[0])))
    if task is None:
        task = next(iter(tasks), None)
    elif task not in tasks:
        known = ", ".join(tasks) or "none yet"
        raise sweep_view.BadRequest(f"{what} has no runs of task {task!r}; its tasks are {known}")
    return _Source(flow_runs, task, tasks, _trials.get(s, flow_runs, task))


def _of_flow_run(flow_run_id: str, task: str | None) -> Callable[[Store], _Source]:
    def source(s: Store) -> _Source:
        run = s.get_flow_run(flow_run_id)
        return _source(s, [run], f"flow run {run['id']}", task)

    return source


def _of_sweep(sweep: str, task: str | None) -> Callable[[Store], _Source]:
    def source(s: Store) -> _Source:
        stored = s.get_sweep(sweep)
        runs = [s.get_flow_run(r["id"]) for r in stored["runs"] if r.get("state") is not None]
        return _source(s, runs, f"sweep {stored['name'] or stored['id']}", task)

    return source


def _overview(
    request: Request, source: Callable[[Store], _Source], *, metric: str | None, mode: str | None,
    filters: str | None, where: str | None, points: int, bins: int,
) -> dict[str, Any]:
    specs = _filters(filters)

    def read(s: Store) -> dict[str, Any]:
        src = source(s)
        out = src.trials.memoized(
            ("overview", metric, mode, filters, where, points, bins),
            lambda: sweep_view.overview(
                src.trials, metric=metric, mode=mode, filters=specs, points=points, bins=bins,
                only=src.only(s, where),
            ),
        )
        return {"flow_run_ids": [r["id"] for r in src.flow_runs], "task": src.task,
                "tasks": src.tasks, "live": src.live, **out}

    return _read(request, read)


def _page(
    request: Request, source: Callable[[Store], _Source], *, filters: str | None,
    where: str | None, order_by: str | None, limit: int, offset: int,
) -> dict[str, Any]:
    specs = _filters(filters)

    def read(s: Store) -> dict[str, Any]:
        src = source(s)
        keep = src.trials.memoized(
            ("order", filters, where, order_by),
            lambda: sweep_view.ordered(
                src.trials, filters=specs, order_by=order_by, only=src.only(s, where)
            ),
        )
        return sweep_view.page(src.trials, keep, limit=limit, offset=offset)

    return _read(request, read)


def _curves(
    request: Request, source: Callable[[Store], _Source], *, metric: str | None, mode: str | None,
    name: str | None, filters: str | None, where: str | None, limit: int,
) -> dict[str, Any]:
    specs = _filters(filters)

    def read(s: Store) -> dict[str, Any]:
        src = source(s)
        trials = src.trials

        def choose() -> list[int]:
            keep = trials.matching(specs, src.only(s, where))
            column = trials.column(metric) if metric else trials.default_metric()
            chosen_mode = mode or ("min" if column is None else sweep_view.overview_mode(column))
            return sweep_view.curve_trials(trials, keep, column, chosen_mode == "min", limit)

        chosen = trials.memoized(("curves", metric, mode, filters, where, limit), choose)
        ids = [trials.ids[i] for i in chosen]
        rows = s._all(
            f"SELECT run_id, step, metrics FROM metrics WHERE run_id IN ({', '.join('?' * len(ids))}) "
            "ORDER BY run_id, step, seq",
            ids,
        ) if ids else []
        return sweep_view.curves(trials, chosen, rows, name)

    return _read(request, read)


@router.get("/flow-runs/{flow_run_id}/sweep")
def sweep(
    request: Request, flow_run_id: IdParam, task: Task = None, metric: Metric = None,
    mode: Mode = None, filters: Filters = None, where: Where = None, points: Points = 2000,
    bins: Bins = 30,
) -> dict[str, Any]:
    """The sweep view's plots of one task's runs (the task with most runs unless ``task`` says):
    columns, sampled points, the metric's histogram, best so far, parameter importance; of
    the trials a ``where`` expression keeps (``param.kernel == "rbf" and result.loss < 0.3``),
    narrowed further by ``filters``."""
    return _overview(request, _of_flow_run(flow_run_id, task), metric=metric, mode=mode,
                     filters=filters, where=where, points=points, bins=bins)


@router.get("/flow-runs/{flow_run_id}/sweep/trials")
def sweep_trials(
    request: Request, flow_run_id: IdParam, task: Task = None, filters: Filters = None,
    where: Where = None, order_by: OrderBy = None, limit: PageLimit = 50, offset: PageOffset = 0,
) -> dict[str, Any]:
    """One page of the trials table: one value per parameter and result column, sorted
    (``order_by=param.lr``, ``-result.loss`` for highest first; also ``trial``, ``duration``,
    ``state``) and filtered like the plots (``where``, then ``filters``)."""
    return _page(request, _of_flow_run(flow_run_id, task), filters=filters, where=where,
                 order_by=order_by, limit=limit, offset=offset)


@router.get("/flow-runs/{flow_run_id}/sweep/curves")
def sweep_curves(
    request: Request, flow_run_id: IdParam, task: Task = None, metric: Metric = None,
    mode: Mode = None, name: Metric = None, filters: Filters = None, where: Where = None,
    limit: CurveLimit = 30,
) -> dict[str, Any]:
    """Learning curves: what the trials reported with ``sweep.report`` (``name``: which metric,
    by default the first reported), step by step, for the best trials by the sweep's metric,
    the pruned ones and then the rest, ``limit`` trials in all."""
    return _curves(request, _of_flow_run(flow_run_id, task), metric=metric, mode=mode, name=name,
                   filters=filters, where=where, limit=limit)


@router.get("/sweeps/{sweep_id}/sweep")
def stored_sweep(
    request: Request, sweep_id: SweepParam, task: Task = None, metric: Metric = None,
    mode: Mode = None, filters: Filters = None, where: Where = None, points: Points = 2000,
    bins: Bins = 30,
) -> dict[str, Any]:
    """As ``/flow-runs/{id}/sweep``, over every flow run of a stored sweep (by id, unique id
    prefix or name)."""
    return _overview(request, _of_sweep(sweep_id, task), metric=metric, mode=mode,
                     filters=filters, where=where, points=points, bins=bins)


@router.get("/sweeps/{sweep_id}/sweep/trials")
def stored_sweep_trials(
    request: Request, sweep_id: SweepParam, task: Task = None, filters: Filters = None,
    where: Where = None, order_by: OrderBy = None, limit: PageLimit = 50, offset: PageOffset = 0,
) -> dict[str, Any]:
    """As ``/flow-runs/{id}/sweep/trials``, over every flow run of a stored sweep."""
    return _page(request, _of_sweep(sweep_id, task), filters=filters, where=where,
                 order_by=order_by, limit=limit, offset=offset)


@router.get("/sweeps/{sweep_id}/sweep/curves")
def stored_sweep_curves(
    request: Request, sweep_id: SweepParam, task: Task = None, metric: Metric = None,
    mode: Mode = None, name: Metric = None, filters: Filters = None, where: Where = None,
    limit: CurveLimit = 30,
) -> dict[str, Any]:
    """As ``/flow-runs/{id}/sweep/curves``, over every flow run of a stored sweep."""
    return _curves(request, _of_sweep(sweep_id, task), metric=metric, mode=mode, name=name,
                   filters=filters, where=where, limit=limit)


def _filters(text: str | None) -> list[dict[str, Any]]:
    try:
        return sweep_view.parse_filters(text)
    except sweep_view.BadRequest as exc:
        raise Problem(422, str(exc)) from None
