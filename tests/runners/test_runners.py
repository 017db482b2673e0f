"""Choosing a runner, and what each runner promises beyond the shared semantics."""

from __future__ import annotations

import asyncio
import threading

import pytest

from prefect_like import as_completed, flow, task, wait
from prefect_like.errors import UnknownTaskRunnerError
from prefect_like.task_runners import (
    AsyncioTaskRunner,
    SequentialTaskRunner,
    ThreadPoolTaskRunner,
)


@task
def inc(x: int) -> int:
    return x + 1


def test_runners_are_exported_from_the_package():
    import prefect_like

    assert prefect_like.SequentialTaskRunner is SequentialTaskRunner
    assert prefect_like.ThreadPoolTaskRunner is ThreadPoolTaskRunner
    assert prefect_like.AsyncioTaskRunner is AsyncioTaskRunner


@pytest.mark.parametrize("name", ["sequential", "thread", "asyncio"])
def test_runner_by_registered_name(name):
    @flow(task_runner=name)
    def pipeline() -> list[int]:
        return inc.map(range(5)).result()

    assert pipeline() == [1, 2, 3, 4, 5]


def test_unknown_runner_name_is_a_clear_error():
    with pytest.raises(UnknownTaskRunnerError, match="no-such-runner"):

        @flow(task_runner="no-such-runner")
        def pipeline() -> None:
            pass

        pipeline()


def test_default_runner_runs_tasks():
    @flow
    def pipeline() -> int:
        return inc.submit(inc.submit(1)).result()

    assert pipeline() == 3


def test_a_chain_of_10000_tasks_on_two_threads():
    # No worker thread may block waiting for an upstream: with two threads, a runner that did
    # would deadlock long before the end of the chain.
    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def chain(n: int) -> int:
        f = inc.submit(0)
        for _ in range(n - 1):
            f = inc.submit(f)
        return f.result()

    assert chain(10_000) == 10_000


def test_many_waiting_tasks_do_not_starve_two_threads():
    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def fan() -> int:
        roots = [inc.submit(i) for i in range(10)]
        layer = [inc.submit(r) for r in roots for _ in range(50)]
        return sum(f.result() for f in layer)

    assert fan() == 50 * sum(range(2, 12))


def test_thread_runner_runs_tasks_concurrently():
    # Thread-only: a barrier cannot cross processes. Two tasks meet at the barrier only if they
    # run at the same time; run one after the other, the barrier times out and breaks.
    barrier = threading.Barrier(2, timeout=10)

    @task
    def meet(i: int) -> int:
        barrier.wait()
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def pipeline() -> list[int]:
        return meet.map([1, 2]).result()

    assert pipeline() == [1, 2]


def test_sequential_runner_runs_in_submission_order(tmp_path):
    order = tmp_path / "order.log"

    @task
    def step(i: int) -> None:
        with open(order, "a") as f:
            f.write(f"{i}\n")

    @flow(task_runner=SequentialTaskRunner())
    def pipeline() -> None:
        step.map(range(20)).wait()

    pipeline()
    assert order.read_text().split() == [str(i) for i in range(20)]


def test_asyncio_runner_interleaves_async_tasks():
    # In-process only. Two async tasks pass the barrier only if the runner runs them on its loop
    # at the same time; run one after the other, the first times out.
    barrier = asyncio.Barrier(2)

    @task
    async def meet(i: int) -> int:
        await asyncio.wait_for(barrier.wait(), timeout=10)
        return i

    @flow(task_runner=AsyncioTaskRunner())
    def pipeline() -> list[int]:
        return meet.map([0, 1]).result()

    assert pipeline() == [0, 1]


def test_thread_runner_future_timeouts_and_completion_order():
    # Thread-only: the tasks block on events the test sets, so what is done when is exact.
    gates = {name: threading.Event() for name in ("a", "b")}

    @task
    def gated(name: str) -> str:
        if not gates[name].wait(timeout=10):
            raise RuntimeError(f"gate {name} never opened")
        return name

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def pipeline() -> list[str]:
        a, b = gated.submit("a"), gated.submit("b")
        with pytest.raises(TimeoutError):
            a.result(timeout=0.01)
        assert not a.done()
        done, not_done = wait([a, b], timeout=0.01)
        assert (done, not_done) == (set(), {a, b})

        order = []
        gates["b"].set()
        for future in as_completed([a, b], timeout=10):
            order.append(future.result())
            gates["a"].set()
        return order

    assert pipeline() == ["b", "a"]
