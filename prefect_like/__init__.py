"""prefect-like: tracked, retried, cached task runs for large parameter sweeps.

Importing the package does no I/O and starts no threads; engines load when a flow uses them.
"""

from prefect_like import missing as _missing
from prefect_like import sweep
from prefect_like.calls import allow_failure, quote, unmapped
from prefect_like.context import tags
from prefect_like.flows import Flow, flow
from prefect_like.futures import TaskFuture, as_completed, wait
from prefect_like.logging import get_run_logger
from prefect_like.states import State, StateType
from prefect_like.task_runners import (
    AsyncioTaskRunner,
    SequentialTaskRunner,
    TaskRunner,
    ThreadPoolTaskRunner,
)
from prefect_like.tasks import Task, exponential_backoff, task

__version__ = "0.1.0"

__all__ = [
    "AsyncioTaskRunner",
    "Flow",
    "SequentialTaskRunner",
    "State",
    "StateType",
    "Task",
    "TaskFuture",
    "TaskRunner",
    "ThreadPoolTaskRunner",
    "allow_failure",
    "as_completed",
    "exponential_backoff",
    "flow",
    "get_run_logger",
    "quote",
    "sweep",
    "tags",
    "task",
    "unmapped",
    "wait",
]

_missing.install()  # a Prefect module we do not have fails with what to use instead


# Submodules read as attributes (``prefect_like.runtime.flow_run.id``) import on first use, as
# Prefect's do.
_SUBMODULES = frozenset({"cache_policies", "context", "exceptions", "runtime", "utilities"})


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise _missing.missing_name(__name__, name)
