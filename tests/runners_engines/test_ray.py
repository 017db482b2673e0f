"""RayTaskRunner on real Ray: its own local Ray, a `ray start --head` cluster by address, a worker
dying mid-task, RUNNING visible while a task runs, resource hints and per-task tracking."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from prefect_like import flow, get_run_logger, task

from ._support import (
    ENV,
    PYTHONPATH,
    check_a_long_run_holds_no_batch_mates,
    culprit_and_bystander,
    flow_in_thread,
    kills_its_worker,
    kills_its_worker_with_many_retries,
    poll,
    starts,
    state_names,
    wait_for_file,
    wait_for_task_state,
)

ray = pytest.importorskip("ray")
from prefect_like_ray import RayTaskRunner  # noqa: E402

pytestmark = pytest.mark.ray
RUNTIME_ENV = {"env_vars": {"PYTHONPATH": PYTHONPATH}}


@task
def where_am_i(i: int = 0) -> int:
    return os.getpid()


@task
def inc(x: int) -> int:
    return x + 1


@task
def die() -> int:
    os._exit(1)


@task(retries=1)
def die_once(log: str) -> str:
    with open(log, "a") as f:
        f.write("x\n")
    if len(Path(log).read_text().splitlines()) == 1:
        os._exit(1)
    return "survived"


@task
def wait_for(path: str) -> str:
    wait_for_file(path, timeout=60)
    return "released"


@task
def chatty(x: int) -> int:
    logger = get_run_logger()
    logger.info("start %d", x)
    logger.info("end %d", x)
    return x


@task(engine_options={"num_cpus": 2})
def greedy() -> float:
    import ray as ray_

    return ray_.get_runtime_context().get_assigned_resources().get("CPU", 0.0)


@pytest.fixture
def no_ray():
    ray.shutdown()
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for the tests below; RayTaskRunner() uses the Ray already running."""
    ray.shutdown()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        runtime_env=RUNTIME_ENV,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


def test_own_local_ray_is_started_and_shut_down(no_ray, store):
    @flow(task_runner=RayTaskRunner(init_kwargs={"num_cpus": 2, "log_to_driver": False}))
    def pipeline() -> tuple[list[int], int]:
        return where_am_i.map(range(4)).result(), inc(inc.submit(1))

    pids, value = pipeline()
    assert value == 3
    assert os.getpid() not in pids
    assert not ray.is_initialized()


@task
def shout(word: str) -> str:
    print(f"{word} from a thread-runner task")
    return word


def test_log_prints_still_captures_in_a_flow_after_a_ray_flow(no_ray, store):
    # Ray, when a flow starts it, puts a print of its own in place (its progress bars'
    # safe_print, calling the print it imported with); a log_prints flow run later in the same
    # process must still capture.
    @flow(task_runner=RayTaskRunner(init_kwargs={"num_cpus": 2}))
    def on_ray() -> list[int]:
        return inc.map(range(3)).result()

    @flow(task_runner="thread", log_prints=True)
    def loud() -> str:
        return shout.submit("hello").result()

    assert loud() == "hello"  # log_prints' print in place first, as after any earlier flow
    assert on_ray() == [1, 2, 3]
    state = loud(return_state=True)
    messages = [line["message"] for line in store.logs(flow_run_id=state.run_id)]
    assert "hello from a thread-runner task" in messages


