"""DaskTaskRunner against what happens to clusters in production: a restart or a cancel from
another client, the scheduler going away, the runner's own collector dying. Each ends the runs it
hit Crashed with the cause, within a bounded time (``flow_in_thread``'s deadline): never a hang.

Raw Dask is the reference: its futures raise ``FutureCancelledError`` at once on the first two,
and on the third once the client gives up reconnecting (``Client(timeout=...)``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prefect_like import flow, task

from ._clusters import external_dask
from ._support import flow_in_thread, poll, wait_for_file

distributed = pytest.importorskip("distributed")
from prefect_like_dask import DaskTaskRunner  # noqa: E402

pytestmark = [pytest.mark.dask, pytest.mark.slow]


@task
def started_then_wait(folder: str, i: int) -> int:
    Path(folder, f"started-{i}").touch()
    wait_for_file(str(Path(folder, "release")), timeout=120)  # Dask cannot stop a running thread
    return i


@task
def inc(x: int) -> int:
    return x + 1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One `dask scheduler` + `dask worker` (2 threads) pair, and a client of the test's own."""
    with external_dask(tmp_path_factory.mktemp("dask")) as (running, client):
        yield running, client


def two_waiting_runs(folder: Path, runner: DaskTaskRunner):
    """A flow whose two runs start and then wait forever; it returns their states."""

    @flow(task_runner=runner)
    def pipeline():
        waiting = started_then_wait.map([str(folder)] * 2, range(2))
        waiting.wait()
        return [f.state for f in waiting]

    return lambda: pipeline(return_state=True).result(raise_on_failure=False)


def started(folder: Path) -> bool:
    return all(Path(folder, f"started-{i}").exists() for i in range(2))


def test_cancelled_by_another_client_ends_the_runs_crashed_saying_so(cluster, tmp_path, store):
    running, client = cluster
    pipeline = two_waiting_runs(tmp_path, DaskTaskRunner(address=running.address))
    with flow_in_thread(pipeline, timeout=60) as outcome:
        poll(lambda: started(tmp_path), 60, "both runs started on the cluster")
        keys = [key for keys in client.processing().values() for key in keys]
        client.cancel([distributed.Future(key, client) for key in keys], force=True)
    Path(tmp_path, "release").touch()  # the worker's threads run on, as on raw Dask: free them
    states = outcome.value
    assert [s.name for s in states] == ["Crashed", "Crashed"]
    assert (
        "the dask cluster cancelled it: another client or the scheduler cancelled it"
        in states[0].message
    )
    assert store.get_task_run(states[0].run_id)["state"] == "CRASHED"


def test_a_restart_from_another_client_ends_the_runs_crashed_and_the_next_flow_runs(
    cluster, tmp_path, store
):
    # The issue from the field: client.restart() from another client hung the flow forever.
    running, client = cluster
    runner = DaskTaskRunner(address=running.address)
    with flow_in_thread(two_waiting_runs(tmp_path, runner), timeout=90) as outcome:
        poll(lambda: started(tmp_path), 60, "both runs started on the cluster")
        client.restart()
    states = outcome.value
    assert [s.name for s in states] == ["Crashed", "Crashed"]
    assert "the scheduler was restarted" in states[0].message
    stored = store.get_task_run(states[1].run_id)
    assert stored["state"] == "CRASHED" and "scheduler-restart" in stored["message"]

    @flow(task_runner=runner)
    def after() -> list[int]:
        return inc.map(range(3)).result()

    assert after() == [1, 2, 3]


class CollectorDies(DaskTaskRunner):
    """A runner whose collector thread fails on its first finished batch (a bug, say)."""

    def _hand_over(self, finished):
        raise SystemExit("the collector was killed")

    def _collect(self) -> None:
        first = self._done.get()
        if first is not None:
            self._hand_over([first])


def test_a_dead_collector_ends_the_flow_with_a_clear_error(cluster, store):
    running, _ = cluster
    seen = []

    @flow(task_runner=CollectorDies(address=running.address))
    def pipeline() -> list[int]:
        first = inc.submit(1)
        first.wait()
        seen.append(first.state)
        return inc.map(range(3)).result()  # submitted after the collector died

    with flow_in_thread(lambda: pipeline(return_state=True), timeout=60) as outcome:
        pass
    (first,) = seen
    assert (
        first.is_crashed()
        and "collector thread died: SystemExit: the collector was killed" in first.message
    )
    state = outcome.value
    assert state.is_failed() and "stopped hearing from the cluster" in state.message, state.message
    assert store.get_flow_run(state.run_id)["state"] == "FAILED"


def test_losing_the_scheduler_ends_the_runs_crashed_once_the_client_gives_up(tmp_path, store):
    with external_dask(tmp_path / "cluster") as (running, _):
        runner = DaskTaskRunner(address=running.address, client_kwargs={"timeout": 5})
        with flow_in_thread(two_waiting_runs(tmp_path, runner), timeout=90) as outcome:
            poll(lambda: started(tmp_path), 60, "both runs started on the cluster")
            running.kill_scheduler()
        Path(tmp_path, "release").touch()
    states = outcome.value
    assert [s.name for s in states] == ["Crashed", "Crashed"]
    assert "this client lost its connection to the scheduler" in states[0].message
    assert store.get_task_run(states[0].run_id)["state"] == "CRASHED"


