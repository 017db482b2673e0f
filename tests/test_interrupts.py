"""Ctrl-C and SIGTERM during a flow: the run ends CANCELLED, with a true record of every task run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prefect_like import settings
from prefect_like.tracking.store import Store
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from prefect_like import flow, task

    release = Path(sys.argv[1])

    @task
    def wait_for_release(i: int) -> int:
        while not release.exists():   # runs until the test lets it go (it never does)
            time.sleep(0.05)
        return i

    @flow(name="interrupted", task_runner=sys.argv[2])
    def interrupted():
        return wait_for_release.map(range(40)).result()

    interrupted()
    """
)




def _running_task_runs(store_path: Path) -> int:
    if not store_path.exists():
        return 0
    with Store(store_path) as store:
        runs = store.list_flow_runs(limit=1)
        if not runs:
            return 0
        return store.count_task_runs(runs[0]["id"], state="running")


@pytest.mark.parametrize("runner", ["thread", "asyncio"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_flow_ends_cancelled_and_records_every_task(tmp_path, runner, signum):
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_LIKE_RECORDER_INTERVAL": "0.05"}
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "never"), runner],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: _running_task_runs(settings.database_path()) >= 2, what="task runs RUNNING")
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)  # prompt: no waiting for the running tasks
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    assert "Cancelled" in stderr  # the flow's own closing line says how it ended

    with Store(settings.database_path()) as store:
        flow_run = store.list_flow_runs(limit=1)[0]
        assert flow_run["state"] == "CANCELLED"
        assert ("SIGTERM" in flow_run["message"]) == (signum == signal.SIGTERM)
        task_runs = store.list_task_runs(flow_run["id"], limit=1000)
    # Every task run the flow created is recorded, and none is left looking alive.
    assert task_runs
    assert {t["state"] for t in task_runs} == {"CANCELLED"}
    abandoned = [t for t in task_runs if t["start_time"] is not None]
    never_started = [t for t in task_runs if t["start_time"] is None]
    assert len(abandoned) >= 2
    assert all("while running" in t["message"] for t in abandoned)
    assert all("before it started" in t["message"] for t in never_started)
    assert sum(flow_run["task_runs"].values()) == len(task_runs)


# -- on Dask and Ray: the runners cancel what is queued on the cluster and record it ----------
#
# One cluster per engine for this module, started here; the flow process joins it by address,
# so each test pays for a connection, not for a cluster.

DIST_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from prefect_like import flow, task

    release, engine, address = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    if engine == "dask":
        from prefect_like_dask import DaskTaskRunner
        runner = DaskTaskRunner(address=address)
    else:
        from prefect_like_ray import RayTaskRunner
        runner = RayTaskRunner(address=address)

    @task
    def wait_for_release(i: int) -> int:
        while not release.exists():   # runs until the test lets it go (it never does)
            time.sleep(0.05)
        return i

    @flow(name="interrupted", task_runner=runner)
    def interrupted():
        return wait_for_release.map(range(40)).result()

    interrupted()
    """
)


@pytest.fixture(scope="module")
def dask_address():
    distributed = pytest.importorskip("distributed")
    from prefect_like.task_runners.batching import pythonpath_for_workers

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        env={"PYTHONPATH": pythonpath_for_workers()}, silence_logs=40,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def ray_address():
    ray = pytest.importorskip("ray")
    from prefect_like.task_runners.batching import pythonpath_for_workers

    ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": pythonpath_for_workers()}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize(("engine", "signum"), [("dask", signal.SIGINT), ("ray", signal.SIGTERM)])
def test_interrupted_flow_on_a_cluster_ends_cancelled(tmp_path, request, engine, signum):
    address = request.getfixturevalue(f"{engine}_address")
    script = tmp_path / "flow.py"
    script.write_text(DIST_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "runners")]),
           "PREFECT_LIKE_RECORDER_INTERVAL": "0.05"}
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "never"), engine, address],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: _running_task_runs(settings.database_path()) >= 2, what="task runs RUNNING")
        sent = time.monotonic()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
        exited_after = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    assert "Cancelled" in stderr, stderr[-2000:]
    assert exited_after < 30, f"the flow process took {exited_after:.1f} s to exit"

    with Store(settings.database_path()) as store:
        flow_run = store.list_flow_runs(limit=1)[0]
        assert flow_run["state"] == "CANCELLED"
        assert ("SIGTERM" in flow_run["message"]) == (signum == signal.SIGTERM)
        task_runs = store.list_task_runs(flow_run["id"], limit=1000)
    assert len(task_runs) == 40
    assert {t["state"] for t in task_runs} == {"CANCELLED"}  # none left looking alive
    started = [t for t in task_runs if t["start_time"] is not None]
    assert len(started) >= 2
    assert all("while running" in t["message"] for t in started)
    assert all("before it started" in t["message"] or "while running or queued" in t["message"]
               for t in task_runs if t["start_time"] is None)
    assert sum(flow_run["task_runs"].values()) == 40
