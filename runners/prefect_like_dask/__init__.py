"""Dask task runner for prefect-like: ``@flow(task_runner=DaskTaskRunner())`` or ``task_runner="dask"``.

Importing this package does not import Dask; the runner does when it starts, and a missing
Dask gives the install hint ``pip install "prefect-like[dask]"``. The modules ``batching`` and
``worker`` are the engine-agnostic halves shared with ``prefect_like_ray``.
"""

from .runner import DaskTaskRunner

__all__ = ["DaskTaskRunner"]
