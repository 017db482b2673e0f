"""Parameter sweeps as first-class objects: grids, random spaces, and their results as a table.

    from prefect_like import flow, sweep, task

    @flow
    def search():
        grid = sweep.grid(lr=[0.1, 0.01], depth=[2, 4, 8]).map(train)      # 6 task runs
        rand = sweep.Space(lr=sweep.loguniform(1e-4, 1e-1),
                           depth=sweep.integer(2, 8)).map(train, n=50, seed=0)

    sweep.best(search, "loss", k=5)      # after the flow: a DataFrame of the 5 lowest losses

``Grid.map`` and ``Space.map`` expand into one ``Task.map`` call, so each point is one task run
and each swept name is one of the task's own parameters: the store, ``runs tasks``, ``runs
export`` and the dashboard show it as its own column (``param.lr``). Points are made lazily, in
step with the runner's bounded submission, so a grid of a million points is never a list.

A ``Space`` is sampled with its own ``random.Random``: the same seed gives the same points on
every machine and Python version, and point ``i`` depends only on the seed and ``i``'s
predecessors, so ``sample(10, seed)`` is the first ten of ``sample(1000, seed)``.

The table functions (``results``, ``results_frame``, ``best``) read the tracker the settings
point at (the embedded store, or the tracking server when ``PREFECT_LIKE_API_URL`` is set)
through ``prefect_like.export``, the code behind ``prefect-like runs export``, so Python and the
CLI give the same columns. pyarrow and pandas are imported only when one of them is called.
"""

from __future__ import annotations

import itertools
import math
import numbers
import operator
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prefect_like.futures import FutureList
from prefect_like.search import (
    ASHA,
    GridSampler,
    Hyperband,
    MedianStopping,
    OptunaSampler,
    RandomSampler,
    Scheduler,
    Search,
    SuccessiveHalving,
    Trial,
    TrialPruned,
    checkpoint_of,
    get_checkpoint,
    optimize,
    report,
    resume,
    should_prune,
)
from prefect_like.tasks import Task, _is_iterable, unmapped

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from prefect_like.client import Reader
    from prefect_like.flows import Flow
    from prefect_like.states import State

__all__ = [
    "ASHA",
    "Dimension",
    "Grid",
    "GridSampler",
    "Hyperband",
    "MedianStopping",
    "OptunaSampler",
    "RandomSampler",
    "Scheduler",
    "Search",
    "Space",
    "SuccessiveHalving",
    "Trial",
    "TrialPruned",
    "best",
    "checkpoint_of",
    "choice",
    "get_checkpoint",
    "grid",
    "integer",
    "loguniform",
    "optimize",
    "report",
    "results",
    "results_frame",
    "resume",
    "should_prune",
    "uniform",
]


# -- grids ----------------------------------------------------------------------------------


class Grid(Sequence[dict[str, Any]]):
    """The cartesian product of named axes: every combination of their values, as dicts.

    A read-only sequence (``len``, indexing, iteration) computed on demand; the last axis varies
    fastest, as in ``itertools.product``. Make one with ``grid(lr=[...], depth=[...])``.
    """

    def __init__(self, axes: Mapping[str, Sequence[Any]]) -> None:
        if not axes:
            raise ValueError("a grid needs at least one axis, e.g. grid(lr=[0.1, 0.01])")
        self.axes: dict[str, tuple[Any, ...]] = {}
        for name, values in axes.items():
            if isinstance(values, (str, bytes, Mapping)) or not _is_iterable(values):
                raise TypeError(
                    f"grid axis {name!r} must be a list of values, got {type(values).__name__} "
                    f"{values!r}; write {name}=[{values!r}] for one value, or pass a constant "
                    "to .map() as a keyword"
                )
            self.axes[name] = tuple(values)
            if not self.axes[name]:
                raise ValueError(f"grid axis {name!r} has no values, so the grid would have no points")

    def __len__(self) -> int:
        return math.prod(len(values) for values in self.axes.values())

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        if not isinstance(index, int):
            raise TypeError(f"grid indices must be integers, got {type(index).__name__}")
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError(f"grid index {index} out of range for a grid of {size} points")
        point: dict[str, Any] = {}
        for name, values in reversed(self.axes.items()):
            index, position = divmod(index, len(values))
            point[name] = values[position]
        return dict(reversed(point.items()))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        names = list(self.axes)
        for values in itertools.product(*self.axes.values()):
            yield dict(zip(names, values, strict=True))

    def __repr__(self) -> str:
        shape = " x ".join(f"{name}[{len(values)}]" for name, values in self.axes.items())
        return f"Grid({shape} = {len(self)} points)"

    def map(self, task: Task[..., Any], **constants: Any) -> FutureList[Any]:
        """One task run per grid point, inside a flow; ``constants`` go whole to every run.

        Equivalent to ``task.map(**columns, **{k: unmapped(v) ...})``, so every axis is a
        parameter of the task and a column of the run table.
        """
        _check_names(task, self.axes, constants)
        columns = _columns(iter(self), list(self.axes))
        return task.map(**columns, **{name: unmapped(value) for name, value in constants.items()})


