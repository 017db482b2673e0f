"""prefect-like: tracked, retried, cached task runs for large parameter sweeps.

Importing the package does no I/O and starts no threads; engines load when a flow uses them.
"""

from prefect_like import sweep
from prefect_like.calls import allow_failure, quote, unmapped
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
    "task",
    "unmapped",
    "wait",
]
