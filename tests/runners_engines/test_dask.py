"""DaskTaskRunner on real Dask clusters: its own LocalCluster, an external scheduler/worker pair,
a worker dying mid-task, RUNNING visible while a task runs, and per-task tracking under batching."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefect_like import flow, get_run_logger, task

from ._clusters import external_dask
from ._support import (
    ENV,
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

distributed = pytest.importorskip("distributed")
from prefect_like_dask import DaskTaskRunner  # noqa: E402

pytestmark = pytest.mark.dask


def own_cluster(**kwargs) -> DaskTaskRunner:
    return DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, **kwargs})


@task
def where_am_i(i: int = 0) -> dict:
    from distributed import get_worker

    return {"pid": os.getpid(), "scheduler": get_worker().scheduler.address}


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


def test_own_local_cluster_runs_tasks_in_worker_processes_and_is_closed(store):
    @flow(task_runner=own_cluster())
    def pipeline() -> tuple[list[dict], int]:
        return where_am_i.map(range(4)).result(), inc(inc.submit(1))

    places, value = pipeline()
    assert value == 3
    assert all(place["pid"] != os.getpid() for place in places)
    with pytest.raises((OSError, TimeoutError)):
        distributed.Client(places[0]["scheduler"], timeout=2)


@pytest.fixture
def external_cluster(tmp_path):
    """A `dask scheduler` and a `dask worker` started as subprocesses, stopped after the test."""
    scheduler_file = tmp_path / "scheduler.json"
    bin_dir = Path(sys.executable).parent
    common = {"env": ENV, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [
            str(bin_dir / "dask"),
            "scheduler",
            "--scheduler-file",
            str(scheduler_file),
            "--port",
            "0",
            "--no-dashboard",
        ],
        **common,
    )
    worker = subprocess.Popen(
        [
            str(bin_dir / "dask"),
            "worker",
            "--scheduler-file",
            str(scheduler_file),
            "--nworkers",
            "1",
            "--nthreads",
            "2",
            "--no-dashboard",
        ],
        **common,
    )
    try:
        client = distributed.Client(scheduler_file=str(scheduler_file), timeout=60)
        client.wait_for_workers(1, timeout=60)
        yield client
        client.close()
    finally:
        for process in (worker, scheduler):
            process.terminate()
        for process in (worker, scheduler):
            process.wait(timeout=30)


@pytest.mark.slow
def test_external_scheduler_by_address_is_used_and_left_running(external_cluster, store):
    address = external_cluster.scheduler.address

    @flow(task_runner=DaskTaskRunner(address=address))
    def pipeline() -> tuple[list[int], list[dict]]:
        return inc.map(range(50)).result(), where_am_i.map(range(2)).result()

    state = pipeline(return_state=True)
    values, places = state.result()
    assert values == list(range(1, 51))
    assert {place["scheduler"] for place in places} == {address}
    assert store.get_flow_run(state.run_id)["task_runs"] == {"Completed": 52}
    # the scheduler and its worker are still there for the next flow
    assert len(external_cluster.nthreads()) == 1
    assert pipeline()[0] == list(range(1, 51))


@pytest.mark.slow
def test_worker_dying_mid_task_ends_it_crashed_and_the_flow_goes_on(store):
    @flow(task_runner=own_cluster())
    def pipeline():
        crashed = die.submit()
        crashed.wait()
        return (
            crashed.task_run_id,
            (crashed.state.is_crashed(), crashed.state.message),
            inc.map(range(10)).result(),
        )

    state = pipeline(return_state=True)
    assert state.is_completed()
    task_run_id, crashed, values = state.result()
    assert values == list(range(1, 11))
    assert crashed[0]
    assert "worker died" in crashed[1]
    assert store.get_task_run(task_run_id)["state"] == "CRASHED"
    assert store.get_flow_run(state.run_id)["task_runs"] == {"Completed": 10, "Crashed": 1}


@pytest.mark.slow
def test_downstream_of_a_crashed_task_is_not_ready():
    @flow(task_runner=own_cluster())
    def pipeline() -> str:
        down = inc.submit(die.submit())
        down.wait()
        return down.state.name

    assert pipeline() == "NotReady"


@pytest.mark.slow
def test_a_task_whose_worker_died_is_retried_when_it_has_retries_left(call_log, store):
    @flow(task_runner=own_cluster())
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
def test_a_worker_death_reruns_its_bystander_and_crashes_the_culprit(tmp_path, call_log, store):
    """One worker, two threads: the culprit kills it while the bystander runs on the other thread.
    Raw Dask reschedules the bystander; so do we, and both re-runs are on the record."""

    @flow(task_runner=DaskTaskRunner(cluster_kwargs={"n_workers": 1, "threads_per_worker": 2}))
    def pipeline() -> tuple[str, str]:
        return culprit_and_bystander(call_log, str(tmp_path))

    state = pipeline(return_state=True)
    culprit_id, bystander_id = state.result()
    bystander = store.get_task_run(bystander_id)
    assert bystander["state"] == "COMPLETED" and bystander["result"] == "done"
    assert bystander["run_count"] == 2
    (rescheduled,) = [s for s in bystander["states"] if s["state_name"] == "Rescheduled"]
    assert rescheduled["state"] == "RUNNING" and "worker died" in rescheduled["message"]
    culprit = store.get_task_run(culprit_id)
    assert culprit["state"] == "CRASHED" and "it was lost 2 times" in culprit["message"]
    assert culprit["run_count"] == 2 and state_names(culprit).count("Rescheduled") == 1
    assert (starts(call_log, "culprit"), starts(call_log, "bystander")) == (2, 2)
    assert store.get_flow_run(state.run_id)["task_runs"] == {"Completed": 1, "Crashed": 1}


@pytest.mark.slow
def test_a_task_that_kills_its_worker_is_tried_a_bounded_number_of_times(call_log, store):
    """Its first loss is free (it may have been a bystander), each further one uses a retry, and
    it never takes more than 4 workers down: Dask's default allowed-failures is 3."""

    @flow(task_runner=DaskTaskRunner(cluster_kwargs={"n_workers": 1, "threads_per_worker": 1}))
    def pipeline() -> list[str]:
        ids = []
        for fn in (kills_its_worker, kills_its_worker_with_many_retries):
            future = fn.submit(call_log)
            future.wait()
            ids.append(future.task_run_id)
        return ids

    one_retry, many_retries = (store.get_task_run(i) for i in pipeline())
    assert starts(call_log, "kills_its_worker") == 3  # retries=1: 1 + 1 free + 1 retry
    assert starts(call_log, "kills_its_worker_with_many_retries") == 4  # retries=5, capped
    for run, tries in ((one_retry, 3), (many_retries, 4)):
        assert run["state"] == "CRASHED" and f"it was lost {tries} times" in run["message"]
        assert run["run_count"] == tries and state_names(run).count("Rescheduled") == tries - 1


