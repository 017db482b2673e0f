"""Cache policies: how a task run's cache key is computed.

A key of None means "do not cache this run". Policies add up: ``INPUTS + TASK_SOURCE`` changes
key when either the inputs or the function's source change. Keys of the built-in policies start
with the task's qualified name, so two tasks with equal inputs never share a cached result; a
``cache_key_fn`` returns its key as it wants it (sharing across tasks is then its choice).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cloudpickle

if TYPE_CHECKING:
    from prefect_like.context import TaskRunContext
    from prefect_like.tasks import Task


class CachePolicy:
    """Computes a cache key from a task, its parameters and its run context."""

    def key_parts(self, task: Task[..., Any], parameters: dict[str, Any], context: TaskRunContext) -> list[str] | None:
        raise NotImplementedError

    def compute_key(self, task: Task[..., Any], parameters: dict[str, Any], context: TaskRunContext) -> str | None:
        parts = self.key_parts(task, parameters, context)
        if parts is None:
            return None
        digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
        return f"{task.key}-{digest}"

    def __add__(self, other: CachePolicy) -> CachePolicy:
        return CompoundPolicy((self, other))


@dataclass(frozen=True)
class CompoundPolicy(CachePolicy):
    policies: tuple[CachePolicy, ...]

    def key_parts(self, task: Task[..., Any], parameters: dict[str, Any], context: TaskRunContext) -> list[str] | None:
        parts: list[str] = []
        for policy in self.policies:
            more = policy.key_parts(task, parameters, context)
            if more is None:
                return None
            parts.extend(more)
        return parts

    def __add__(self, other: CachePolicy) -> CachePolicy:
        return CompoundPolicy((*self.policies, other))


class Inputs(CachePolicy):
    """The task's parameters, hashed by value (via cloudpickle)."""

    def key_parts(self, task: Task[..., Any], parameters: dict[str, Any], context: TaskRunContext) -> list[str] | None:
        try:
            payload = cloudpickle.dumps(sorted(parameters.items()), protocol=5)
        except Exception:
            return None  # unhashable inputs: run uncached rather than fail
        return [hashlib.sha256(payload).hexdigest()]

    def __repr__(self) -> str:
        return "INPUTS"


class TaskSource(CachePolicy):
    """The task function's source code (its bytecode where the source is unavailable)."""

    def key_parts(self, task: Task[..., Any], parameters: dict[str, Any], context: TaskRunContext) -> list[str] | None:
        return [task.source_hash]

    def __repr__(self) -> str:
        return "TASK_SOURCE"


class RunId(CachePolicy):
    """The flow run: a result is reused only within the flow run that made it."""

    def key_parts(self, task: Task[..., Any], parameters: dict[str, Any], context: TaskRunContext) -> list[str] | None:
        return [context.flow_run_id or context.task_run_id]

    def __repr__(self) -> str:
        return "RUN_ID"


class FlowParameters(CachePolicy):
    """The parameters of the flow run the task run belongs to."""

    def key_parts(self, task: Task[..., Any], parameters: dict[str, Any], context: TaskRunContext) -> list[str] | None:
        from prefect_like.context import flow_run_context

        flow = flow_run_context.get()
        return Inputs().key_parts(task, flow.parameters if flow is not None else {}, context)

    def __repr__(self) -> str:
        return "FLOW_PARAMETERS"


class NoCache(CachePolicy):
    def key_parts(self, task: Task[..., Any], parameters: dict[str, Any], context: TaskRunContext) -> list[str] | None:
        return None

    def __repr__(self) -> str:
        return "NONE"


@dataclass(frozen=True)
class CacheKeyFnPolicy(CachePolicy):
    """A user's ``cache_key_fn(context, parameters)``, called as in Prefect."""

    fn: Callable[[TaskRunContext, dict[str, Any]], str | None]

    def key_parts(self, task: Task[..., Any], parameters: dict[str, Any], context: TaskRunContext) -> list[str] | None:
        key = self.fn(context, parameters)
        return None if key is None else [str(key)]

    def compute_key(self, task: Task[..., Any], parameters: dict[str, Any], context: TaskRunContext) -> str | None:
        key = self.fn(context, parameters)
        if key is None:
            return None
        key = str(key)
        safe = key.replace("/", "_").replace("\\", "_")
        return safe if len(safe) <= 120 and safe not in ("", ".", "..") else hashlib.sha256(key.encode()).hexdigest()


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
RUN_ID = RunId()
FLOW_PARAMETERS = FlowParameters()
NONE = NoCache()
NO_CACHE = NONE
# Prefect 3's default, and what persist_result=True turns on: the same inputs and source within
# one flow run.
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID


def source_hash(fn: Callable[..., Any]) -> str:
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = repr(code.co_code if code is not None else fn)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
