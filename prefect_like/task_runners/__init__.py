"""Task runners: where task runs execute, and who waits for their upstreams.

- ``base``: the contract (``TaskRunner``, ``Work``), which owns dependencies, the lifecycle
  and cancellation; a runner implements ``execute``.
- ``local``: the sequential, thread, asyncio and process-pool runners.
- ``batching`` and ``worker``: the engine-agnostic halves of the distributed runners (adaptive
  batches, dependencies as engine arguments, crashes; running batches on workers and sending
  their events home). The Dask and Ray runners add only their engine hooks.

Runners are found by name through the ``prefect_like.task_runners`` entry-point group;
``sequential``, ``thread``, ``asyncio`` and ``process`` are built in, ``dask`` and ``ray`` come
with their extras.
"""

from __future__ import annotations

from typing import Any

from prefect_like.errors import MissingEngineError, UnknownTaskRunnerError
from prefect_like.task_runners.base import (
    DEFAULT_MAX_IN_FLIGHT,
    TaskRunner,
    Work,
    run_payload,
    when_done,
)
from prefect_like.task_runners.local import (
    AsyncioTaskRunner,
    ProcessPoolTaskRunner,
    SequentialTaskRunner,
    ThreadPoolTaskRunner,
)

_BUILTIN: dict[str, type[TaskRunner]] = {
    "sequential": SequentialTaskRunner,
    "thread": ThreadPoolTaskRunner,
    "threads": ThreadPoolTaskRunner,
    "asyncio": AsyncioTaskRunner,
    "process": ProcessPoolTaskRunner,
}
_EXTRAS = {"dask": ("prefect_like_dask", "DaskTaskRunner", "dask"), "ray": ("prefect_like_ray", "RayTaskRunner", "ray")}


def registered_task_runners() -> dict[str, Any]:
    """Runner names to their entry points (or classes), built-in and installed."""
    from importlib.metadata import entry_points

    found: dict[str, Any] = dict(_BUILTIN)
    for entry in entry_points(group="prefect_like.task_runners"):
        found.setdefault(entry.name, entry)
    return found


def load_task_runner_class(name: str) -> type[TaskRunner]:
    if name in _BUILTIN:
        return _BUILTIN[name]
    if name in _EXTRAS:
        module_name, class_name, extra = _EXTRAS[name]
        try:
            module = __import__(module_name)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or ""
            if missing.split(".")[0] in ("dask", "distributed", "ray") or missing == module_name:
                raise MissingEngineError(name.capitalize(), extra) from exc
            raise
        runner_class: type[TaskRunner] = getattr(module, class_name)
        return runner_class
    entry = registered_task_runners().get(name)
    if entry is None:
        known = ", ".join(sorted(set(registered_task_runners()) | set(_EXTRAS)))
        raise UnknownTaskRunnerError(f"no task runner named {name!r}; known runners: {known}")
    loaded: type[TaskRunner] = entry.load()
    return loaded


def resolve_task_runner(spec: Any) -> TaskRunner:
    """A fresh runner from an instance (duplicated), a class, or a registered name."""
    if isinstance(spec, TaskRunner):
        return spec.duplicate()
    if isinstance(spec, type) and issubclass(spec, TaskRunner):
        return spec()
    if isinstance(spec, str):
        return load_task_runner_class(spec.lower())()
    raise TypeError(f"task_runner must be a TaskRunner, a TaskRunner class or a runner name, got {spec!r}")


__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "AsyncioTaskRunner",
    "ProcessPoolTaskRunner",
    "SequentialTaskRunner",
    "TaskRunner",
    "ThreadPoolTaskRunner",
    "Work",
    "load_task_runner_class",
    "registered_task_runners",
    "resolve_task_runner",
    "run_payload",
    "when_done",
]
