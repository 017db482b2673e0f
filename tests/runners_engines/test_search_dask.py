"""A search on a real Dask LocalCluster: trials on worker processes report home with the batch
events and are pruned by the scheduler in the flow process (through the search's board)."""

from __future__ import annotations

import os

import pytest

from prefect_like import sweep, task
from tests.runners_engines._support import resumable

distributed = pytest.importorskip("distributed")
from prefect_like_dask import DaskTaskRunner  # noqa: E402

pytestmark = [pytest.mark.dask, pytest.mark.slow]


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


def test_asha_prunes_trials_running_on_dask_workers(store) -> None:
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1})
    search = sweep.optimize(
        curve, sweep.Space(lr=sweep.uniform(0.1, 5.0)), sampler=Points(1.0, 2.0, 3.0, 0.5),
        scheduler=sweep.ASHA(max_t=8, grace_period=1, reduction_factor=2), max_concurrent=1,
        task_runner=runner, name="asha-dask",
    )
    assert [t.state for t in search.trials] == ["Completed", "Pruned", "Pruned", "Completed"]
    points = store.metrics(flow_run_id=search.flow_run_id)
    # 8 + 1 + 1 + 8 reports, every one stored, from the workers' processes, not this one.
    assert len(points) == 18
    assert {p["metrics"]["pid"] for p in points} - {os.getpid()} == {p["metrics"]["pid"] for p in points}
    pruned = store.list_task_runs(search.flow_run_id, state="Pruned")
    assert [r["result"]["loss"] for r in pruned] == [2.0, 3.0]


def test_checkpoints_saved_on_dask_workers_resume_a_retry_and_reach_the_flow_process() -> None:
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1})
    search = sweep.optimize(
        resumable, sweep.grid(lr=[1.0, 2.0]), sampler="grid", metric="loss",
        task_runner=runner, name="checkpoints-dask",
    )
    assert all(t.state == "Completed" for t in search.trials)
    # Each retry went on from epoch 3, where its first attempt's checkpoint (step 2) left it.
    assert [t.result["ran"] for t in search.trials] == [[3, 4], [3, 4]]
    assert {t.result["pid"] for t in search.trials} - {os.getpid()} == {t.result["pid"] for t in search.trials}
    assert (search.best.checkpoint / "checkpoint.bin").read_bytes() == b"4"