def test_a_long_run_does_not_hold_the_ended_runs_of_its_batch(local_ray, tmp_path, store):
    """As on Dask: the runs of a batch that ended before a long run of it end in the flow while
    it runs (their states come through the event sink), not when the batch ends."""
    check_a_long_run_holds_no_batch_mates(RayTaskRunner(batch_seconds=5), tmp_path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_ray_start_head_cluster_by_address(no_ray, store):
    port = _free_port()
    ray_bin = str(Path(sys.executable).parent / "ray")
    head = subprocess.Popen(
        [
            ray_bin,
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--node-ip-address=127.0.0.1",
        ],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll(lambda: _accepts(port), 60, "the Ray head to listen")

        @flow(
            task_runner=RayTaskRunner(
                address=f"127.0.0.1:{port}", init_kwargs={"log_to_driver": False}
            )
        )
        def pipeline() -> list[int]:
            return inc.map(range(50)).result()

        state = pipeline(return_state=True)
        assert state.result() == list(range(1, 51))
        assert store.get_flow_run(state.run_id)["task_runs"] == {"Completed": 50}
        assert not ray.is_initialized()  # the driver disconnected ...
        assert head.poll() is None  # ... and left the cluster running
        assert pipeline() == list(range(1, 51))
    finally:
        head.terminate()
        head.wait(timeout=60)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_worker_dying_mid_task_ends_it_crashed_and_the_flow_goes_on(local_ray, store):
    @flow(task_runner=RayTaskRunner())
    def pipeline():
        crashed = die.submit()
        crashed.wait()
        return (
            crashed.task_run_id,
            crashed.state.is_crashed(),
            crashed.state.message,
            inc.map(range(10)).result(),
        )

    state = pipeline(return_state=True)
    task_run_id, is_crashed, message, values = state.result()
    assert values == list(range(1, 11))
    assert is_crashed
    assert "worker died" in message
    assert store.get_task_run(task_run_id)["state"] == "CRASHED"
    assert store.get_flow_run(state.run_id)["task_runs"] == {"Completed": 10, "Crashed": 1}


@pytest.mark.slow
def test_downstream_of_a_crashed_task_is_not_ready(local_ray):
    @flow(task_runner=RayTaskRunner())
    def pipeline() -> str:
        down = inc.submit(die.submit())
        down.wait()
        return down.state.name

    assert pipeline() == "NotReady"


@pytest.mark.slow
def test_a_task_whose_worker_died_is_retried_when_it_has_retries_left(local_ray, call_log, store):
    @flow(task_runner=RayTaskRunner())
    def pipeline():
        future = die_once.submit(call_log)
        return future.task_run_id, future.result()

    task_run_id, value = pipeline()
    assert value == "survived"
    run = store.get_task_run(task_run_id)
    assert run["state"] == "COMPLETED"
    assert run["run_count"] == 2
    assert "Rescheduled" in state_names(run)


@pytest.mark.slow
def test_a_worker_death_leaves_the_bystander_alone_and_crashes_the_culprit(
    local_ray, tmp_path, call_log, store
):
    """The Dask case, on Ray: there a worker process runs one task at a time, so the culprit's
    death loses only its own batch. The bystander runs once; the culprit is re-run as on Dask."""

    @flow(task_runner=RayTaskRunner())
    def pipeline() -> tuple[str, str]:
        return culprit_and_bystander(call_log, str(tmp_path))

    state = pipeline(return_state=True)
    culprit_id, bystander_id = state.result()
    bystander = store.get_task_run(bystander_id)
    assert bystander["state"] == "COMPLETED" and bystander["result"] == "done"
    assert bystander["run_count"] == 1 and "Rescheduled" not in state_names(bystander)
    culprit = store.get_task_run(culprit_id)
    assert culprit["state"] == "CRASHED" and "it was lost 2 times" in culprit["message"]
    assert culprit["run_count"] == 2
    (rescheduled,) = [s for s in culprit["states"] if s["state_name"] == "Rescheduled"]
    assert rescheduled["state"] == "RUNNING" and "worker died" in rescheduled["message"]
    assert (starts(call_log, "culprit"), starts(call_log, "bystander")) == (2, 1)
    assert store.get_flow_run(state.run_id)["task_runs"] == {"Completed": 1, "Crashed": 1}


@pytest.mark.slow
def test_a_task_that_kills_its_worker_is_tried_a_bounded_number_of_times(
    local_ray, call_log, store
):
    """The same bound as on Dask: one free loss, then its retries, never more than 4 deaths."""

    @flow(task_runner=RayTaskRunner())
    def pipeline() -> list[str]:
        ids = []
        for fn in (kills_its_worker, kills_its_worker_with_many_retries):
            future = fn.submit(call_log)
            future.wait()
            ids.append(future.task_run_id)
        return ids

    one_retry, many_retries = (store.get_task_run(i) for i in pipeline())
    assert starts(call_log, "kills_its_worker") == 3
    assert starts(call_log, "kills_its_worker_with_many_retries") == 4
    for run, tries in ((one_retry, 3), (many_retries, 4)):
        assert run["state"] == "CRASHED" and f"it was lost {tries} times" in run["message"]
        assert run["run_count"] == tries and state_names(run).count("Rescheduled") == tries - 1


@pytest.mark.slow
def test_running_is_stored_while_the_task_runs(local_ray, tmp_path, store):
    release = str(tmp_path / "release")

    @flow(task_runner=RayTaskRunner())
    def pipeline() -> str:
        return wait_for.submit(release).result()

    with flow_in_thread(pipeline) as outcome:
        run = wait_for_task_state(store, "wait_for", "RUNNING", timeout=60)
        Path(release).touch()
    assert outcome.value == "released"
    assert store.get_task_run(run["id"])["state"] == "COMPLETED"


@pytest.mark.slow
def test_events_and_logs_from_workers_are_all_stored(local_ray, store):
    @flow(task_runner=RayTaskRunner())
    def pipeline() -> list[str]:
        futures = chatty.map(range(300))
        futures.wait()
        return [f.task_run_id for f in futures]

    state = pipeline(return_state=True)
    ids = state.result()
    assert store.get_flow_run(state.run_id)["task_runs"] == {"Completed": 300}
    assert len(store.logs(flow_run_id=state.run_id, limit=10_000)) >= 600
    assert [r["message"] for r in store.logs(task_run_id=ids[123])] == ["start 123", "end 123"]
    names = [s["state_name"] for s in store.get_task_run(ids[-1])["states"]]
    assert names == ["Pending", "Running", "Completed"]


def test_engine_options_reach_ray(local_ray):
    @flow(task_runner=RayTaskRunner())
    def pipeline() -> float:
        return greedy.submit().result()

    assert pipeline() == 2.0


@pytest.mark.slow
def test_batching_keeps_every_task_run_tracked(local_ray, store):
    n = 20_000

    @flow(task_runner=RayTaskRunner())
    def pipeline() -> int:
        return sum(inc.map(range(n)).result())

    state = pipeline(return_state=True)
    assert state.result() == sum(range(1, n + 1))
    assert store.get_flow_run(state.run_id)["task_runs"] == {"Completed": n}
    runs = store.list_task_runs(state.run_id, limit=n + 10)
    assert len({r["id"] for r in runs}) == n
    assert sorted(r["map_index"] for r in runs) == list(range(n))


def test_missing_ray_gives_the_install_hint(tmp_path):
    script = (
        "import sys; sys.modules['ray'] = None\n"
        "from prefect_like import flow\n"
        "@flow(task_runner='ray')\n"
        "def pipeline():\n    return 1\n"
        "try:\n    pipeline()\nexcept ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**ENV, "PREFECT_LIKE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 'pip install "prefect-like[ray]"' in done.stdout, done.stderr


@task
def takes(value: object) -> str:
    return type(value).__name__


@task
def returns_a_lock(i: int) -> dict:
    import threading

    return {"i": i, "lock": threading.Lock()}


def test_what_cannot_travel_to_or_from_the_cluster_fails_that_run_saying_why(local_ray, store):
    """A lock or a generator as argument, a lock in a result: that run FAILS, the rest go on."""
    import threading

    @flow(task_runner=RayTaskRunner())
    def pipeline():
        sent = [
            takes.submit(threading.Lock()),
            takes.submit(i for i in range(3)),
            takes.submit(lambda x: x),
        ]  # cloudpickle carries a lambda: that one runs
        back = returns_a_lock.submit(1)
        fine = inc.map(range(5))
        states = [(f.wait(), f.state)[1] for f in [*sent, back]]
        return [(s.run_id, s.type.value, s.message) for s in states], fine.result()

    (lock_arg, gen_arg, lambda_arg, lock_result), fine = pipeline(return_state=True).result()
    assert fine == [1, 2, 3, 4, 5]
    assert (
        lambda_arg[1] == "COMPLETED" and store.get_task_run(lambda_arg[0])["result"] == "function"
    )
    for (run_id, state, message), what, why in [
        (lock_arg, "argument 'value' of task run", "cannot pickle '_thread.lock'"),
        (gen_arg, "argument 'value' of task run", "generator"),
        (lock_result, "cannot be sent home", "cannot pickle '_thread.lock'"),
    ]:
        assert state == "FAILED" and what in message and why in message, message
        stored = store.get_task_run(run_id)
        assert stored["state"] == "FAILED" and stored["error"]["type"] == "SerializationError"


@pytest.mark.slow
def test_an_engine_option_ray_refuses_or_a_resource_no_node_has_ends_the_runs_crashed_and_never_hangs(
    local_ray, store
):
    # Issues from the field: an option Ray refused left the flow waiting forever; a resource no
    # node has leaves raw Ray waiting forever too (an "infeasible" task).
    refused_option = inc.with_options(engine_options={"scheduling_strategy": "NOWHERE"})
    wants_a_gpu = inc.with_options(engine_options={"num_gpus": 1})

    @flow(task_runner=RayTaskRunner())
    def pipeline():
        refused, no_gpu = refused_option.map(range(2)), wants_a_gpu.map(range(2))
        refused.wait()
        no_gpu.wait()
        return [f.state for f in refused], [f.state for f in no_gpu], inc.map(range(3)).result()

    refused, no_gpu, values = pipeline()
    assert values == [1, 2, 3]
    assert {s.name for s in refused + no_gpu} == {"Crashed"}
    assert "the ray engine refused to run it" in refused[0].message
    assert "scheduling_strategy" in refused[0].message and "NOWHERE" in refused[0].message
    assert "no Ray worker has the resources the task asks for (GPU=1)" in no_gpu[0].message
    assert "ray start --num-gpus 1" in no_gpu[0].message


def test_resources_in_the_shared_spelling_reach_ray_as_its_own_options(local_ray):
    # {"resources": {"CPU": 2}} is Ray's num_cpus=2 (Ray itself refuses CPU in resources).
    @flow(task_runner=RayTaskRunner())
    def pipeline() -> float:
        return greedy.with_options(engine_options={"resources": {"CPU": 2}}).submit().result()

    assert pipeline() == 2.0
