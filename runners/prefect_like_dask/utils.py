"""Prefect's ``prefect_dask.utils`` path for ``get_dask_client`` and ``get_async_dask_client``."""

from .task_runners import get_async_dask_client, get_dask_client

__all__ = ["get_async_dask_client", "get_dask_client"]
