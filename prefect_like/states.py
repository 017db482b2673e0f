"""The state of a run: one enum with stable stored values, and the State object around it.

The enum's values are what the store, the HTTP API and the dashboard see; never rename them.
Named states are a type plus a name: ``Cached`` is COMPLETED, ``Retrying`` is RUNNING and
``NotReady`` is PENDING (an upstream did not complete, so the task never ran).
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


FINAL_STATES = frozenset({StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED})
FAILED_STATES = frozenset({StateType.FAILED, StateType.CRASHED, StateType.CANCELLED})

# Named states that end a run although their type is not final.
FINAL_STATE_NAMES = frozenset({"NotReady"})

_NO_RESULT = object()
_DEFAULT_NAMES = {t: t.value.capitalize() for t in StateType}
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
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        return self.type is StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_final(self) -> bool:
        return self.type in FINAL_STATES or self.name in FINAL_STATE_NAMES

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's return value; its exception is raised if it did not complete.

        With ``raise_on_failure=False`` the exception is returned instead of raised.
        """
        if self.type is StateType.COMPLETED:
            return None if self._data is _NO_RESULT else self._data
        error = self._data if isinstance(self._data, BaseException) else None
        if error is None:
            from prefect_like.errors import RunNotFinishedError, UpstreamFailedError

            if self.name == "NotReady":
                error = UpstreamFailedError(self.message or "an upstream task did not complete")
            elif self.is_final():
                error = RuntimeError(self.message or f"run ended {self.name}")
            else:
                error = RunNotFinishedError(f"the run is {self.name}, it has no result yet")
        if raise_on_failure:
            raise error
        return error

    def __repr__(self) -> str:
        message = f", message={self.message!r}" if self.message else ""
        return f"{self.name}(type={self.type.value}{message})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (State, (self.type, self.name, self.message, self._data, self.timestamp, self.run_id))


def Pending(message: str | None = None) -> State:
    return State(StateType.PENDING, message=message)


def Running(message: str | None = None) -> State:
    return State(StateType.RUNNING, message=message)


def Completed(data: Any = None, message: str | None = None) -> State:
    return State(StateType.COMPLETED, message=message, data=data)


def Failed(error: BaseException | None = None, message: str | None = None) -> State:
    if message is None and error is not None:
        message = f"{type(error).__name__}: {error}"
    return State(StateType.FAILED, message=message, data=error if error is not None else _NO_RESULT)


def Crashed(message: str | None = None, error: BaseException | None = None) -> State:
    return State(StateType.CRASHED, message=message, data=error if error is not None else _NO_RESULT)


def Cancelled(message: str | None = None) -> State:
    return State(StateType.CANCELLED, message=message)


def Cached(data: Any = None, message: str | None = None) -> State:
    return State(StateType.COMPLETED, "Cached", message, data)


def Retrying(message: str | None = None) -> State:
    return State(StateType.RUNNING, "Retrying", message)


def NotReady(message: str | None = None) -> State:
    return State(StateType.PENDING, "NotReady", message)
