"""The engine: how one task run, and one flow run, happens.

Definition lives in ``tasks.py``/``flows.py``, placement in ``task_runners``; this package says
what a run does, in order:

- ``task_engine``: one task run, from resolving its inputs to its final state and event;
- ``flow_engine``: one flow run, its attempts, its task runner's lifecycle and signals;
- ``steps``: each of the two is one generator body; ``drive`` runs it on this thread and
  ``drive_async`` awaits it, so sync and async runs share every behaviour.
"""

from prefect_like.engine.flow_engine import FlowRun, Interrupted, run_flow, run_flow_async
from prefect_like.engine.steps import call_with_timeout
from prefect_like.engine.task_engine import (
    error_details,
    resolve_inputs,
    run_task,
    run_task_async,
    run_task_inline,
    run_task_inline_async,
)

__all__ = [
    "FlowRun",
    "Interrupted",
    "call_with_timeout",
    "error_details",
    "resolve_inputs",
    "run_flow",
    "run_flow_async",
    "run_task",
    "run_task_async",
    "run_task_inline",
    "run_task_inline_async",
]
