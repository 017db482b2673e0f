"""``prefect_like.runtime``: the current run's attributes, read as Prefect's ``prefect.runtime``.

    from prefect_like import runtime

    runtime.flow_run.name, runtime.flow_run.parameters, runtime.task_run.run_count

Each attribute is read from the run context when asked for (module ``__getattr__``), so code
that reads one costs nothing elsewhere. Outside a run every attribute has Prefect's empty
value: None for ids and names, ``{}`` for parameters, ``[]`` for tags, 0 for run counts, and
now for ``flow_run.scheduled_start_time``. ``deployment`` is the deployment a worker
started the run from; for a flow called directly it is empty but ``deployment.flow_run_id``.
"""

from prefect_like.runtime import deployment, flow_run, task_run

__all__ = ["deployment", "flow_run", "task_run"]