def grid(**axes: Sequence[Any]) -> Grid:
    """The cartesian product of the given axes: ``grid(lr=[0.1, 0.01], depth=[2, 4])`` has 4 points.

    ``list(grid(...))`` gives the points as dicts; ``grid(...).map(task)`` runs the task on each
    one inside a flow (where ``task.map`` would zip, this crosses).
    """
    return Grid(axes)


# -- random search spaces ---------------------------------------------------------------------


class Dimension:
    """One dimension of a ``Space``: draws a value from a ``random.Random``."""

    def draw(self, rng: random.Random) -> Any:
        raise NotImplementedError


class _Uniform(Dimension):
    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = _bounds("uniform", lo, hi)

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(self.lo, self.hi)

    def __repr__(self) -> str:
        return f"uniform({self.lo!r}, {self.hi!r})"


class _LogUniform(Dimension):
    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = _bounds("loguniform", lo, hi)
        if self.lo <= 0:
            raise ValueError(f"loguniform needs 0 < lo < hi, got lo={lo!r}; a log scale has no zero or negatives")
        self._log_lo, self._log_hi = math.log(self.lo), math.log(self.hi)

    def draw(self, rng: random.Random) -> float:
        return min(self.hi, max(self.lo, math.exp(rng.uniform(self._log_lo, self._log_hi))))

    def __repr__(self) -> str:
        return f"loguniform({self.lo!r}, {self.hi!r})"


class _Integer(Dimension):
    def __init__(self, lo: int, hi: int) -> None:
        for value in (lo, hi):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"integer(lo, hi) takes whole numbers, got {value!r}")
        if lo >= hi:
            raise ValueError(f"integer needs lo < hi, got lo={lo!r}, hi={hi!r}")
        self.lo, self.hi = int(lo), int(hi)

    def draw(self, rng: random.Random) -> int:
        return rng.randint(self.lo, self.hi)

    def __repr__(self) -> str:
        return f"integer({self.lo!r}, {self.hi!r})"


class _Choice(Dimension):
    def __init__(self, options: Sequence[Any]) -> None:
        if isinstance(options, (str, bytes, Mapping)) or not _is_iterable(options):
            raise TypeError(f"choice takes a list of options, got {type(options).__name__} {options!r}")
        self.options = tuple(options)
        if not self.options:
            raise ValueError("choice needs at least one option, got an empty list")

    def draw(self, rng: random.Random) -> Any:
        return self.options[rng.randrange(len(self.options))]

    def __repr__(self) -> str:
        return f"choice({list(self.options)!r})"


def uniform(lo: float, hi: float) -> Dimension:
    """A float drawn uniformly from ``[lo, hi]``."""
    return _Uniform(lo, hi)


def loguniform(lo: float, hi: float) -> Dimension:
    """A float whose logarithm is uniform: as likely in ``[1e-4, 1e-3]`` as in ``[1e-2, 1e-1]``.

    For learning rates and regularisation strengths; needs ``0 < lo < hi``.
    """
    return _LogUniform(lo, hi)


