"""The run contexts: which flow run or task run the current code belongs to.

Context variables, set by the engine around a flow body or a task function. Runner worker
threads do not inherit them; the engine sets the task context itself on whichever thread or
process runs the task.

In Prefect's shape too: ``FlowRunContext.get()`` and ``TaskRunContext.get()`` give the current
one or None, and ``context.flow_run`` / ``context.task_run`` the run as Prefect's client objects
describe it (``id``, ``name``, ``run_count``, ``tags``, ``state``...): views built when asked
for, so a run pays nothing for them. ``tags("a", "b")`` adds tags to every task run created
in its block.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import itertools
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from prefect_like.flows import Flow
    from prefect_like.states import State, StateType
    from prefect_like.task_runners import TaskRunner
    from prefect_like.tasks import Task


@dataclass(slots=True, eq=False, weakref_slot=True)
class FlowRunContext:
    flow_run_id: str
    name: str
    flow: Flow[..., Any]
    task_runner: TaskRunner
    parameters: dict[str, Any]
    log_prints: bool = False
    task_counter: itertools.count[int] = field(default_factory=itertools.count)
    log_seq: itertools.count[int] = field(default_factory=itertools.count)
    record: Any = None  # the engine's record of the run (``flow_engine.FlowRun``)
    hook_state: State | None = None  # the state whose hooks are running, while they run

    @property
    def run_id(self) -> str:
        return self.flow_run_id

    @property
    def flow_run(self) -> FlowRunView:
        """The run as Prefect's ``FlowRun`` object describes it."""
        return FlowRunView(self)

    @classmethod
    def get(cls) -> FlowRunContext | None:
        """The flow run the current code belongs to, or None (Prefect's ``FlowRunContext.get()``)."""
        return flow_run_context.get()


class TaskRunContext:
    """The task run the current code belongs to. The engine's record of a run extends it
    (``task_engine.TaskRun``), so a run makes one object for both: kept lean."""

    __slots__ = ("task_run_id", "flow_run_id", "name", "task", "parameters", "run_count", "log_prints", "_log_seq",
                 "_children", "hook_state")

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

    @property
    def task_run(self) -> TaskRunView:
        """The run as Prefect's ``TaskRun`` object describes it."""
        return TaskRunView(self)

    @classmethod
    def get(cls) -> TaskRunContext | None:
        """The task run the current code belongs to, or None (Prefect's ``TaskRunContext.get()``)."""
        return task_run_context.get()


def _running() -> State:
    from prefect_like.states import Running

    return Running()


def _utc(timestamp: float | None) -> datetime.datetime | None:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC) if timestamp else None


class TaskRunView:
    """A task run as Prefect's ``TaskRun`` object describes it: what ``TaskRunContext.task_run``
    gives and what a task's state hooks receive. Read when built: a snapshot of the run."""

    def __init__(self, context: TaskRunContext, state: State | None = None) -> None:
        call = getattr(context, "call", None)  # the engine's record of a run holds its call
        if state is None:  # the state whose hooks run now, else the run's: it runs code, so it is running
            state = getattr(context, "hook_state", None) or _running()
        self.id = context.task_run_id
        self.name = context.name
        self.flow_run_id = context.flow_run_id
        self.task_key = context.task.key
        self.task_version = context.task.options.version
        self.dynamic_key = str(call.map_index) if call is not None and call.map_index is not None else None
        self.run_count = context.run_count
        self.tags = sorted(context.task.options.tags)
        self.labels: dict[str, Any] = {}
        self.expected_start_time = _utc(call.created if call is not None else None)
        started = getattr(context, "started", 0.0)
        self.start_time = _utc(started)
        self.cache_key = getattr(context, "cache_key", None)
        self.cache_expiration = None
        self.state, self.state_type, self.state_name, self.end_time, self.total_run_time = _state_fields(state, started)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TaskRun(id={self.id!r}, name={self.name!r}, state_name={self.state_name!r})"