@task(name="evaluate-v2")
def evaluate_v2(x: int) -> int:
    return x * 2


def test_the_dashboard_groups_tasks_under_their_own_names(cluster):
    # The issue: on Dask's dashboard `evaluate-v2` collapsed to `evaluate`.
    running, client = cluster

    @flow(task_runner=DaskTaskRunner(address=running.address))
    def pipeline() -> list[int]:
        return evaluate_v2.map(range(10)).result()

    assert pipeline() == [2 * x for x in range(10)]
    prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert "evaluate_v2-batch" in prefixes and "evaluate" not in prefixes


@task
def fast_then_slow(i: int, log: str) -> int:
    """The first 20 return at once, the other 20 take a while: each says where and when it ran."""
    import threading
    import time

    started = time.monotonic()
    if i >= 20:
        time.sleep(0.3)  # the work, not a wait for something
    with open(log, "a") as f:
        f.write(f"{i} {os.getpid()}-{threading.get_ident()} {started} {time.monotonic()}\n")
    return i


def test_slow_runs_after_fast_ones_keep_every_worker_busy(cluster, tmp_path):
    # The issue: batches sized from the first (fast) runs put 38 of 40 slow runs on one worker.
    running, _ = cluster
    log = str(tmp_path / "runs.log")

    @flow(task_runner=DaskTaskRunner(address=running.address))
    def pipeline() -> list[int]:
        return fast_then_slow.map(range(40), log=log).result()

    assert pipeline() == list(range(40))
    slow = [
        line.split() for line in Path(log).read_text().splitlines() if int(line.split()[0]) >= 20
    ]
    per_slot: dict[str, int] = {}
    for _, slot, _, _ in slow:
        per_slot[slot] = per_slot.get(slot, 0) + 1
    assert len(per_slot) == 2 and min(per_slot.values()) >= 5, per_slot  # both slots ran slow runs
    # ... at the same time: a slow run on one slot overlapped a slow run on the other
    assert any(
        a[1] != b[1] and float(a[2]) < float(b[3]) and float(b[2]) < float(a[3])
        for a in slow
        for b in slow
    )


MYLIB = """
from prefect_like import task

TABLE = list(range(1000))


@task
def lookup(i: int) -> int:
    return TABLE[i]


@task
def fails(i: int) -> int:
    raise ValueError(f"bad {i}")
"""


def test_a_task_from_a_module_travels_by_reference_and_a_missing_module_says_so(
    cluster, tmp_path, store, monkeypatch
):
    import importlib
    import uuid

    running, client = cluster
    name = f"mylib_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    path.write_text(MYLIB)
    monkeypatch.syspath_prepend(str(tmp_path))
    mylib = importlib.import_module(name)

    @flow(task_runner=DaskTaskRunner(address=running.address))
    def pipeline():
        looked = mylib.lookup.map(range(3))
        failed = mylib.fails.submit(7)
        futures = [*looked, failed]
        for future in futures:
            future.wait()
        return [f.state for f in futures]

    missing = pipeline(return_state=True).result(raise_on_failure=False)
    assert {s.name for s in missing} == {"Failed"}
    message = str(missing[0].result(raise_on_failure=False))
    assert f"module `{name}` is not importable on worker tcp://" in message
    assert "install it there or ship it with upload_file/runtime_env" in message

    client.upload_file(str(path))  # now the workers import it: the tasks run by reference
    looked_up = pipeline(return_state=True).result(raise_on_failure=False)
    assert [s.result() for s in looked_up[:3]] == [0, 1, 2]
    error = store.get_task_run(looked_up[3].run_id)["error"]
    assert error["type"] == "ValueError" and f'{name}.py", line 14' in error["traceback"]


FLOW_FILE = """
from dataclasses import dataclass

from prefect_like import flow, task


@dataclass
class Score:
    x: int
    loss: float


@task
def evaluate(x: int) -> Score:
    return Score(x, (x - 2) ** 2)


@flow
def sweep(n: int) -> list[Score]:
    return evaluate.map(range(n)).result()
"""


def test_a_flow_loaded_from_a_file_the_workers_cannot_import_runs_on_the_cluster(cluster, tmp_path):
    # What ``prefect-like run FILE.py:FLOW --runner dask`` and a deployment's worker do: the file
    # is loaded under a made-up module name no worker can import, so its tasks and classes
    # travel by value.
    from prefect_like.runfile import load_flow

    running, _ = cluster
    path = tmp_path / "sweep_file.py"
    path.write_text(FLOW_FILE)
    sweep = load_flow(f"{path}:sweep").with_options(task_runner=DaskTaskRunner(address=running.address))
    scores = sweep(n=4)
    assert [(s.x, s.loss) for s in scores] == [(0, 4), (1, 1), (2, 0), (3, 1)]
    assert type(scores[0]).__module__.startswith("_prefect_like_run_")