def integer(lo: int, hi: int) -> Dimension:
    """A whole number drawn uniformly from ``lo`` to ``hi``, both included."""
    return _Integer(lo, hi)


def choice(options: Sequence[Any]) -> Dimension:
    """One of ``options``, each equally likely."""
    return _Choice(options)


class Space:
    """A random-search space: named dimensions, sampled with a seed.

        space = Space(lr=loguniform(1e-4, 1e-1), depth=integer(2, 12),
                      kernel=choice(["rbf", "linear"]))
        space.sample(3, seed=0)          # three dicts
        space.map(train, n=100, seed=0)  # 100 task runs, inside a flow
    """

    def __init__(self, **dimensions: Dimension) -> None:
        if not dimensions:
            raise ValueError("a space needs at least one dimension, e.g. Space(lr=loguniform(1e-4, 1e-1))")
        for name, dimension in dimensions.items():
            if not isinstance(dimension, Dimension):
                raise TypeError(
                    f"space dimension {name!r} must be uniform(), loguniform(), integer() or "
                    f"choice(), got {dimension!r}; pass a constant to .map() as a keyword instead"
                )
        self.dimensions: dict[str, Dimension] = dict(dimensions)

    def __repr__(self) -> str:
        return "Space(" + ", ".join(f"{name}={dim!r}" for name, dim in self.dimensions.items()) + ")"

    def points(self, n: int, seed: int | None = None) -> Iterator[dict[str, Any]]:
        """``n`` random points, made one at a time (for sweeps too large to hold as a list)."""
        n = _positive_count(n)
        rng = random.Random(seed)
        dimensions = list(self.dimensions.items())
        for _ in range(n):
            yield {name: dimension.draw(rng) for name, dimension in dimensions}

    def sample(self, n: int, seed: int | None = None) -> list[dict[str, Any]]:
        """``n`` random points as dicts; the same ``seed`` gives the same points."""
        return list(self.points(n, seed))

    def map(self, task: Task[..., Any], n: int, seed: int | None = None, **constants: Any) -> FutureList[Any]:
        """``n`` task runs at random points, inside a flow; ``constants`` go whole to every run.

        Without a ``seed`` one is chosen and written to the flow run's log, so any sweep can be
        repeated.
        """
        n = _positive_count(n)
        _check_names(task, self.dimensions, constants)
        if seed is None:
            seed = random.SystemRandom().randrange(2**32)
            from prefect_like.logging import get_run_logger

            get_run_logger().info("Sampling %d points of %r with seed=%d", n, self, seed)
        columns = _columns(self.points(n, seed), list(self.dimensions))
        return task.map(**columns, **{name: unmapped(value) for name, value in constants.items()})


# -- results as a table -------------------------------------------------------------------------

def _flow_run_id(run: str | State | Flow[..., Any], reader: Reader) -> str:
    """A flow run id from an id (or prefix), a flow run's final State, or a Flow (its newest run)."""
    from prefect_like.errors import RunNotFoundError
    from prefect_like.flows import Flow
    from prefect_like.states import State

    if isinstance(run, Flow):
        newest = reader.list_flow_runs(flow_name=run.name, limit=1)
        if not newest:
            raise RunNotFoundError(f"flow {run.name!r} has no runs in the tracker yet")
        return str(newest[0]["id"])
    if isinstance(run, State):
        if run.run_id is None:
            raise ValueError("this State belongs to no run; pass the State a flow returned with return_state=True")
        return run.run_id
    if isinstance(run, str):
        return str(reader.get_flow_run(run)["id"])
    raise TypeError(f"expected a flow run id, a flow run's State or a Flow, got {type(run).__name__}")


def _read(fn: Any, run: Any, source: Reader | None, *args: Any, **kwargs: Any) -> Any:
    from prefect_like.client import connect

    reader = source if source is not None else connect()
    try:
        return fn(_flow_run_id(run, reader), *args, source=reader, **kwargs)
    finally:
        if source is None:
            reader.close()


