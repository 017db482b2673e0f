"""Prefect's import path of the Ray integration, ``prefect_ray.task_runners.RayTaskRunner``,
under ``prefect_like_ray``. Importing it does not import Ray."""

from .runner import RayTaskRunner

__all__ = ["RayTaskRunner"]
