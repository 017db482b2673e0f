"""The run contexts: which flow run or task run the current code belongs to.

Context variables, set by the engine around a flow body or a task function. Runner worker
threads do not inherit them; the engine sets the task context itself on whichever thread or
process runs the task.
"""

from __future__ import annotations

import contextvars
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect_like.flows import Flow
    from prefect_like.task_runners import TaskRunner
    from prefect_like.tasks import Task


@dataclass(slots=True, eq=False)
class FlowRunContext:
    flow_run_id: str
    name: str
    flow: Flow[..., Any]
    task_runner: TaskRunner
    parameters: dict[str, Any]
    log_prints: bool = False
    task_counter: itertools.count[int] = field(default_factory=itertools.count)
    log_seq: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def run_id(self) -> str:
        return self.flow_run_id


class TaskRunContext:
    """The task run the current code belongs to. The engine's record of a run extends it
    (``task_engine.TaskRun``), so a run makes one object for both: kept lean."""

    __slots__ = ("task_run_id", "flow_run_id", "name", "task", "parameters", "run_count", "log_prints", "_log_seq",
                 "_children")

    def __init__(
        self,
        task_run_id: str,
        flow_run_id: str | None,
        name: str,
        task: Task[..., Any],
        parameters: dict[str, Any],
        run_count: int = 0,
        log_prints: bool = False,
    ) -> None:
        self.task_run_id = task_run_id
        self.flow_run_id = flow_run_id
        self.name = name
        self.task = task
        self.parameters = parameters
        self.run_count = run_count
        self.log_prints = log_prints
        self._log_seq: itertools.count[int] | None = None
        self._children: TaskRunner | None = None

    def child_runner(self) -> TaskRunner:
        """The runner of what this task run submits or maps (started on first use); the
        engine shuts it down, waiting for those runs, before the task run ends."""
        if self._children is None:
            from prefect_like.task_runners import ThreadPoolTaskRunner

            runner = ThreadPoolTaskRunner()
            runner.start()
            self._children = runner
        return self._children

    @property
    def log_seq(self) -> itertools.count[int]:
        if self._log_seq is None:
            self._log_seq = itertools.count()
        return self._log_seq

    @property
    def run_id(self) -> str:
        return self.task_run_id


flow_run_context: contextvars.ContextVar[FlowRunContext | None] = contextvars.ContextVar(
    "prefect_like_flow_run", default=None
)
task_run_context: contextvars.ContextVar[TaskRunContext | None] = contextvars.ContextVar(
    "prefect_like_task_run", default=None
)


def get_run_context() -> TaskRunContext | FlowRunContext:
    """The innermost run this code is part of; raises outside any flow or task run."""
    context = task_run_context.get() or flow_run_context.get()
    if context is None:
        raise RuntimeError("no flow or task run is active here")
    return context
