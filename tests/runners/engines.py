"""Dask and Ray for the conformance suite: one cluster of each per session, started lazily.

``TestDask`` and ``TestRay`` in ``test_conformance.py`` ask for a runner here on their first flow,
so a run that deselects them (``-m "not dask and not ray"``) never starts a cluster, and
``PREFECT_LIKE_TEST_ENGINES=0`` skips them. The clusters close when the session ends (see
``conftest.py``). Worker processes get a PYTHONPATH that imports prefect-like from this
checkout, so the suite runs from source too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prefect_like.task_runners import TaskRunner

ENABLED = os.environ.get("PREFECT_LIKE_TEST_ENGINES", "1") != "0"

_dask_cluster: Any = None
_ray_address: str | None = None
_session_cleanups: list[Callable[[], Any]] = []


def at_session_end(cleanup: Callable[[], Any]) -> None:
    """Run ``cleanup`` once the whole session is over (e.g. to close a shared cluster)."""
    _session_cleanups.append(cleanup)


def end_session() -> None:
    """Run the cleanups ``at_session_end`` collected, the latest first."""
    while _session_cleanups:
        _session_cleanups.pop()()


def _worker_env() -> dict[str, str]:
    from prefect_like.task_runners.batching import pythonpath_for_workers

    return {"PYTHONPATH": pythonpath_for_workers()}


def dask_runner() -> TaskRunner:
    """A DaskTaskRunner on the session's LocalCluster (2 worker processes, 2 threads each)."""
    global _dask_cluster
    from distributed import LocalCluster
    from prefect_like_dask import DaskTaskRunner

    if _dask_cluster is None:
        _dask_cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            dashboard_address=":0",
            env=_worker_env(),
        )

        def close() -> None:
            global _dask_cluster
            _dask_cluster.close()
            _dask_cluster = None

        at_session_end(close)
    return DaskTaskRunner(address=_dask_cluster.scheduler_address)


def ray_runner() -> TaskRunner:
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
