"""``optimize``: a search over a space as one tracked flow, its trials as task runs, on any runner.

    search = sweep.optimize(train, sweep.Space(lr=sweep.loguniform(1e-4, 1e-1), depth=sweep.integer(2, 8)),
                            metric="loss", mode="min", n_trials=100, sampler="tpe",
                            scheduler=sweep.ASHA(max_t=27), max_concurrent=4, name="digits")
    search.best.params, search.best.value

What happens, in order:

1. The sweep is found or made. A sweep is a name and an id that groups its flow runs: the first
   run and every resume. ``resume=True`` (or ``prefect-like sweeps resume ID``) continues the
   newest sweep of that name: its stored trials are read back (from every earlier run), the
   sampler is told them (``restore``), and the trials that did not complete are run again, with
   their parameters and trial numbers. No cache policy is needed for this.
2. One flow run (named ``sweep-<name>``) runs the search on the runner. Its first event says
   which sweep it belongs to (a ``sweep`` event), so the store groups it, and a Ctrl-C tells
   how to resume it.
3. The loop, on the flow's thread: while fewer than ``max_concurrent`` trials run and the budget
   (``n_trials`` in all, counting the earlier runs', and/or ``timeout`` seconds for this run)
   allows, ask the sampler for a point and submit a trial (a task run named ``trial-<n>``);
   as each trial ends, tell the sampler its value and the scheduler its end. Trials report
   through ``report`` and stop through ``should_prune``/``TrialPruned`` (``reporting``, ``board``).
4. The flow returns a summary; ``optimize`` returns a ``Search``: ``trials``, ``best``,
   ``results_frame()``, and ``study`` when an Optuna sampler ran.

A trial's value is its result when the objective returns a number, or ``result[metric]`` when it
returns a dict; a dict without the metric stops the search with an error naming the keys it has.
A trial that fails is told to the sampler as failed and the search goes on; ``Search.trials``
and the store say why it failed.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
import queue
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect_like.search import checkpoints
from prefect_like.search.board import Board
from prefect_like.search.reporting import trial_function
from prefect_like.search.samplers import OptunaSampler, make_sampler
from prefect_like.search.schedulers import Scheduler, from_description

if TYPE_CHECKING:
    import pandas as pd

    from prefect_like.futures import TaskFuture
    from prefect_like.states import State
    from prefect_like.sweep import Grid, Space

MODES = ("min", "max")
# The state names of trials whose outcome the sampler learns from; any other is run again on resume.
KEPT_STATES = frozenset({"Completed", "Cached", "Pruned"})


@dataclasses.dataclass
class Trial:
    """One trial of a search: its number, parameters, how it ended and its value."""

    number: int
    params: dict[str, Any]
    state: str | None = None  # the state name: Completed, Pruned, Failed, ...
    value: Any = None  # the metric (a list for several), None if it has none
    result: Any = None
    task_run_id: str | None = None
    flow_run_id: str | None = None
    message: str | None = None
    duration: float | None = None
    sweep: str | None = None  # the search's name

    @property
    def completed(self) -> bool:
        return self.state in ("Completed", "Cached")

    @property
    def checkpoint(self) -> Path | None:
        """The folder of the trial's latest checkpoint (``report(..., checkpoint=...)``), or None."""
        return checkpoints.checkpoint_of(self.task_run_id) if self.task_run_id else None


