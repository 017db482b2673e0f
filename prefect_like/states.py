"""The state vocabulary: the ONE place that says which states exist, which are final, which fail.

Everything else reads it from here: the engine and the runners, the store (which states end a
run's row), the event folding, the CLI's progress view, the tracking API, and the dashboard,
which fetches ``vocabulary()`` from ``GET /api/states`` instead of keeping a copy in JS.

A state is a type plus a name. The type is one of six enum values, stable because the store,
the HTTP API and the dashboard see them; never rename them. The name says more: ``Cached`` and
``Pruned`` (a search stopped the trial early) are COMPLETED, ``Retrying`` and ``Rescheduled`` are RUNNING, ``TimedOut`` is FAILED, and ``NotReady``
is PENDING although it ends the run (an upstream did not complete, so the task never ran). Any
constructor takes ``name=`` for a name of one's own, as Prefect 3's do (``Completed(name="Skipped")``).

The rules are plain frozensets and dicts of ``str``, so a reader holding a stored row or an
event tuple needs no enum (and ``StateType`` members, being ``str``, are found in them too).
"""

from __future__ import annotations

import enum
import time
from typing import Any


class StateType(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CRASHED = "CRASHED"
    CANCELLED = "CANCELLED"
    # A flow run a deployment made, waiting for its time and a worker; named Late once its
    # time has passed unclaimed (Prefect's names). Only the tracking server makes it.
    SCHEDULED = "SCHEDULED"


STATE_TYPES = tuple(t.value for t in StateType)
FINAL_TYPES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
# The types of a run that raised, or whose process died: where a failure starts. The other runs
# that did not complete (NotReady, Cancelled) follow from one of these or from the user.
ERROR_TYPES = ("FAILED", "CRASHED")

# The state names the framework produces, with their type. A store may hold others (``name=``).
NAMES: dict[str, str] = {
    "Pending": "PENDING",
    "NotReady": "PENDING",
    "Running": "RUNNING",
    "Retrying": "RUNNING",
    "Rescheduled": "RUNNING",
    "Completed": "COMPLETED",
    "Cached": "COMPLETED",
    # A search's scheduler stopped the trial early (``sweep.TrialPruned``). COMPLETED, not
    # CANCELLED or FAILED: stopping a poor trial is the search working, its last reported metrics
    # are its result, and a search that prunes most trials has still succeeded. Optuna keeps
    # PRUNED apart from COMPLETE and FAIL; ``Search.best`` leaves pruned trials out as it does.
    "Pruned": "COMPLETED",
    "Failed": "FAILED",
    "TimedOut": "FAILED",
    "Crashed": "CRASHED",
    "Cancelled": "CANCELLED",
    "Scheduled": "SCHEDULED",
    "Late": "SCHEDULED",
}
DEFAULT_NAMES = {t: t.capitalize() for t in STATE_TYPES}

# Named states that end a run although their type is not final.
FINAL_STATE_NAMES = frozenset({"NotReady"})
# The names of a run that completed: its result is there.
DONE_NAMES = frozenset({"Completed", "Cached", "Pruned"})
# The names of a run that ended without completing (it failed, never ran, or was cancelled).
FAILURE_NAMES = frozenset(
    n
    for n, t in NAMES.items()
    if (t in FINAL_TYPES or n in FINAL_STATE_NAMES) and n not in DONE_NAMES
)

# The same as enum members, for code holding a StateType.
FINAL_STATES = frozenset(StateType(t) for t in FINAL_TYPES)
FAILED_STATES = frozenset(StateType(t) for t in FINAL_TYPES if t != "COMPLETED")


def is_final(state_type: str | None, state_name: str | None) -> bool:
    """Whether a state (its type and name, as stored) ends its run."""
    return state_type in FINAL_TYPES or state_name in FINAL_STATE_NAMES


def did_not_complete(state_name: str | None) -> bool:
    """Whether a state name ends a run without completing it: a failure, as a flow counts it."""
    return state_name in FAILURE_NAMES


def counts_as_done(state_name: str | None) -> bool:
    return state_name in DONE_NAMES


def vocabulary() -> dict[str, Any]:
    """All of the above as one JSON-able dict (what ``GET /api/states`` answers)."""
    return {
        "types": list(STATE_TYPES),
        "final_types": [t for t in STATE_TYPES if t in FINAL_TYPES],
        "error_types": list(ERROR_TYPES),
        "names": dict(NAMES),
        "default_names": dict(DEFAULT_NAMES),
        "final_state_names": sorted(FINAL_STATE_NAMES),
        "done_names": sorted(DONE_NAMES),
        "failure_names": [n for n in NAMES if n in FAILURE_NAMES],
    }


# The members as module constants: ``StateType.X`` is a lookup through the enum class's
# ``__getattr__`` (Python 3.11), and states are made and asked about on every run.
_PENDING = StateType.PENDING
_RUNNING = StateType.RUNNING
_COMPLETED = StateType.COMPLETED
_FAILED = StateType.FAILED
_CRASHED = StateType.CRASHED
_CANCELLED = StateType.CANCELLED


class _NoResult:
    """The data of a state that has none; one object, still itself after pickling."""

    def __reduce__(self) -> str:
        return "_NO_RESULT"

    def __repr__(self) -> str:
        return "<no result>"


_NO_RESULT: Any = _NoResult()
_DEFAULT_NAMES = {t: DEFAULT_NAMES[t.value] for t in StateType}
# Plain-str values by type: reading an enum member's .value goes through a slow descriptor.
VALUES = {t: t.value for t in StateType}


class State:
    """What happened to a run: a type, a name, a message, when, and the result or error."""

    __slots__ = ("type", "name", "message", "timestamp", "run_id", "_data")

    def __init__(
        self,
        type: StateType,
        name: str | None = None,
        message: str | None = None,
        data: Any = _NO_RESULT,
        timestamp: float | None = None,
        run_id: str | None = None,
    ) -> None:
        self.type = type
        self.name = name or _DEFAULT_NAMES[type]
        self.message = message
        self.timestamp = time.time() if timestamp is None else timestamp
        self.run_id = run_id  # the flow run or task run this state belongs to, once known
        self._data = data

    def is_pending(self) -> bool:
        return self.type is _PENDING

    def is_running(self) -> bool:
        return self.type is _RUNNING

    def is_completed(self) -> bool:
        return self.type is _COMPLETED

    def is_failed(self) -> bool:
        return self.type is _FAILED

    def is_crashed(self) -> bool:
        return self.type is _CRASHED

    def is_cancelled(self) -> bool:
        return self.type is _CANCELLED

    def is_final(self) -> bool:
        return self.type in FINAL_STATES or self.name in FINAL_STATE_NAMES

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's return value; its exception is raised if it did not complete.

        With ``raise_on_failure=False`` the exception is returned instead of raised.
        """
        data = self._data
        if self.type is _COMPLETED:
            return None if data is _NO_RESULT else data
        error = _exception(self)
        if raise_on_failure:
            raise error
        return error if data is _NO_RESULT or isinstance(data, BaseException) else data

    def __repr__(self) -> str:
        message = f", message={self.message!r}" if self.message else ""
        return f"{self.name}(type={self.type.value}{message})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            State,
            (self.type, self.name, self.message, self._data, self.timestamp, self.run_id),
        )


# The named constructors, as Prefect 3 has them; each takes ``name=`` for a name of one's own.


def _exception(state: State) -> BaseException:
    """The exception a state that did not complete stands for: its own; for states it holds (a
    flow that returned its tasks' states), the first failure's; else one made from its message."""
    from prefect_like.errors import (
        CancelledRun,
        CrashedRun,
        FailedRun,
        RunNotFinishedError,
        UpstreamFailedError,
    )

    data = state._data
    if isinstance(data, BaseException):
        return data
    held = [data] if isinstance(data, State) else list(data) if isinstance(data, (list, tuple, set)) else []
    if held and all(isinstance(s, State) for s in held):
        for inner in held:
            if not inner.is_completed():
                return _exception(inner)
    if state.name == "NotReady":
        return UpstreamFailedError(state.message or "an upstream task did not complete")
    message = state.message or (data if isinstance(data, str) else f"run ended {state.name}")
    if state.type is _CANCELLED:
        return CancelledRun(message)
    if state.type is _CRASHED:
        return CrashedRun(message)
    if state.type is _FAILED:
        return FailedRun(message)
    return RunNotFinishedError(f"the run is {state.name}, it has no result yet")


def Pending(message: str | None = None, *, name: str | None = None, data: Any = _NO_RESULT) -> State:
    return State(_PENDING, name, message, data)


def Running(message: str | None = None, *, name: str | None = None, data: Any = _NO_RESULT) -> State:
    return State(_RUNNING, name, message, data)


def Completed(data: Any = None, message: str | None = None, *, name: str | None = None) -> State:
    return State(_COMPLETED, name, message, data)


def Failed(
    error: BaseException | None = None, message: str | None = None, *, name: str | None = None,
    data: Any = _NO_RESULT,
) -> State:
    return State(_FAILED, name, _message(message, error), _error(error) if data is _NO_RESULT else data)


def Crashed(
    message: str | None = None, error: BaseException | None = None, *, name: str | None = None,
    data: Any = _NO_RESULT,
) -> State:
    return State(_CRASHED, name, message, _error(error) if data is _NO_RESULT else data)


def Cancelled(message: str | None = None, *, name: str | None = None, data: Any = _NO_RESULT) -> State:
    return State(_CANCELLED, name, message, data)


def Cached(data: Any = None, message: str | None = None, *, name: str | None = None) -> State:
    return State(_COMPLETED, name or "Cached", message, data)


def Pruned(data: Any = None, message: str | None = None, *, name: str | None = None) -> State:
    return State(_COMPLETED, name or "Pruned", message, data)


def Retrying(message: str | None = None, *, name: str | None = None) -> State:
    return State(_RUNNING, name or "Retrying", message)


def Rescheduled(message: str | None = None, *, name: str | None = None) -> State:
    return State(_RUNNING, name or "Rescheduled", message)


def NotReady(message: str | None = None, *, name: str | None = None) -> State:
    return State(_PENDING, name or "NotReady", message)


def TimedOut(
    message: str | None = None, error: BaseException | None = None, *, name: str | None = None
) -> State:
    return State(_FAILED, name or "TimedOut", _message(message, error), _error(error))


def _message(message: str | None, error: BaseException | None) -> str | None:
    if message is None and error is not None:
        return f"{type(error).__name__}: {error}"
    return message


def _error(error: BaseException | None) -> Any:
    return error if error is not None else _NO_RESULT
