"""The current deployment's attributes (Prefect's ``prefect.runtime.deployment``).

``id``, ``name``, ``version``, ``parameters`` and ``flow_run_id``. In a run a worker started
from a deployment, they are that deployment's id and name and the parameters the run was made
with (Prefect's: not the flow function's defaults); deployments have no versions here, so
``version`` is None. A flow called directly has Prefect's empty values (None, or ``{}`` for
parameters) but ``flow_run_id``, the current flow run's id.
"""

from __future__ import annotations

from typing import Any

from prefect_like.runtime import flow_run
from prefect_like.runtime._read import attribute

# The deployment whose flow run this process runs: set once by a worker's flow-run process.
_started_by: dict[str, Any] | None = None


def started_by(flow_run_id: str, deployment: dict[str, Any], parameters: dict[str, Any]) -> None:
    """Say that this process runs flow run ``flow_run_id`` of ``deployment`` (its ``id``,
    ``name`` and ``work_pool``), made with ``parameters`` (``worker.execute``)."""
    global _started_by
    _started_by = {**deployment, "flow_run_id": flow_run_id, "parameters": dict(parameters)}


def of_flow_run(flow_run_id: str | None) -> dict[str, Any] | None:
    """The deployment flow run ``flow_run_id`` was started from, if it was this process's."""
    found = _started_by
    return found if found is not None and flow_run_id is not None and found["flow_run_id"] == flow_run_id else None


def _field(name: str) -> Any:
    # As Prefect's: a subflow of a deployment's run reads the deployment too.
    return _started_by.get(name) if _started_by is not None and flow_run.get_id() is not None else None


def get_id() -> str | None:
    return _field("id")


def get_name() -> str | None:
    return _field("name")


def get_version() -> str | None:
    return None


def get_parameters() -> dict[str, Any]:
    return dict(_field("parameters") or {})


def get_flow_run_id() -> str | None:
    return flow_run.get_id()


FIELDS = {
    "id": get_id,
    "flow_run_id": get_flow_run_id,
    "name": get_name,
    "parameters": get_parameters,
    "version": get_version,
}
__all__ = sorted(FIELDS)


def __getattr__(name: str) -> Any:
    return attribute(__name__, FIELDS, name)


def __dir__() -> list[str]:
    return sorted(FIELDS)
