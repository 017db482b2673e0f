"""Ray task runner for prefect-like: ``@flow(task_runner=RayTaskRunner())`` or ``task_runner="ray"``.

Importing this package does not import Ray; the runner does when it starts, and a missing Ray
gives the install hint ``pip install "prefect-like[ray]"``.
"""

from .runner import RayTaskRunner

__all__ = ["RayTaskRunner"]
