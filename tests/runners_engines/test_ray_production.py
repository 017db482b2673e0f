"""RayTaskRunner when a Ray node goes away: the runs it held are re-run on the nodes left, as
Ray re-runs a task whose node died, and each re-run is on the record as another attempt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prefect_like import flow, task

from ._support import PYTHONPATH, count_start, flow_in_thread, poll, state_names, wait_for_file

ray = pytest.importorskip("ray")
from prefect_like_ray import RayTaskRunner  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@task
def first_attempt_waits(log: str, folder: str) -> str:
    """Its first attempt says where it runs and waits; a re-run returns at once."""
    if count_start(log, "first_attempt_waits") == 1:
        Path(folder, "node").write_text(ray.get_runtime_context().get_node_id())
        wait_for_file(str(Path(folder, "release")), timeout=120)
    return ray.get_runtime_context().get_node_id()


@pytest.fixture
def two_node_cluster():
    """A head that runs no tasks (the driver and the event sink live there) and two 1-CPU nodes."""
    ray.shutdown()
    os.environ.setdefault("RAY_health_check_period_ms", "500")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False},
    )
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(
        address=cluster.address,
        runtime_env={"env_vars": {"PYTHONPATH": PYTHONPATH}},
        log_to_driver=False,
    )
    try:
        yield cluster, nodes
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_a_lost_node_reruns_its_task_runs_elsewhere_as_another_attempt(
    two_node_cluster, tmp_path, call_log, store
):
    cluster, nodes = two_node_cluster

    @flow(task_runner=RayTaskRunner())
    def pipeline() -> tuple[str, str]:
        future = first_attempt_waits.submit(call_log, str(tmp_path))
        return future.task_run_id, future.result()

    with flow_in_thread(pipeline, timeout=120) as outcome:
        doomed_id = poll(
            lambda: Path(tmp_path, "node").exists() and Path(tmp_path, "node").read_text(),
            60,
            "the first attempt to start",
        )
        (doomed,) = [node for node in nodes if node.node_id == doomed_id]
        cluster.remove_node(doomed, allow_graceful=False)
    task_run_id, ran_on = outcome.value
    assert ran_on != doomed_id
    run = store.get_task_run(task_run_id)
    assert run["state"] == "COMPLETED" and run["run_count"] == 2
    assert state_names(run).count("Rescheduled") == 1
    assert "died" in [s for s in run["states"] if s["state_name"] == "Rescheduled"][0]["message"]
