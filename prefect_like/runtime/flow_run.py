"""The current flow run's attributes (Prefect's ``prefect.runtime.flow_run``).

``id``, ``name``, ``flow_name``, ``flow_version``, ``parameters``, ``tags``,
``scheduled_start_time`` (the run's start: runs here are not scheduled), ``run_count`` (the
attempt, 1 on the first), ``parent_flow_run_id``, ``parent_deployment_id``,
``root_flow_run_id``, ``job_variables``, ``api_url`` and ``ui_url``. Inside a task run of a
flow run, the flow run's (on a Dask or Ray worker, where the flow run's context is not, only
``id``: the rest are empty); outside any run, Prefect's empty values.
"""

from __future__ import annotations

import datetime
from typing import Any

from prefect_like.context import current_flow_run, task_run_context
from prefect_like.runtime._read import attribute, run_urls


def get_id() -> str | None:
    flow = current_flow_run()
    if flow is not None:
        return flow.flow_run_id
    task = task_run_context.get()
    return task.flow_run_id if task is not None else None


def get_name() -> str | None:
    flow = current_flow_run()
    return flow.name if flow is not None else None


def get_flow_name() -> str | None:
    flow = current_flow_run()
    return flow.flow.name if flow is not None else None


def get_flow_version() -> str | None:
    flow = current_flow_run()
    return flow.flow.version if flow is not None else None


def get_parameters() -> dict[str, Any]:
    flow = current_flow_run()
    return flow.parameters if flow is not None else {}


def get_tags() -> list[str]:
    flow = current_flow_run()
    return flow.flow_run.tags if flow is not None else []


def get_run_count() -> int:
    flow = current_flow_run()
    return flow.flow_run.run_count if flow is not None else 0


def get_scheduled_start_time() -> datetime.datetime:
    flow = current_flow_run()
    started = flow.flow_run.expected_start_time if flow is not None else None
    return started or datetime.datetime.now(datetime.UTC)


def get_parent_flow_run_id() -> str | None:
    flow = current_flow_run()
    record = flow.record if flow is not None else None
    return getattr(record, "parent_flow_run_id", None)


def get_root_flow_run_id() -> str | None:
    flow = current_flow_run()
    record = flow.record if flow is not None else None
    return getattr(record, "root_flow_run_id", None) or get_id()


def get_parent_deployment_id() -> None:
    return None


def get_job_variables() -> dict[str, Any] | None:
    return {} if get_id() is not None else None


def get_api_url() -> str | None:
    return run_urls("flow-runs", get_id())[0]


def get_ui_url() -> str | None:
    return run_urls("flow-runs", get_id())[1]


FIELDS = {
    "id": get_id,
    "tags": get_tags,
    "scheduled_start_time": get_scheduled_start_time,
    "name": get_name,
    "flow_name": get_flow_name,
    "flow_version": get_flow_version,
    "parameters": get_parameters,
    "parent_flow_run_id": get_parent_flow_run_id,
    "parent_deployment_id": get_parent_deployment_id,
    "root_flow_run_id": get_root_flow_run_id,
    "run_count": get_run_count,
    "job_variables": get_job_variables,
    "api_url": get_api_url,
    "ui_url": get_ui_url,
}
__all__ = sorted(FIELDS)


def __getattr__(name: str) -> Any:
    return attribute(__name__, FIELDS, name)


def __dir__() -> list[str]:
    return sorted(FIELDS)
