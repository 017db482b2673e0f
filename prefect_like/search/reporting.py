"""``report()`` and ``should_prune()``: what a trial says while it runs, and what it is told.

    @task
    def train(lr: float, epochs: int = 20) -> dict:
        for epoch in range(epochs):
            loss = fit_one_epoch(lr)
            sweep.report(step=epoch, loss=loss)      # a learning curve, stored per task run
            if sweep.should_prune():                 # the search's scheduler stops poor trials
                raise sweep.TrialPruned()
        return {"loss": loss}

``report(..., checkpoint=...)`` also stores a checkpoint (``checkpoints``), for a retry to
resume from (``get_checkpoint()``) and for the search's reader (``Trial.checkpoint``).

``report`` appends one ``MetricPoint`` (a tuple of plain values) to the process's event buffer:
no I/O, no request, no lock. The Recorder makes the points of each task run in a batch one
``metric`` event and sends it to the store with the run's other events; on a Dask or Ray worker
they travel home with the batch's events, as log lines do. So a trial that reports every step
costs its flow less than a log line per step.

Inside a search (``sweep.optimize``) with a scheduler, ``report`` also hands the search's metric
to the scheduler's board (``board``) and keeps its answer: ``should_prune()`` returns it. Raising
``TrialPruned`` then ends the run COMPLETED named ``Pruned``, its last reported metrics as its
result. Outside a search, ``should_prune()`` is always False, and ``report`` only records.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import math
import numbers
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prefect_like.context import task_run_context
from prefect_like.errors import TrialPruned
from prefect_like.search import checkpoints
from prefect_like.states import Pruned, State
from prefect_like.tracking.events import MetricPoint, emit

_new_tuple = tuple.__new__

if TYPE_CHECKING:
    from prefect_like.search.board import Board


MAX_METRICS = 200  # per report: a learning curve, not a table (artifacts hold tables)


class TrialContext:
    """What a search trial knows while it runs: its board, its last report and the verdict."""

    __slots__ = ("board", "step", "metrics", "prune")

    def __init__(self, board: Board | None) -> None:
        self.board = board
        self.step: float | None = None
        self.metrics: dict[str, Any] | None = None
        self.prune = False


_trial: contextvars.ContextVar[TrialContext | None] = contextvars.ContextVar("prefect_like_trial", default=None)


def _number(name: str, value: Any) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"report(): metric {name!r} must be a number, got {type(value).__name__} {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None  # JSON has no NaN: stored as null


def report(*, step: float, checkpoint: Any = None, **metrics: Any) -> None:
    """Record ``metrics`` (numbers) of the current task run at ``step``; a search's scheduler
    sees them too. Call it from inside a task run: a trial of ``optimize`` or any task.

    ``checkpoint`` (a folder, a file or bytes) is stored as the run's checkpoint at ``step``
    (``search.checkpoints``): ``get_checkpoint()`` gives it to a later attempt of the run, and
    ``Trial.checkpoint`` to whoever reads the search."""
    context = task_run_context.get()
    if context is None:
        raise RuntimeError("report() is called from inside a task run: a trial of sweep.optimize, or any @task")
    if step.__class__ is not int and (
        isinstance(step, bool) or not isinstance(step, numbers.Real) or not math.isfinite(step)
    ):
        raise TypeError(f"report(): step must be a finite number (the epoch, iteration or budget), got {step!r}")
    if not metrics or len(metrics) > MAX_METRICS:
        if not metrics:
            raise TypeError("report() needs at least one metric, e.g. report(step=3, loss=0.25)")
        raise ValueError(f"report() takes at most {MAX_METRICS} metrics at a step, got {len(metrics)}")
    # ``metrics`` is this call's own dict: checked in place, and only what is not a plain
    # finite float or int is converted (it is on every step of every trial).
    for name, value in metrics.items():
        kind = value.__class__
        if kind is float:
            if value - value != 0.0:  # NaN or an infinity: JSON has neither
                metrics[name] = None
        elif kind is not int:
            metrics[name] = _number(name, value)
    if checkpoint is not None:
        checkpoints.save(context, step, checkpoint)
    emit(_new_tuple(MetricPoint, (context.task_run_id, next(context.log_seq), context.flow_run_id, time.time(),
                                  step, metrics)))
    trial = _trial.get()
    if trial is None:
        return
    trial.step, trial.metrics = step, metrics
    if trial.board is not None:
        trial.prune = trial.board.report(context.task_run_id, step, metrics)


def should_prune() -> bool:
    """Whether the search's scheduler has asked this trial to stop (after its last ``report``).

    As in Optuna: ``if should_prune(): raise TrialPruned()``. False outside a search."""
    trial = _trial.get()
    return trial is not None and trial.prune


# The wrapper below is shipped to workers by value (cloudpickle); it reaches the context variable
# only through these module functions, which travel by reference.


def _begin(board: Board | None) -> tuple[TrialContext, contextvars.Token[TrialContext | None]]:
    trial = TrialContext(board)
    return trial, _trial.set(trial)


def _end(token: contextvars.Token[TrialContext | None]) -> None:
    _trial.reset(token)


def _pruned(trial: TrialContext, exc: TrialPruned) -> State:
    at = f" at step {trial.step:g}" if trial.step is not None else ""
    why = f": {exc}" if str(exc) else ""
    return Pruned(trial.metrics, f"Pruned{at}{why}")


def trial_function(fn: Callable[..., Any], board: Board | None) -> Callable[..., Any]:
    """``fn`` as a search runs it: with the trial's context set, and ``TrialPruned`` turned into
    a ``Pruned`` state (COMPLETED) whose result is the last reported metrics. It keeps ``fn``'s
    signature, so the trial's parameters are the function's own."""
    begin, end, pruned, stopped = _begin, _end, _pruned, TrialPruned

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            trial, token = begin(board)
            try:
                return await fn(*args, **kwargs)
            except stopped as exc:
                return pruned(trial, exc)
            finally:
                end(token)

        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        trial, token = begin(board)
        try:
            return fn(*args, **kwargs)
        except stopped as exc:
            return pruned(trial, exc)
        finally:
            end(token)

    return run


__all__ = ["TrialContext", "TrialPruned", "report", "should_prune", "trial_function"]
