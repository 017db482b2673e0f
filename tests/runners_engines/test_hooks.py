"""State hooks on Dask and Ray: a task's hooks run where the task engine runs, on the workers.

Prefect: tests/test_tasks.py::TestTaskHooksOnCompletion / ::TestTaskHooksOnFailure (which hooks
run, a failing hook changes nothing), run on a real Dask LocalCluster and a real local Ray; and
prefect-dask's docs for ``get_dask_client`` inside a task (docs: "Using a Dask client in a task").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prefect_like import flow, task


def note(log: str, line: str) -> None:
    with open(log, "a") as f:
        f.write(line + "\n")


def hooked_tasks(log: str):
    """A task whose hooks note what they saw (pid, task run, state) in ``log``; one hook raises."""

    def completed(task, task_run, state):
        note(log, f"completed {os.getpid()} {task_run.name} {state.name} {state.result()}")

    def failed(task, task_run, state):
        note(log, f"failed {os.getpid()} {task_run.name} {state.name}")

    def broken(task, task_run, state):
        raise RuntimeError("a hook that fails changes nothing")

    @task(on_completion=[completed, broken], on_failure=[failed], task_run_name="half-{x}")
    def half(x: int) -> int:
        if x % 2:
            raise ValueError(f"{x} is odd")
        return x // 2

    return half


def lines(log: str) -> list[list[str]]:
    return sorted(line.split() for line in Path(log).read_text().splitlines())


@pytest.mark.dask
@pytest.mark.slow
def test_task_hooks_run_on_dask_workers(call_log, store):
    pytest.importorskip("distributed")
    from prefect_like_dask.task_runners import DaskTaskRunner, get_dask_client

    half = hooked_tasks(call_log)

    @task
    def through_client(x: int) -> int:
        with get_dask_client() as client:  # the worker's own client: the task submits to its cluster
            return client.submit(lambda y: y + 1, x).result()

    @flow(task_runner=DaskTaskRunner(cluster_kwargs={"n_workers": 1, "threads_per_worker": 2}))
    def sweep():
        states = half.map([2, 3, 4], return_state=True)
        return [s.name for s in states], through_client.submit(41).result()

    names, plus_one = sweep()
    assert names == ["Completed", "Failed", "Completed"]  # the failing hook changed no state
    assert plus_one == 42
    seen = lines(call_log)
    assert [(kind, name, state) for kind, _, name, state, *_ in seen] == [
        ("completed", "half-2", "Completed"), ("completed", "half-4", "Completed"), ("failed", "half-3", "Failed"),
    ]
    assert all(int(pid) != os.getpid() for _, pid, *_ in seen)  # on the worker, not in the flow process
    logs = [log["message"] for log in store.logs()]
    assert sum("An error was encountered while running hook 'broken'" in m for m in logs) == 2


@pytest.mark.ray
@pytest.mark.slow
def test_task_hooks_run_on_ray_workers(call_log):
    ray = pytest.importorskip("ray")
    from prefect_like_ray.task_runners import RayTaskRunner

    from ._support import PYTHONPATH

    half = hooked_tasks(call_log)
    ray.shutdown()

    @flow(task_runner=RayTaskRunner(init_kwargs={
        "num_cpus": 2, "include_dashboard": False, "log_to_driver": False,
        "runtime_env": {"env_vars": {"PYTHONPATH": PYTHONPATH}},
    }))
    def sweep():
        return [s.name for s in half.map([2, 3], return_state=True)]

    try:
        assert sweep() == ["Completed", "Failed"]
    finally:
        ray.shutdown()
    seen = lines(call_log)
    assert [(kind, name, state) for kind, _, name, state, *_ in seen] == [
        ("completed", "half-2", "Completed"), ("failed", "half-3", "Failed"),
    ]
    assert all(int(pid) != os.getpid() for _, pid, *_ in seen)


@pytest.mark.dask
@pytest.mark.slow
def test_an_adaptive_cluster_grows_for_the_work_and_async_code_gets_an_async_client(store):
    # prefect-dask: DaskTaskRunner(adapt_kwargs=...) calls cluster.adapt on the cluster it starts
    # (tests/test_task_runners.py, the "adaptive" cluster fixture), and get_async_dask_client's
    # docs example: an async task awaits a future of the cluster's through it.
    pytest.importorskip("distributed")
    from prefect_like_dask import DaskTaskRunner, get_async_dask_client

    from ._support import flow_in_thread

    @task
    async def through_async_client(x: int) -> int:
        async with get_async_dask_client(timeout="60s") as client:
            return await client.submit(lambda y: y * 2, x)

    # No workers at first: only the adaptive scaler can give the runs somewhere to go.
    runner = DaskTaskRunner(cluster_class="distributed.LocalCluster",
                            cluster_kwargs={"n_workers": 0, "threads_per_worker": 2},
                            adapt_kwargs={"minimum": 1, "maximum": 2})

    @flow(task_runner=runner)
    async def sweep() -> tuple[list[int], int]:
        doubled = through_async_client.submit(21).result()
        async with get_async_dask_client() as client:
            workers = len(await client.run(os.getpid))  # one answer per worker
        return [doubled], workers

    import asyncio

    with flow_in_thread(lambda: asyncio.run(sweep()), timeout=120) as outcome:
        pass
    assert outcome.error is None, outcome.error
    doubled, workers = outcome.value
    assert doubled == [42] and 1 <= workers <= 2


def test_a_dask_runner_is_given_a_cluster_to_start_or_an_address_not_both():
    from prefect_like_dask import DaskTaskRunner

    with pytest.raises(ValueError, match="either address .* or cluster_class/cluster_kwargs/adapt_kwargs"):
        DaskTaskRunner(address="tcp://127.0.0.1:8786", adapt_kwargs={"maximum": 4})
    with pytest.raises(ValueError, match="cluster_class 'no_such_module.Cluster' names no class"):
        DaskTaskRunner(cluster_class="no_such_module.Cluster")
    assert DaskTaskRunner(adapt_kwargs={"maximum": 4}).duplicate().adapt_kwargs == {"maximum": 4}
