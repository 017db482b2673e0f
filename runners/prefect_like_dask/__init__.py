"""Dask task runner for prefect-like: ``@flow(task_runner=DaskTaskRunner())`` or ``task_runner="dask"``.

Importing this package does not import Dask; the runner does when it starts, and a missing
Dask gives the install hint ``pip install "prefect-like[dask]"``. Only the Dask hooks live
here; batching and the worker side are ``prefect_like.task_runners.batching`` and ``worker``.
"""

from .runner import DaskTaskRunner
from .task_runners import get_async_dask_client, get_dask_client

__all__ = ["DaskTaskRunner", "get_async_dask_client", "get_dask_client"]
