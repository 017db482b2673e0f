"""Dask and Ray entries for the conformance suite: one cluster of each per session, started lazily.

``RUNNERS["dask"]`` and ``RUNNERS["ray"]`` are registered by ``tests/runners/conftest.py``; a run
that deselects them (``-m "not dask and not ray"``) never starts a cluster. Worker processes get a
PYTHONPATH that imports prefect-like from this checkout, so the suite runs from source too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from prefect_like.task_runners import TaskRunner

_dask_cluster: Any = None
_ray_address: str | None = None


def _worker_env() -> dict[str, str]:
    from prefect_like.task_runners.batching import pythonpath_for_workers

    return {"PYTHONPATH": pythonpath_for_workers()}


def dask_runner(at_session_end: Callable[[Callable[[], Any]], None]) -> TaskRunner:
    """A DaskTaskRunner on the session's LocalCluster (2 worker processes, 2 threads each)."""
    global _dask_cluster
    from distributed import LocalCluster
    from prefect_like_dask import DaskTaskRunner

    if _dask_cluster is None:
        _dask_cluster = LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0", env=_worker_env()
        )

        def close() -> None:
            global _dask_cluster
            _dask_cluster.close()
            _dask_cluster = None

        at_session_end(close)
    return DaskTaskRunner(address=_dask_cluster.scheduler_address)


def ray_runner(at_session_end: Callable[[Callable[[], Any]], None]) -> TaskRunner:
    """A RayTaskRunner on the session's local Ray (2 CPUs), initialised once."""
    global _ray_address
    import ray
    from prefect_like_ray import RayTaskRunner

    if _ray_address is None or not ray.is_initialized():
        context = ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            runtime_env={"env_vars": _worker_env()},
            log_to_driver=False,
        )
        _ray_address = context.address_info["address"]
        at_session_end(ray.shutdown)
    return RayTaskRunner(address=_ray_address)


def register(
    runners: dict[str, Callable[[], Any]],
    marks: dict[str, list[pytest.MarkDecorator]],
    at_session_end: Callable[[Callable[[], Any]], None],
) -> None:
    """Add the dask and ray entries (marked ``dask`` / ``ray``) to the suite's registries."""
    if os.environ.get("PREFECT_LIKE_TEST_ENGINES", "1") == "0":
        return
    runners["dask"] = lambda: dask_runner(at_session_end)
    runners["ray"] = lambda: ray_runner(at_session_end)
    marks["dask"] = [pytest.mark.dask]
    marks["ray"] = [pytest.mark.ray]
