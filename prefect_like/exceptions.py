"""Prefect 3's exception names (``prefect.exceptions``), for code written against them.

Each name is prefect-like's own exception that means the same (``errors.py`` draws the tree),
so ``except FailedRun`` or ``except UpstreamTaskError`` catches what it caught in Prefect. A
name Prefect has for something that does not exist here (pausing, blocks, deployments...)
raises an ImportError saying so.
"""

from __future__ import annotations

from typing import Any

from prefect_like.engine.signals import Interrupted
from prefect_like.errors import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    FlowRunTimeoutError,
    MappingLengthMismatch,
    MappingMissingIterable,
    ParameterTypeError,
    PrefectLikeError,
    ReservedArgumentError,
    RunNotFinishedError,
    RunNotFoundError,
    SerializationError,
    TaskRunTimeoutError,
    UpstreamFailedError,
)

PrefectException = PrefectLikeError
UnfinishedRun = RunNotFinishedError
ObjectNotFound = RunNotFoundError
UpstreamTaskError = UpstreamFailedError
TerminationSignal = Interrupted  # SIGTERM, raised like Ctrl-C (a KeyboardInterrupt)
# Raised here as the builtins Prefect's subclass: catching the alias catches them.
ParameterBindError = TypeError  # a flow called with arguments its signature does not take
MissingContextError = RuntimeError  # get_run_context() outside any run
HashError = ValueError  # an input a cache policy cannot hash

__all__ = [
    "CancelledRun",
    "CrashedRun",
    "FailedRun",
    "FlowRunTimeoutError",
    "HashError",
    "MappingLengthMismatch",
    "MappingMissingIterable",
    "MissingContextError",
    "ObjectNotFound",
    "ParameterBindError",
    "ParameterTypeError",
    "PrefectException",
    "ReservedArgumentError",
    "SerializationError",
    "TaskRunTimeoutError",
    "TerminationSignal",
    "UnfinishedRun",
    "UpstreamTaskError",
]


def __getattr__(name: str) -> Any:
    from prefect_like.missing import missing_name

    raise missing_name(__name__, name)
