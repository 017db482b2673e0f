"""Prefect's import paths of the Dask integration: ``prefect_dask.task_runners.DaskTaskRunner``,
``prefect_dask.get_dask_client`` and ``get_async_dask_client`` (also ``prefect_dask.utils``),
under ``prefect_like_dask``.

Importing this module does not import Dask: the runner does when it starts, and
``get_dask_client`` or ``get_async_dask_client`` when it is called.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .runner import DaskTaskRunner


def _distributed() -> Any:
    from prefect_like.errors import MissingEngineError

    try:
        import distributed
    except ImportError as exc:
        raise MissingEngineError("Dask", "dask") from exc
    return distributed


def _on_worker(distributed: Any) -> bool:
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return True


def _flow_runner_address(what: str) -> str:
    """The scheduler address of the current flow run's started ``DaskTaskRunner``, or a
    RuntimeError saying where ``what`` works."""
    from prefect_like.context import flow_run_context, task_run_context

    flow = flow_run_context.get() if task_run_context.get() is None else None
    runner = flow.task_runner if flow is not None else None
    runner_client = getattr(runner, "client", None) if isinstance(runner, DaskTaskRunner) else None
    if runner_client is None:
        raise RuntimeError(
            f"{what}() works in a task run on a Dask worker, or in a flow run whose task runner is a "
            "started DaskTaskRunner"
        )
    return str(runner_client.scheduler.address)


@contextlib.contextmanager
def get_dask_client(timeout: Any = None, **client_kwargs: Any) -> Iterator[Any]:
    """A ``distributed.Client`` of the cluster the current run is on, as Prefect's:

    - in a task run on a Dask worker, the worker's client (``distributed.worker_client``: the
      task leaves the worker's thread pool while it waits, so tasks it submits can run);
    - in a flow run on ``DaskTaskRunner``, a new client of the runner's scheduler, closed
      when the block ends.

    Elsewhere, a RuntimeError saying where it works.
    """
    distributed = _distributed()
    if _on_worker(distributed):
        with distributed.worker_client(timeout=timeout, **client_kwargs) as client:
            yield client
        return
    address = _flow_runner_address("get_dask_client")
    if timeout is not None:
        client_kwargs["timeout"] = timeout
    with distributed.Client(address, **client_kwargs) as client:
        yield client


@contextlib.asynccontextmanager
async def get_async_dask_client(timeout: Any = None, **client_kwargs: Any) -> AsyncIterator[Any]:
    """An asynchronous ``distributed.Client`` (``await client.submit(...)``) of the cluster the
    current run is on, for async tasks and flows, as Prefect's: in a task run on a Dask worker,
    a client of the worker's scheduler; in a flow run on ``DaskTaskRunner``, a client of the
    runner's scheduler. Closed when the block ends; elsewhere, a RuntimeError."""
    distributed = _distributed()
    if _on_worker(distributed):
        address = distributed.get_worker().scheduler.address
    else:
        address = _flow_runner_address("get_async_dask_client")
    if timeout is not None:
        client_kwargs["timeout"] = timeout
    async with distributed.Client(address, asynchronous=True, **client_kwargs) as client:
        yield client


__all__ = ["DaskTaskRunner", "get_async_dask_client", "get_dask_client"]
