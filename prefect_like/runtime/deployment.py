"""The current deployment's attributes (Prefect's ``prefect.runtime.deployment``).

``id``, ``name``, ``version``, ``parameters`` and ``flow_run_id``. A flow run here is started
by calling the flow, not by a deployment, so every attribute has Prefect's empty value (None,
or ``{}`` for parameters) but ``flow_run_id``, the current flow run's id.
"""

from __future__ import annotations

from typing import Any

from prefect_like.runtime import flow_run
from prefect_like.runtime._read import attribute


def get_id() -> str | None:
    return None


def get_name() -> str | None:
    return None


def get_version() -> str | None:
    return None


def get_parameters() -> dict[str, Any]:
    return {}


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
