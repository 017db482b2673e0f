"""Prefect's import paths of the Dask integration: ``prefect_dask.task_runners.DaskTaskRunner``
and ``prefect_dask.get_dask_client`` (also ``prefect_dask.utils``), under ``prefect_like_dask``.

Importing this module does not import Dask: the runner does when it starts, and
``get_dask_client`` when it is called.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .runner import DaskTaskRunner


@contextlib.contextmanager
def get_dask_client(timeout: Any = None, **client_kwargs: Any) -> Iterator[Any]:
    """A ``distributed.Client`` of the cluster the current run is on, as Prefect's:

    - in a task run on a Dask worker, the worker's client (``distributed.worker_client``: the
      task leaves the worker's thread pool while it waits, so tasks it submits can run);
    - in a flow run on ``DaskTaskRunner``, a new client of the runner's scheduler, closed
      when the block ends.

    Elsewhere, a RuntimeError saying where it works.
    """
    from prefect_like.context import flow_run_context, task_run_context
    from prefect_like.errors import MissingEngineError

    try:
        import distributed
    except ImportError as exc:
        raise MissingEngineError("Dask", "dask") from exc
    try:
        distributed.get_worker()
        on_worker = True
    except ValueError:
        on_worker = False
    if on_worker:
        with distributed.worker_client(timeout=timeout, **client_kwargs) as client:
            yield client
        return
    flow = flow_run_context.get() if task_run_context.get() is None else None
    runner = flow.task_runner if flow is not None else None
    runner_client = getattr(runner, "client", None) if isinstance(runner, DaskTaskRunner) else None
    if runner_client is None:
        raise RuntimeError(
            "get_dask_client() works in a task run on a Dask worker, or in a flow run whose task runner is a "
            "started DaskTaskRunner"
        )
    if timeout is not None:
        client_kwargs["timeout"] = timeout
    with distributed.Client(runner_client.scheduler.address, **client_kwargs) as client:
        yield client


__all__ = ["DaskTaskRunner", "get_dask_client"]
