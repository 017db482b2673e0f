"""Every exception prefect-like raises of its own.

    Exception
    ├── PrefectLikeError                 base of the errors below
    │   ├── UpstreamFailedError          a task's upstream did not complete; the task never ran
    │   ├── RunNotFinishedError          asked for the result of a run that has not ended
    │   ├── FailedRun, CrashedRun, CancelledRun   the result of a run that ended so, without an
    │   │                                exception of its own (also RuntimeError)
    │   ├── UnknownTaskRunnerError       no runner registered under that name
    │   ├── RunNotFoundError             no flow run or task run with that id in the store
    │   ├── TrackingError                the tracking store or server refused or failed a request
    │   ├── SerializationError           a parameter or result cannot be stored or shipped
    │   └── TrialPruned                  raised in a search trial its scheduler stopped (ends Pruned)
    ├── TypeError
    │   ├── ParameterTypeError           a flow parameter failed validation (names the parameter)
    │   ├── MappingLengthMismatch        .map() over iterables of unequal length (also ValueError)
    │   └── MappingMissingIterable       .map() with no iterable argument
    ├── ImportError
    │   └── MissingEngineError           an optional engine is not installed (gives the install hint)
    └── TimeoutError
        ├── TaskRunTimeoutError          a task run ran past its timeout_seconds (ends TimedOut)
        └── FlowRunTimeoutError          a flow run ran past its timeout_seconds (ends TimedOut)
"""

from __future__ import annotations


class PrefectLikeError(Exception):
    """Base class of prefect-like's own errors."""


class UpstreamFailedError(PrefectLikeError):
    """A task did not run because an upstream task did not complete."""


class RunNotFinishedError(PrefectLikeError):
    """The result of a run that has not ended was asked for."""


class FailedRun(PrefectLikeError, RuntimeError):
    """A run ended FAILED without an exception of its own (a returned ``Failed`` state)."""


class CrashedRun(PrefectLikeError, RuntimeError):
    """A run ended CRASHED without an exception of its own."""


class CancelledRun(PrefectLikeError, RuntimeError):
    """A run ended CANCELLED; its result was asked for."""


class ReservedArgumentError(PrefectLikeError, TypeError):
    """A task or flow function has a parameter named like a reserved keyword (``return_state``,
    ``wait_for``)."""


class UnknownTaskRunnerError(PrefectLikeError, LookupError):
    """No task runner is registered under the given name."""


class RunNotFoundError(PrefectLikeError, LookupError):
    """No flow run or task run has the given id."""


class TrackingError(PrefectLikeError):
    """The tracking store or server failed or refused a request."""


class SerializationError(PrefectLikeError):
    """A parameter or result cannot be serialised for storage or for shipping to a worker."""


class ParameterTypeError(TypeError):
    """A flow parameter failed validation; the message names the parameter."""


class MappingLengthMismatch(TypeError, ValueError):
    """``Task.map`` was given iterables of different lengths."""


MappingLengthError = MappingLengthMismatch  # the name it had before Prefect's


class MappingMissingIterable(TypeError):
    """``Task.map`` was given no iterable argument to map over."""


class MissingEngineError(ImportError):
    """An optional engine (Dask, Ray, the server) is not installed."""

    def __init__(self, engine: str, extra: str | None = None) -> None:
        extra = extra or engine
        super().__init__(
            f"{engine} is not installed; install it with: pip install \"prefect-like[{extra}]\""
        )
        self.engine = engine
        self.extra = extra


class TaskRunTimeoutError(TimeoutError):
    """A task run ran past its ``timeout_seconds``; the run ends TimedOut (a FAILED state)."""


class FlowRunTimeoutError(TimeoutError):
    """A flow run ran past its ``timeout_seconds``; the run ends TimedOut (a FAILED state)."""


class TrialPruned(PrefectLikeError):
    """Raised inside a search trial when its scheduler stops it early (``sweep.should_prune()``):
    the run ends COMPLETED named ``Pruned``, its last reported metrics as its result. The name
    is Optuna's (``optuna.TrialPruned``), so code written for Optuna reads the same."""