class Search:
    """What a search found: its trials (every run of the sweep), the best, a table of them."""

    def __init__(self, sweep_id: str, name: str, flow_run_id: str, state: State, metric: list[str],
                 mode: list[str], trials: list[Trial], sampler: Any) -> None:
        self.sweep_id, self.name, self.flow_run_id, self.state = sweep_id, name, flow_run_id, state
        self.metric, self.mode = metric, mode
        self.trials = sorted(trials, key=lambda t: t.number)
        self.sampler = sampler

    def __repr__(self) -> str:
        done = sum(t.completed for t in self.trials)
        return f"Search({self.name!r}, {len(self.trials)} trials, {done} completed, id={self.sweep_id})"

    @property
    def study(self) -> Any:
        """The Optuna study, when an Optuna sampler ran the search; else None."""
        return self.sampler.study if isinstance(self.sampler, OptunaSampler) else None

    @property
    def best(self) -> Trial:
        """The best completed trial by the metric (pruned and failed trials are left out, as
        Optuna's ``best_trial`` leaves them out). Several metrics have ``best_trials`` instead."""
        if len(self.metric) > 1:
            raise ValueError(
                f"a search of several metrics ({', '.join(self.metric)}) has no single best; use best_trials"
            )
        scored = [t for t in self.trials if t.completed and _finite(t.value)]
        if not scored:
            raise ValueError(f"search {self.name!r} has no completed trial with a {self.metric[0]!r} yet")
        pick = min if self.mode[0] == "min" else max
        return pick(scored, key=lambda t: t.value)

    @property
    def best_trials(self) -> list[Trial]:
        """The completed trials no other beats on every metric (the Pareto front)."""
        signs = [1.0 if m == "min" else -1.0 for m in self.mode]
        scored = [t for t in self.trials if t.completed and t.value is not None]

        def values(t: Trial) -> list[float]:
            raw = t.value if isinstance(t.value, (list, tuple)) else [t.value]
            return [s * float(v) for s, v in zip(signs, raw, strict=False)]

        def beats(a: list[float], b: list[float]) -> bool:
            return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))

        return [t for t in scored if not any(beats(values(o), values(t)) for o in scored if o is not t)]

    def results_frame(self, history: bool = False) -> pd.DataFrame:
        """The trials as a DataFrame, one row each, trial number first, parameters in the space's
        order; with ``history=True``, one row per reported step (``step``, ``metric.<name>``)."""
        import pandas as pd

        rows = []
        for t in self.trials:
            row: dict[str, Any] = {"trial": t.number, "state": t.state, "value": t.value,
                                   "duration": t.duration, "task_run_id": t.task_run_id,
                                   "flow_run_id": t.flow_run_id}
            row.update({f"param.{k}": v for k, v in t.params.items()})
            if isinstance(t.result, dict):
                row.update({f"result.{k}": v for k, v in t.result.items()})
            elif t.result is not None:
                row["result"] = t.result
            rows.append(row)
        frame = pd.DataFrame(rows)
        if not history or frame.empty:
            return frame
        from prefect_like.client import connect

        with connect() as reader:
            points = [p for run_id in dict.fromkeys(t.flow_run_id for t in self.trials if t.flow_run_id)
                      for p in reader.metrics(flow_run_id=run_id)]
        return _with_history(frame, points, "task_run_id")


def _with_history(frame: pd.DataFrame, points: list[dict[str, Any]], key: str) -> pd.DataFrame:
    """``frame`` (one row per task run) joined with its reports: one row per step."""
    import pandas as pd

    steps = pd.DataFrame([
        {key: p["task_run_id"], "step": p["step"], **{f"metric.{k}": v for k, v in (p["metrics"] or {}).items()}}
        for p in points
    ])
    if steps.empty:
        return frame.assign(step=pd.Series(dtype="float"))
    return frame.merge(steps, on=key, how="inner").sort_values([key, "step"], kind="stable").reset_index(drop=True)


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


# -- what a sweep is, stored so that it can be resumed ------------------------------------------


def describe_space(space: Space | Grid) -> dict[str, Any]:
    from prefect_like import sweep

    if isinstance(space, sweep.Grid):
        return {"grid": {name: list(values) for name, values in space.axes.items()}}
    dims: dict[str, Any] = {}
    for name, d in space.dimensions.items():
        if isinstance(d, sweep._LogUniform):
            dims[name] = ["loguniform", d.lo, d.hi]
        elif isinstance(d, sweep._Uniform):
            dims[name] = ["uniform", d.lo, d.hi]
        elif isinstance(d, sweep._Integer):
            dims[name] = ["integer", d.lo, d.hi]
        elif isinstance(d, sweep._Choice):
            dims[name] = ["choice", list(d.options)]
        else:
            dims[name] = [repr(d)]
    return {"space": dims}