@pytest.mark.slow
def test_running_is_stored_while_the_task_runs(tmp_path, store):
    release = str(tmp_path / "release")

    @flow(task_runner=own_cluster(n_workers=1))
    def pipeline() -> str:
        return wait_for.submit(release).result()

    with flow_in_thread(pipeline) as outcome:
        run = wait_for_task_state(store, "wait_for", "RUNNING", timeout=60)
        Path(release).touch()
    assert outcome.value == "released"
    assert store.get_task_run(run["id"])["state"] == "COMPLETED"


@task
def ends_once_the_next_batch_waits_behind_it() -> str:
    from distributed import get_worker

    worker = get_worker()
    poll(lambda: any(str(key).startswith("wait_for-") for key in worker.state.tasks), 30, "wait_for")
    return "ended"


def home_fetch_tasks(client) -> int:
    """How many tasks the scheduler ran to fetch a batch's home part (``home_part``)."""

    def count(dask_scheduler) -> int:
        return len({e[0] for e in dask_scheduler.transition_log if str(e[0]).endswith("-home")})

    return client.run_on_scheduler(count)


def test_the_flow_sees_a_batch_end_while_its_worker_runs_the_next(tmp_path, store):
    """A `dask worker --nthreads 1` holds the next batch queued while it runs one (Dask's
    worker-saturation). The flow must learn of the first's end while the second runs, not once
    it ends: here the second waits for the flow to have seen the first, so learning late hangs."""
    release = str(tmp_path / "release")
    with external_dask(tmp_path / "cluster", workers=1, threads=1) as (cluster, client):

        @flow(task_runner=DaskTaskRunner(address=cluster.address))
        def pipeline() -> tuple[str, str]:
            first = ends_once_the_next_batch_waits_behind_it.submit()
            second = wait_for.submit(release)
            first.wait(timeout=30)
            seen = first.state.name
            Path(release).touch()
            return seen, second.result()

        assert pipeline() == ("Completed", "released")
        assert home_fetch_tasks(client) == 0  # both parts came home on the event stream