def _state_fields(state: State | None, started: float | None) -> tuple[
        State | None, StateType | None, str | None, datetime.datetime | None, datetime.timedelta]:
    """The fields of Prefect's run objects that follow from the state: the state, its type and
    name, and the end time and total run time once it is final."""
    if state is None:
        return None, None, None, None, datetime.timedelta(0)
    final = state.is_final()
    elapsed = datetime.timedelta(seconds=max(0.0, state.timestamp - started)) if final and started else None
    return (state, state.type, state.name, _utc(state.timestamp) if final else None,
            elapsed or datetime.timedelta(0))


class FlowRunView:
    """A flow run as Prefect's ``FlowRun`` object describes it: what ``FlowRunContext.flow_run``
    gives and what a flow's state hooks receive. ``deployment_id`` and ``work_pool_name`` are
    set for the run a worker started from a deployment; there are no work queues here."""

    work_queue_name: ClassVar[None] = None
    idempotency_key: ClassVar[None] = None

    def __init__(self, context: FlowRunContext, state: State | None = None) -> None:
        record = context.record
        if state is None:
            state = context.hook_state or _running()
        self.id = context.flow_run_id
        self.name = context.name
        self.flow_name = context.flow.name
        self.flow_version = context.flow.version
        self.parameters = dict(context.parameters)
        self.tags = sorted(getattr(record, "tags", ()) or ())
        self.labels: dict[str, Any] = {}
        self.job_variables: dict[str, Any] = {}
        self.parent_task_run_id = getattr(record, "parent_task_run_id", None)
        from prefect_like.runtime.deployment import of_flow_run

        deployment = of_flow_run(self.id) or {}
        self.deployment_id: str | None = deployment.get("id")
        self.work_pool_name: str | None = deployment.get("work_pool")
        self.run_count = getattr(record, "run_count", 1)
        started = getattr(record, "started", None)
        self.expected_start_time = self.start_time = _utc(started)
        self.state, self.state_type, self.state_name, self.end_time, self.total_run_time = _state_fields(state, started)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FlowRun(id={self.id!r}, name={self.name!r}, state_name={self.state_name!r})"


# The flow runs of this process by id, while they run: a task run on a pool thread (where the
# flow's context variable is not set) finds its flow run's context here. Not on another process.
_flow_runs: weakref.WeakValueDictionary[str, FlowRunContext] = weakref.WeakValueDictionary()


def register_flow_run(context: FlowRunContext) -> None:
    _flow_runs[context.flow_run_id] = context


def current_flow_run(task: TaskRunContext | None = None) -> FlowRunContext | None:
    """The flow run the current code (or the task run ``task``) belongs to: the flow's context,
    or, in a task run, its flow run's when it runs in this process (None on a worker process,
    or outside any run)."""
    flow = flow_run_context.get()
    if flow is not None:
        return flow
    task = task or task_run_context.get()
    if task is None or task.flow_run_id is None:
        return None
    return _flow_runs.get(task.flow_run_id)


# -- tags ------------------------------------------------------------------------------------

current_tags: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("prefect_like_tags", default=frozenset())
tag_scopes = 0  # ``tags`` blocks open in this process: while none is, a task call never looks
_tag_scopes_lock = threading.Lock()


@contextlib.contextmanager
def tags(*new_tags: str) -> Iterator[set[str]]:
    """Add tags to every task run created in the block (merged with each task's own tags);
    blocks nest, adding up. Yields the tags now in force, as Prefect's ``tags`` does."""
    global tag_scopes
    for tag in new_tags:
        if not isinstance(tag, str):
            raise TypeError(f"tags are strings, got {tag!r}")
    merged = current_tags.get() | frozenset(new_tags)
    token = current_tags.set(merged)
    with _tag_scopes_lock:
        tag_scopes += 1
    try:
        yield set(merged)
    finally:
        with _tag_scopes_lock:
            tag_scopes -= 1
        current_tags.reset(token)


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
