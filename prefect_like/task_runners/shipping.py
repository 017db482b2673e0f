"""How task calls travel to workers: task functions by reference when the workers can import them.

cloudpickle pickles a function by reference only when its module's attribute of that name *is*
the function. A ``@task`` replaces the function with a ``Task``, so every task function used to
travel by value: its code, and every module-level object it touches (a 10 MB table, say), went
out with every batch, and worker tracebacks showed ``<dynamic-code>``. Here a ``Task`` that is
its module's attribute travels as ``(module, name)``: the worker imports the module once (Python
caches it) and runs the real code, with real file and line in tracebacks. A task defined in
``__main__`` or a notebook, or in a module registered with
``cloudpickle.register_pickle_by_value``, still travels by value.

A module a worker cannot import says so, naming the module and the worker, instead of a bare
``ModuleNotFoundError`` from deep inside unpickling.
"""

from __future__ import annotations

import importlib
import io
import pickle
import sys
from typing import Any

import cloudpickle

from prefect_like.tasks import Task


def _by_value_modules() -> set[str]:
    modules: set[str] = getattr(cloudpickle.cloudpickle, "_PICKLE_BY_VALUE_MODULES", set())
    return set(modules)


def importable_name(task: Task[..., Any]) -> tuple[str, str] | None:
    """``(module, qualified name)`` under which a worker can import ``task``, or None."""
    fn = getattr(task, "fn", None)
    module_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module_name or module_name == "__main__" or "<locals>" in qualname:
        return None
    if any(module_name == m or module_name.startswith(m + ".") for m in _by_value_modules()):
        return None
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return (module_name, qualname) if found is task else None


def import_task(module_name: str, qualname: str) -> Any:
    """On a worker: the task ``qualname`` of ``module_name``, imported (once per process)."""
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


class _Pickler(cloudpickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, Task):
            name = importable_name(obj)
            if name is not None:
                return import_task, name
        return super().reducer_override(obj)


def dumps(value: Any) -> bytes:
    """``cloudpickle.dumps``, with importable tasks by reference."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.DEFAULT_PROTOCOL).dump(value)
    return buffer.getvalue()


def loads(payload: bytes) -> Any:
    """``pickle.loads`` on a worker; a module it cannot import is named, with the worker."""
    try:
        return pickle.loads(payload)
    except ModuleNotFoundError as exc:
        module = exc.name or str(exc)
        raise ModuleNotFoundError(
            f"module `{module}` is not importable on worker {worker_address()}: install it there "
            "or ship it with upload_file/runtime_env",
            name=exc.name,
        ) from exc


def worker_address() -> str:
    """This worker's address (Dask), node (Ray), or process id."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:
        pass
    ray = sys.modules.get("ray")
    if ray is not None:
        try:
            return f"ray node {ray.get_runtime_context().get_node_id()}"
        except Exception:
            pass
    import os

    return f"pid {os.getpid()}"
