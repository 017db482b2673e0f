"""A search on a local Ray: trials in Ray worker processes report home with the batch events and
are pruned by the scheduler in the flow process, as on Dask (test_search_dask)."""

from __future__ import annotations

import os

import pytest

from prefect_like import sweep, task
from tests.runners_engines._support import resumable

ray = pytest.importorskip("ray")
from prefect_like_ray import RayTaskRunner  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@task
def curve(lr: float, epochs: int = 8) -> dict[str, float]:
    loss = lr
    for epoch in range(1, epochs + 1):
        loss = lr / epoch
        sweep.report(step=epoch, loss=loss, pid=os.getpid())
        if sweep.should_prune():
            raise sweep.TrialPruned()
    return {"loss": loss}


class Points:
    def __init__(self, *lrs: float) -> None:
        self.points = [{"lr": lr} for lr in lrs]

    def ask(self) -> dict[str, float] | None:
        return self.points.pop(0) if self.points else None

    def tell(self, params: dict[str, float], value: float | None, state: str) -> None:
        pass


def test_asha_prunes_trials_running_on_ray_workers(store) -> None:
    runner = RayTaskRunner(init_kwargs={"num_cpus": 2, "include_dashboard": False, "log_to_driver": False})
    try:
        search = sweep.optimize(
            curve, sweep.Space(lr=sweep.uniform(0.1, 5.0)), sampler=Points(1.0, 2.0, 3.0, 0.5),
            scheduler=sweep.ASHA(max_t=8, grace_period=1, reduction_factor=2), max_concurrent=1,
            task_runner=runner, name="asha-ray",
        )
    finally:
        ray.shutdown()
    assert [t.state for t in search.trials] == ["Completed", "Pruned", "Pruned", "Completed"]
    points = store.metrics(flow_run_id=search.flow_run_id)
    assert len(points) == 18 and os.getpid() not in {p["metrics"]["pid"] for p in points}


def test_checkpoints_saved_on_ray_workers_resume_a_retry_and_reach_the_flow_process() -> None:
    runner = RayTaskRunner(init_kwargs={"num_cpus": 2, "include_dashboard": False, "log_to_driver": False})
    try:
        search = sweep.optimize(
            resumable, sweep.grid(lr=[1.0, 2.0]), sampler="grid", metric="loss",
            task_runner=runner, name="checkpoints-ray",
        )
    finally:
        ray.shutdown()
    assert all(t.state == "Completed" for t in search.trials)
    # Each retry went on from epoch 3, where its first attempt's checkpoint (step 2) left it.
    assert [t.result["ran"] for t in search.trials] == [[3, 4], [3, 4]]
    assert os.getpid() not in {t.result["pid"] for t in search.trials}
    assert (search.best.checkpoint / "checkpoint.bin").read_bytes() == b"4"