def space_from(description: Mapping[str, Any]) -> Space | Grid:
    from prefect_like import sweep

    if "grid" in description:
        return sweep.grid(**description["grid"])
    makers: dict[str, Callable[..., sweep.Dimension]] = {"uniform": sweep.uniform, "loguniform": sweep.loguniform, "integer": sweep.integer,
              "choice": sweep.choice}
    dims = {}
    for name, (kind, *args) in description["space"].items():
        if kind not in makers:
            raise ValueError(f"cannot rebuild dimension {name!r} ({kind}) of the stored space")
        dims[name] = makers[kind](*args)
    return sweep.Space(**dims)


def _objective_target(fn: Callable[..., Any]) -> dict[str, Any]:
    """Where the objective can be imported from again (``sweeps resume``)."""
    target: dict[str, Any] = {"module": getattr(fn, "__module__", None), "qualname": getattr(fn, "__qualname__", None)}
    try:
        target["file"] = inspect.getsourcefile(fn)
    except TypeError:
        target["file"] = None
    return target


# -- the search ---------------------------------------------------------------------------------


def _check(space: Any, metric: Any, mode: Any, n_trials: Any, timeout: Any, max_concurrent: Any,
           sampler: Any) -> tuple[list[str], list[str]]:
    from prefect_like.sweep import Grid, Space

    if not isinstance(space, (Space, Grid)):
        raise TypeError(f"space must be a sweep.Space or a sweep.grid(...), got {type(space).__name__}")
    metrics = [metric] if isinstance(metric, str) else list(metric)
    modes = [mode] if isinstance(mode, str) else list(mode)
    if not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise ValueError(f"metric must name the objective's result to optimise, e.g. metric='loss'; got {metric!r}")
    if len(modes) == 1 and len(metrics) > 1:
        modes = modes * len(metrics)
    if len(modes) != len(metrics) or any(m not in MODES for m in modes):
        raise ValueError(f"mode must be 'min' or 'max' (one per metric), got {mode!r}")
    if n_trials is None and timeout is None and not isinstance(space, Grid) and (
        isinstance(sampler, str) or type(sampler).__module__.startswith("optuna")
    ):
        raise ValueError("give n_trials, a timeout (seconds), or both: a search of a space never ends by itself")
    if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1):
        raise ValueError(f"n_trials must be a whole number of 1 or more, got {n_trials!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
        raise ValueError(f"max_concurrent must be a whole number of 1 or more, got {max_concurrent!r}")
    return metrics, modes


def optimize(
    objective: Callable[..., Any],
    space: Space | Grid,
    *,
    metric: str | Sequence[str] = "loss",
    mode: str | Sequence[str] = "min",
    n_trials: int | None = None,
    timeout: float | None = None,
    sampler: Any = "random",
    scheduler: Scheduler | None = None,
    max_concurrent: int = 4,
    task_runner: Any = "thread",
    name: str | None = None,
    seed: int | None = None,
    resume: bool = False,
    callbacks: Sequence[Callable[[Trial], Any]] = (),
    **constants: Any,
) -> Search:
    """Search ``space`` for the parameters of ``objective`` (a function or a ``@task``) that
    minimise or maximise ``metric``; one flow run, each trial a task run. ``constants`` go whole
    to every trial. ``callbacks`` are called with each ``Trial`` as it ends (its state and value
    set), on the flow's thread, as Optuna's ``study.optimize(callbacks=...)`` are: to log trials
    elsewhere (MLflow, TensorBoard), or to stop the search by raising. See the module docstring
    for what happens, and ``docs/guide/sweeps.md``."""
    from prefect_like.sweep import _check_names
    from prefect_like.tasks import Task, task

    metrics, modes = _check(space, metric, mode, n_trials, timeout, max_concurrent, sampler)
    if not isinstance(objective, Task):
        if not callable(objective):
            raise TypeError(f"objective must be a function or a @task, got {objective!r}")
        objective = task(objective)
    swept = space.axes if hasattr(space, "axes") else space.dimensions
    _check_names(objective, swept, constants)
    name = name or objective.name
    directions = ["minimize" if m == "min" else "maximize" for m in modes]
    made = make_sampler(sampler, space, directions, seed)
    spec = {
        **describe_space(space),
        "objective": _objective_target(objective.fn),
        "metric": metrics, "mode": modes, "n_trials": n_trials, "timeout": timeout,
        "sampler": sampler if isinstance(sampler, str) else None,
        "scheduler": scheduler.describe() if scheduler is not None else None,
        "max_concurrent": max_concurrent, "seed": getattr(made, "seed", seed),
        "task_runner": task_runner if isinstance(task_runner, str) else None,
        "constants": {k: v for k, v in constants.items() if isinstance(v, (int, float, str, bool, type(None)))},
    }
    previous = _stored(name) if resume else None
    run = _SearchRun(objective, made, scheduler, metrics, modes, n_trials, timeout, max_concurrent, constants,
                     name, spec, previous, list(swept))
    run.callbacks = list(callbacks)
    return run.run(task_runner)


def resume(sweep: str, task_runner: Any = None) -> Search:
    """Continue a stored sweep (an id, a unique id prefix or a name) from what its runs stored:
    the objective is imported again from where the first run found it."""
    from prefect_like.client import connect

    with connect() as reader:
        stored = reader.get_sweep(sweep)
    spec = stored["spec"]
    objective = _import_objective(spec.get("objective") or {})
    if spec.get("sampler") is None:
        raise ValueError(
            f"sweep {stored['name']!r} was searched with a sampler object, which cannot be rebuilt from the store; "
            f"resume it from Python: sweep.optimize(..., name={stored['name']!r}, resume=True)"
        )
    runner = task_runner or spec.get("task_runner") or "thread"
    return optimize(
        objective, space_from(spec), metric=spec["metric"], mode=spec["mode"], n_trials=spec.get("n_trials"),
        timeout=spec.get("timeout"), sampler=spec["sampler"], scheduler=from_description(spec.get("scheduler")),
        max_concurrent=spec.get("max_concurrent") or 4, task_runner=runner, name=stored["name"],
        seed=spec.get("seed"), resume=True, **(spec.get("constants") or {}),
    )


def _import_objective(target: Mapping[str, Any]) -> Callable[..., Any]:
    import importlib
    import importlib.util
    import sys
    from pathlib import Path

    qualname = target.get("qualname") or ""
    module_name = target.get("module") or ""
    module: Any = None
    if module_name and module_name != "__main__":
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module = None
    path = target.get("file")
    if module is None and path and Path(path).is_file():
        loaded = f"_prefect_like_sweep_{abs(hash(str(Path(path).resolve())))}"
        spec = importlib.util.spec_from_file_location(loaded, path)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            sys.modules[loaded] = module  # Dask and Ray pickle by reference
            sys.path.insert(0, str(Path(path).resolve().parent))
            spec.loader.exec_module(module)
    if module is None:
        raise ValueError(f"cannot import the sweep's objective {qualname!r} (module {module_name!r}, file {path!r})")
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise ValueError(f"{path or module_name} has no {qualname!r} to resume the sweep with; is it defined at the top level?")
    return found


def _stored(name: str) -> dict[str, Any] | None:
    """The newest sweep of this name with every trial its runs stored, or None if there is none."""
    from prefect_like.client import connect
    from prefect_like.errors import RunNotFoundError

    with connect() as reader:
        try:
            sweep = reader.get_sweep(name)
        except RunNotFoundError:
            return None
        trials: dict[int, Trial] = {}
        for run in sweep["runs"]:
            try:
                rows = reader.iter_task_runs(run["id"])
                for row in rows:
                    number = _trial_number(row.get("name"))
                    if number is None:
                        continue
                    trials[number] = Trial(  # a later run's attempt at a trial replaces the earlier
                        number, dict(row.get("parameters") or {}), row.get("state_name"), None,
                        row.get("result"), row["id"], run["id"], row.get("message"), row.get("duration"),
                        sweep=name,
                    )
            except RunNotFoundError:
                continue
    sweep["trials"] = trials
    return sweep


def _trial_number(name: Any) -> int | None:
    if isinstance(name, str) and name.startswith("trial-") and name[6:].isdigit():
        return int(name[6:])
    return None


class _SearchRun:
    """One flow run of a sweep: the loop of asks, trials and tells."""

    def __init__(self, objective: Any, sampler: Any, scheduler: Scheduler | None, metrics: list[str],
                 modes: list[str], n_trials: int | None, timeout: float | None, max_concurrent: int,
                 constants: dict[str, Any], name: str, spec: dict[str, Any], previous: dict[str, Any] | None,
                 swept: list[str]) -> None:
        self.sampler, self.scheduler = sampler, scheduler
        self.metrics, self.modes = metrics, modes
        self.n_trials, self.timeout, self.max_concurrent = n_trials, timeout, max_concurrent
        self.constants, self.name, self.spec = constants, name, spec
        self.sweep_id = previous["id"] if previous else uuid.uuid4().hex
        self.attempt = len(previous["runs"]) if previous else 0
        self.board = Board(scheduler, metrics[0], modes[0]) if scheduler is not None else None
        self.trials: dict[int, Trial] = dict(previous["trials"]) if previous else {}
        for trial in self.trials.values():  # the stored parameters hold the constants too
            trial.params = {k: trial.params[k] for k in swept if k in trial.params}
        self.objective = objective
        self._next_name = [""]
        self.trial_task = self._trial_task(objective)
        self.flow_run_id = ""
        self.callbacks: list[Callable[[Trial], Any]] = []

    def _trial_task(self, objective: Any) -> Any:
        from prefect_like.tasks import Task

        names = self._next_name  # the closure holds this list only: the task is shipped to workers
        options = dataclasses.replace(objective.options, task_run_name=lambda: names[0])
        return Task(trial_function(objective.fn, self.board), options)

    def run(self, task_runner: Any) -> Search:
        from prefect_like.engine import signals
        from prefect_like.flows import flow

        body = flow(name=f"sweep-{self.name}", task_runner=task_runner, validate_parameters=False)(self.body)
        try:
            state = body(return_state=True)
        finally:
            # The hint is read as an interrupted run ends, after the body: dropped only here.
            signals.RESUME_HINTS.pop(self.flow_run_id, None)
            if self.board is not None:
                self.board.close()
        if state.is_failed() or state.is_crashed():
            state.result()  # the search's own error (a missing metric, a sampler that raised)
        return Search(self.sweep_id, self.name, self.flow_run_id, state, self.metrics, self.modes,
                      list(self.trials.values()), self.sampler)

    # -- the flow's body -------------------------------------------------------------------------

    def body(self) -> dict[str, Any]:
        from prefect_like.context import flow_run_context
        from prefect_like.engine import signals
        from prefect_like.tracking.events import emit, sweep_event

        context = flow_run_context.get()
        assert context is not None
        self.flow_run_id = context.flow_run_id
        emit(sweep_event(self.sweep_id, self.attempt, self.flow_run_id, time.time(), self.name, self.spec))
        signals.RESUME_HINTS[self.flow_run_id] = (
            f"`prefect-like sweeps resume {self.sweep_id}` continues the search from the trials "
            f"stored (or sweep.optimize(..., name={self.name!r}, resume=True))."
        )
        return self._loop()

    def _restore(self) -> list[Trial]:
        """Tell the sampler what the earlier runs stored; the trials to run again.

        A sampler with ``restore`` gets every stored trial (a seeded random search skips the
        points it drew before, the ones to run again included); one without is told the
        trials that ended."""
        stored, again = [], []
        for trial in sorted(self.trials.values(), key=lambda t: t.number):
            if trial.state in KEPT_STATES:
                trial.value = self._value(trial.result, trial.state) if trial.result is not None else None
            else:
                again.append(trial)
            stored.append((trial.params, trial.value, trial.state or "Pending"))
        restore = getattr(self.sampler, "restore", None)
        if restore is not None and stored:
            restore(stored)
        else:
            for params, value, state in stored:
                if state in KEPT_STATES:
                    self.sampler.tell(params, value, state)
        return again

    def _loop(self) -> dict[str, Any]:
        again = self._restore()
        number = max(self.trials, default=-1) + 1
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        done: queue.SimpleQueue[TaskFuture[Any]] = queue.SimpleQueue()
        running: dict[TaskFuture[Any], Trial] = {}
        exhausted = False
        while True:
            while len(running) < self.max_concurrent and not exhausted:
                if deadline is not None and time.monotonic() >= deadline:
                    exhausted = True
                    break
                if again:  # a stored trial that did not complete: the same number and point
                    trial = again.pop(0)
                    enqueue = getattr(self.sampler, "enqueue", None)
                    params = enqueue(trial.params) if enqueue is not None else trial.params
                    trial_number = trial.number
                else:
                    if self.n_trials is not None and len(self.trials) >= self.n_trials:
                        exhausted = True
                        break
                    asked = self.sampler.ask()
                    if asked is None:
                        exhausted = True
                        break
                    params, trial_number = asked, number
                    number += 1
                trial = Trial(trial_number, params, sweep=self.name)
                self.trials[trial_number] = trial
                self._next_name[0] = f"trial-{trial_number}"
                future = self.trial_task.submit(**params, **self.constants)
                trial.task_run_id, trial.flow_run_id = future.task_run_id, self.flow_run_id
                running[future] = trial
                future.add_done_callback(done.put)
            if not running:
                break
            try:
                future = done.get(timeout=1.0)  # a timeout keeps the wait open to Ctrl-C
            except queue.Empty:
                continue
            trial = running.pop(future)
            self._ended(trial, future.state)
        completed = [t for t in self.trials.values() if t.completed]
        return {"sweep_id": self.sweep_id, "trials": len(self.trials), "completed": len(completed)}

    def _ended(self, trial: Trial, state: State) -> None:
        trial.state = state.name
        trial.message = state.message
        result = state.result(raise_on_failure=False) if state.is_completed() else None
        trial.result = result
        trial.value = self._value(result, state.name) if state.is_completed() else None
        if state.is_completed():
            self.sampler.tell(trial.params, trial.value, state.name)
        else:
            self.sampler.tell(trial.params, None, state.name)
        if self.board is not None:
            first = trial.value[0] if isinstance(trial.value, list) else trial.value
            self.board.complete(trial.task_run_id or "", first, state.name == "Pruned")
        for callback in self.callbacks:
            callback(trial)

    def _value(self, result: Any, state: str | None) -> Any:
        """The trial's metric(s) from its result; for a pruned trial its last report."""
        values: list[float | None] = []
        for metric in self.metrics:
            if isinstance(result, Mapping):
                if metric not in result:
                    if state == "Pruned":
                        values.append(None)
                        continue
                    known = ", ".join(map(str, result)) or "none"
                    raise ValueError(
                        f"the objective returned no {metric!r} (the search's metric); its result has {known}"
                    )
                value = result[metric]
            else:
                value = result
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
                raise ValueError(
                    f"the search's metric {metric!r} must be a number; the objective returned {value!r}"
                )
            values.append(None if value is None else float(value))
        return values[0] if len(values) == 1 else values


__all__ = ["Search", "Trial", "optimize", "resume"]