def test_a_long_run_does_not_hold_the_ended_runs_of_its_batch(tmp_path, store):
    """A batch runs its calls one after another; while one of them runs long, the runs of the
    batch that ended before it end in the flow too (their states come on the event topic)."""
    with external_dask(tmp_path / "cluster", workers=1, threads=1) as (cluster, _):
        check_a_long_run_holds_no_batch_mates(DaskTaskRunner(address=cluster.address, batch_seconds=5), tmp_path)


@task
def sixty_kilobytes(i: int) -> bytes:
    return bytes([i % 256]) * 60_000


def test_a_batch_whose_home_part_is_too_big_to_stream_is_fetched_from_its_value(tmp_path, store):
    """Results up to 64 KB go home with their batch's states; a dozen of 60 KB make a part too
    big for the event stream, which the runner then fetches by a task beside the value."""
    with external_dask(tmp_path / "cluster", workers=1, threads=1) as (cluster, client):

        @flow(task_runner=DaskTaskRunner(address=cluster.address, batch_seconds=5))
        def pipeline() -> list[bytes]:
            return sixty_kilobytes.map(range(100)).result()

        state = pipeline(return_state=True)
        assert state.result() == [bytes([i % 256]) * 60_000 for i in range(100)]
        assert store.get_flow_run(state.run_id)["task_runs"] == {"Completed": 100}
        assert home_fetch_tasks(client) >= 1


@pytest.mark.slow
def test_events_and_logs_from_workers_are_all_stored(store):
    @flow(task_runner=own_cluster())
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


@pytest.mark.slow
def test_batching_keeps_every_task_run_tracked(store):
    n = 20_000

    @flow(task_runner=own_cluster())
    def pipeline() -> int:
        return sum(inc.map(range(n)).result())

    state = pipeline(return_state=True)
    assert state.result() == sum(range(1, n + 1))
    assert store.get_flow_run(state.run_id)["task_runs"] == {"Completed": n}
    runs = store.list_task_runs(state.run_id, limit=n + 10)
    assert len(runs) == n
    assert len({r["id"] for r in runs}) == n
    assert sorted(r["map_index"] for r in runs) == list(range(n))


def test_missing_dask_gives_the_install_hint(tmp_path):
    script = (
        "import sys; sys.modules['distributed'] = None\n"
        "from prefect_like import flow\n"
        "@flow(task_runner='dask')\n"
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
    assert 'pip install "prefect-like[dask]"' in done.stdout, done.stderr


@task
def takes(value: object) -> str:
    return type(value).__name__


@task
def returns_a_lock(i: int) -> dict:
    import threading

    return {"i": i, "lock": threading.Lock()}


def test_what_cannot_travel_to_or_from_the_cluster_fails_that_run_saying_why(store):
    """A lock or a generator as argument, a lock in a result: that run FAILS, the rest go on."""
    import threading

    @flow(task_runner=own_cluster())
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
def test_a_resource_no_dask_worker_has_ends_the_runs_crashed_saying_so_and_never_hangs(store):
    # Issue from the field: {"num_gpus": 1} (Ray's spelling) made every run fail with
    # "TypeError: run_batch()" on Dask; raw Dask, given resources={"GPU": 1} and no worker with
    # a GPU, keeps the task waiting forever.
    wants_a_gpu = inc.with_options(engine_options={"num_gpus": 1})

    @flow(task_runner=own_cluster())
    def pipeline():
        refused = wants_a_gpu.map(range(3))
        refused.wait()
        return [f.state for f in refused], inc.map(range(3)).result()

    states, values = pipeline()
    assert values == [1, 2, 3]  # the rest of the flow goes on
    assert {s.name for s in states} == {"Crashed"}
    assert "no Dask worker has the resources the task asks for (GPU=1)" in states[0].message
    assert 'dask worker ... --resources "GPU=1"' in states[0].message


@pytest.mark.slow
def test_a_task_written_for_ray_runs_on_dask_workers_that_have_its_resources():
    # One spelling for both engines: num_gpus=1 is Dask's resources={"GPU": 1}; a Ray-only
    # option (runtime_env) is Ray's business and left out on Dask.
    @task(engine_options={"num_gpus": 1, "memory": 1e6, "runtime_env": {"env_vars": {"A": "1"}}})
    def on_gpu(x: int) -> int:
        from distributed import get_worker

        return x + int(get_worker().state.total_resources["GPU"])

    @flow(task_runner=own_cluster(resources={"GPU": 1, "MEMORY": 2e6}))
    def pipeline() -> list[int]:
        return on_gpu.map(range(4)).result()

    assert pipeline() == [1, 2, 3, 4]