def results(run: str | State | Flow[..., Any], *, source: Reader | None = None) -> pa.Table:
    """A flow run's task runs as a pyarrow Table, one row per task run.

    ``run`` is a flow run id (or a unique prefix), the State a flow returned with
    ``return_state=True``, or a Flow (its newest run). Columns: ``id, task_name, name,
    map_index, state, state_name, start_time, end_time, duration, run_count``, then ``param.<name>`` per parameter,
    ``result.<key>`` per result field (``result`` for a scalar result), ``error_type,
    error_message``, exactly as ``prefect-like runs export`` writes them.
    """
    from prefect_like import export

    return _read(export.task_runs_table, run, source)


def results_frame(
    run: str | State | Flow[..., Any], *, history: bool = False, source: Reader | None = None
) -> pd.DataFrame:
    """``results(run)`` as a pandas DataFrame; with ``history=True``, one row per step a task run
    reported (``report``): its columns, then ``step`` and ``metric.<name>`` per metric."""
    from prefect_like import export

    frame = _read(export.task_runs_frame, run, source)
    if not history:
        return frame
    from prefect_like.search.optimize import _with_history

    points = _read(lambda flow_run_id, source: source.metrics(flow_run_id=flow_run_id), run, source)
    return _with_history(frame, points, "id")


_PLAIN_KEYS = frozenset({"start_time", "end_time", "duration", "map_index", "task_name", "state", "created"})


def best(
    run: str | State | Flow[..., Any],
    key: str,
    k: int = 10,
    minimize: bool = True,
    *,
    source: Reader | None = None,
) -> pd.DataFrame:
    """The ``k`` best completed task runs of a flow run by a result field, as a DataFrame.

    ``key`` names a field of the task's result (``"loss"`` or ``"result.loss"``; dots reach into
    nested dicts, ``"result"`` is a scalar result) or ``"duration"``. The tracker sorts, so this
    costs one page however large the sweep; failed runs are left out, runs missing the field go
    last. Same columns as ``results``.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a whole number of 1 or more, got {k!r}")
    key = key.strip()
    if key.startswith("-"):
        raise ValueError(f"key {key!r}: say minimize=False for highest first instead of a '-' prefix")
    if key not in _PLAIN_KEYS and key != "result" and not key.startswith("result."):
        key = f"result.{key}"
    from prefect_like import export

    frame = _read(export.best, run, source, k, key if minimize else f"-{key}")
    if key.startswith("result") and len(frame) and key not in frame.columns:
        # The store sorts a missing field last, so a typo would give k arbitrary rows.
        known = ", ".join(c for c in frame.columns if c.startswith("result")) or "no result fields"
        raise ValueError(f"no result key {key[len('result.'):]!r}; the completed task runs have {known}")
    return frame


# -- helpers -------------------------------------------------------------------------------------


def _bounds(kind: str, lo: float, hi: float) -> tuple[float, float]:
    for value in (lo, hi):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{kind}(lo, hi) takes numbers, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{kind}(lo, hi) takes finite numbers, got {value!r}")
    if lo >= hi:
        raise ValueError(f"{kind} needs lo < hi, got lo={lo!r}, hi={hi!r}")
    return float(lo), float(hi)


def _positive_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be a whole number, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be 1 or more, got {n!r}")
    return int(n)


def _check_names(task: Task[..., Any], swept: Mapping[str, Any], constants: Mapping[str, Any]) -> None:
    if not isinstance(task, Task):
        raise TypeError(f"expected a @task, got {task!r}; decorate the function with @task")
    both = sorted(set(swept) & set(constants))
    if both:
        raise TypeError(f"{', '.join(both)} is both swept and given as a constant")
    parameters = task.signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = [name for name in (*swept, *constants) if name not in parameters]
    if unknown:
        raise TypeError(
            f"task {task.name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are {', '.join(parameters) or 'none'}"
        )


def _columns(points: Iterator[dict[str, Any]], names: list[str]) -> dict[str, Iterator[Any]]:
    """One lazy iterator per name over the same stream of points.

    ``Task.map`` zips its iterables in lockstep, so ``tee`` buffers at most one point.
    """
    streams = itertools.tee(points, len(names))
    return {name: map(operator.itemgetter(name), stream) for name, stream in zip(names, streams, strict=True)}
