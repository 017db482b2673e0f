"""The current task run's attributes (Prefect's ``prefect.runtime.task_run``).

``id``, ``name``, ``task_name``, ``parameters``, ``tags`` (the task's and those of the
``with tags(...)`` blocks it was called in), ``run_count`` (the attempt, 1 on the first),
``api_url`` and ``ui_url``; outside a task run, Prefect's empty values.
"""

from __future__ import annotations

from typing import Any

from prefect_like.context import task_run_context
from prefect_like.runtime._read import attribute, run_urls


def get_id() -> str | None:
    task = task_run_context.get()
    return task.task_run_id if task is not None else None


def get_name() -> str | None:
    task = task_run_context.get()
    return task.name if task is not None else None


def get_task_name() -> str | None:
    task = task_run_context.get()
    return task.task.name if task is not None else None


def get_parameters() -> dict[str, Any]:
    task = task_run_context.get()
    return task.parameters if task is not None else {}


def get_tags() -> list[str]:
    task = task_run_context.get()
    return sorted(task.task.options.tags) if task is not None else []


def get_run_count() -> int:
    task = task_run_context.get()
    return task.run_count if task is not None else 0


def get_api_url() -> str | None:
    return run_urls("task-runs", get_id())[0]


def get_ui_url() -> str | None:
    return run_urls("task-runs", get_id())[1]


FIELDS = {
    "id": get_id,
    "tags": get_tags,
    "name": get_name,
    "task_name": get_task_name,
    "parameters": get_parameters,
    "run_count": get_run_count,
    "api_url": get_api_url,
    "ui_url": get_ui_url,
}
__all__ = sorted(FIELDS)


def __getattr__(name: str) -> Any:
    return attribute(__name__, FIELDS, name)


def __dir__() -> list[str]:
    return sorted(FIELDS)
