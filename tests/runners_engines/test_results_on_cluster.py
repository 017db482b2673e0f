"""Results stay where they were made: a 1 MB result lives in the engine's object store until
someone asks for it; the fan-in task gets it worker to worker; the flow process fetches only what
``.result()`` asks for and what the flow returns, and the tracking store holds a summary.

The case is the issue's field report scaled down (5,000 x 1 MB peaked the flow process at
+10 GB on Dask, against raw Dask's +38 MB): ``N`` results of 1 MB, and the flow process's peak
RSS growth must stay under a quarter of what the results weigh."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from prefect_like import flow, task

from ._clusters import external_dask
from ._support import PYTHONPATH

np = pytest.importorskip("numpy")
psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.slow

N = 320
MB = 1 << 20
BOUND = N * MB // 4


@task
def make(i: int) -> Any:
    import numpy

    return numpy.full(MB // 8, float(i))  # 1 MB


@task
def total_of(arrays: list) -> float:
    return float(sum(a[0] for a in arrays))


@contextmanager
def peak_rss_growth() -> Iterator[Callable[[], int]]:
    """The most this process's RSS grew over its size at the start of the block, sampled."""
    process = psutil.Process()
    start = process.memory_info().rss
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield lambda: peak[0] - start
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], process.memory_info().rss)


def fan_out_fan_in(runner: Any):
    @flow(task_runner=runner)
    def pipeline() -> tuple[float, float, Any, str]:
        arrays = make.map(range(N))
        # Nothing waits on them, so the runner's own flusher sends them; what it sent must not
        # stay referenced by it (that would fetch every array here when the flow ends).
        while not all(array.done() for array in arrays):
            threading.Event().wait(0.02)
        total = total_of.submit(arrays)  # worker to worker: no array comes here for this
        asked = arrays[7].result()[0]  # one result, fetched because it is asked for
        return (
            total.result(),
            asked,
            arrays[N - 1],
            arrays[3].task_run_id,
        )  # a future: fetched at the end

    return pipeline


def check(pipeline: Any, store: Any) -> None:
    pipeline()  # warm up: the runner's own imports and connections are not what is measured
    with peak_rss_growth() as growth:
        state = pipeline(return_state=True)
    total, asked, last, run_id = state.result()
    assert total == sum(range(N)) and asked == 7.0
    last = last.result()  # the returned future's state (as on every runner), its value fetched
    assert last.shape == (MB // 8,) and last[0] == N - 1
    assert growth() < BOUND, (
        f"the flow process grew by {growth() / MB:.0f} MB for {N} MB of results"
    )
    stored = store.get_task_run(run_id)
    assert stored["state"] == "COMPLETED" and len(str(stored["result"])) < 500


@pytest.mark.dask
def test_dask_results_stay_on_the_cluster(tmp_path, store):
    pytest.importorskip("distributed")
    from prefect_like_dask import DaskTaskRunner

    with external_dask(tmp_path / "cluster", workers=1, threads=2) as (cluster, _):
        check(fan_out_fan_in(DaskTaskRunner(address=cluster.address)), store)


@pytest.mark.ray
def test_ray_results_stay_in_the_object_store(store):
    ray = pytest.importorskip("ray")
    from prefect_like_ray import RayTaskRunner

    ray.shutdown()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": PYTHONPATH}},
    )
    try:
        check(fan_out_fan_in(RayTaskRunner()), store)
    finally:
        ray.shutdown()


@pytest.mark.dask
def test_futures_the_flow_did_not_return_are_left_on_the_cluster(tmp_path, store):
    # Only what the flow returns comes home when it ends: futures held anywhere else (here a
    # list outside the flow; inside the runner, a thread's last batch) bring no result home,
    # and asking one of them afterwards says why it cannot be had.
    pytest.importorskip("distributed")
    from prefect_like_dask import DaskTaskRunner

    from prefect_like.task_runners.batching import ResultFetchError

    held: list[Any] = []
    with external_dask(tmp_path / "cluster", workers=1, threads=2) as (cluster, _):

        @flow(task_runner=DaskTaskRunner(address=cluster.address))
        def pipeline() -> float:
            arrays = make.map(range(N))
            held.extend(arrays)
            return total_of.submit(arrays).result()

        pipeline()  # warm up
        held.clear()
        with peak_rss_growth() as growth:
            assert pipeline() == sum(range(N))
        assert growth() < BOUND, f"the flow process grew by {growth() / MB:.0f} MB"
        with pytest.raises(ResultFetchError, match="call .result\\(\\) in the flow, or return the futures"):
            held[5].result()


@task
def make_and_note(i: int, note: str) -> Any:
    import numpy
    from distributed import get_worker

    array = numpy.full(MB // 8, float(i))
    get_worker().made_by_the_test = array  # kept alive, so no copy can take its place in memory
    with open(note, "w") as f:
        f.write(str(array.ctypes.data))
    return array


@task
def address_of(array: Any) -> int:
    return int(array.ctypes.data)


@pytest.mark.dask
def test_a_big_result_is_used_where_it_lies_and_counted_in_the_workers_memory(tmp_path, store):
    # A downstream task on the worker that holds a big result gets that very array, not a copy
    # (a copy doubles the memory of every fan-in), and Dask counts the batch's value at its
    # size, so the worker's spill and pause limits see it.
    pytest.importorskip("distributed")
    from prefect_like_dask import DaskTaskRunner

    note = str(tmp_path / "address")
    with external_dask(tmp_path / "cluster", workers=1, threads=1) as (cluster, client):

        @flow(task_runner=DaskTaskRunner(address=cluster.address))
        def pipeline() -> tuple[int, int]:
            array = make_and_note.submit(1, note)
            where = address_of.submit(array).result()
            held = sum(client.run(lambda dask_worker: dask_worker.state.nbytes).values())
            return where, held

        where, held = pipeline()
        with open(note) as f:
            assert where == int(f.read())
        assert held >= MB
