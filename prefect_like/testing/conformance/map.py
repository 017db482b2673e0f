"""Task.map: zip semantics, unmapped constants, futures as items, lists of futures back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from prefect_like import flow, task, unmapped
from prefect_like.errors import MappingLengthError
from prefect_like.futures import FutureList
from prefect_like.task_runners import SequentialTaskRunner
from prefect_like.testing.fixtures import ConformanceFixtures
from prefect_like.testing.helpers import count_lines, mark_call, read_lines, wait_for_file


@task
def square(x: int) -> int:
    return x * x


@task
def gated(gate: str) -> list[int]:
    if not wait_for_file(gate, timeout=30):
        raise TimeoutError("the flow body never went past its .map call")
    return [1, 2, 3]


@task
def scale(x: int, factor: int) -> int:
    return x * factor


@task
def fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x


@task
def bracketed(i: int, log: str) -> int:
    mark_call(log, "start")
    time.sleep(0.05)  # a little work, so that runs overlap when a runner lets them
    mark_call(log, "end")
    return i


@task
async def bracketed_async(i: int, log: str) -> int:
    mark_call(log, "start")
    await asyncio.sleep(0.05)
    mark_call(log, "end")
    return i


def most_at_once(log: str | Path) -> int:
    """The most runs started and not yet ended at any point, from their start/end lines."""
    running = most = 0
    for line in read_lines(log):
        running += 1 if line == "start" else -1
        most = max(most, running)
    return most


def bounded(runner, n: int):
    """The factory's runner with ``max_in_flight=n``, kept by every duplicate a flow takes."""
    instance = runner()
    if not hasattr(instance, "max_in_flight"):
        pytest.skip(f"{type(instance).__name__} has no max_in_flight setting")
    instance.max_in_flight = n
    duplicate = instance.duplicate

    def bounded_duplicate():
        copy = duplicate()
        copy.max_in_flight = n
        return copy

    instance.duplicate = bounded_duplicate
    return instance


class MapTests(ConformanceFixtures):
    """Task.map: zip semantics, unmapped constants, futures as items, lists of futures back."""

    def test_map_over_a_list(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> list[int]:
            return square.map([1, 2, 3]).result()

        assert pipeline() == [1, 4, 9]

    def test_map_returns_a_list_of_futures(self, runner):
        out = {}

        @flow(task_runner=runner())
        def pipeline() -> None:
            out["futures"] = futures = square.map(range(5))
            futures.wait()

        pipeline()
        futures = out["futures"]
        assert isinstance(futures, FutureList)
        assert len(futures) == 5
        assert all(f.done() for f in futures)
        assert [f.result() for f in futures] == [0, 1, 4, 9, 16]
        assert futures.result() == [0, 1, 4, 9, 16]
        assert len({f.task_run_id for f in futures}) == 5

    def test_map_zips_several_iterables(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> list[int]:
            return scale.map([1, 2, 3], [10, 20, 30]).result()

        assert pipeline() == [10, 40, 90]

    def test_map_with_keyword_iterables(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> list[int]:
            return scale.map(x=[1, 2], factor=(3, 4)).result()

        assert pipeline() == [3, 8]

    def test_unmapped_is_a_constant(self, runner):
        @task
        def length_plus(x: int, items: list) -> int:
            return x + len(items)

        @flow(task_runner=runner())
        def pipeline() -> tuple[list[int], list[int]]:
            return (
                scale.map([1, 2, 3], unmapped(100)).result(),
                length_plus.map([0, 1], items=unmapped([7, 7, 7, 7])).result(),
            )

        assert pipeline() == ([100, 200, 300], [4, 5])

    def test_unmapped_future_is_resolved(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> list[int]:
            factor = square.submit(3)
            return scale.map([1, 2], unmapped(factor)).result()

        assert pipeline() == [9, 18]

    def test_map_over_futures(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> list[int]:
            squares = square.map([1, 2, 3])
            return scale.map(squares, unmapped(2)).result()

        assert pipeline() == [2, 8, 18]

    def test_map_of_a_map_result_list(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> list[int]:
            return square.map(square.map(range(4))).result()

        assert pipeline() == [0, 1, 16, 81]

    def test_map_of_nothing(self, runner):
        @flow(task_runner=runner())
        def pipeline():
            futures = square.map([])
            assert list(futures) == []
            assert futures.result() == []
            return futures

        assert pipeline() == []

    def test_unequal_lengths_raise_a_clear_error(self, runner, call_log):
        @task
        def pair(x: int, y: int, log: str) -> int:
            mark_call(log)
            return x + y

        @flow(task_runner=runner())
        def pipeline() -> None:
            pair.map([1, 2, 3], [1, 2, 3, 4, 5], unmapped(call_log))

        with pytest.raises(MappingLengthError) as info:
            pipeline()
        assert isinstance(info.value, TypeError)
        assert isinstance(info.value, ValueError)
        message = str(info.value)
        assert "3" in message and "5" in message
        assert count_lines(call_log) == 0

    def test_one_failing_item_does_not_fail_the_others(self, runner):
        out = {}

        @flow(task_runner=runner())
        def pipeline() -> None:
            out["futures"] = fails_on_three.map(range(6))

        pipeline()
        futures = out["futures"]
        assert [f.state.is_completed() for f in futures] == [True, True, True, False, True, True]
        with pytest.raises(ValueError, match="three is not allowed"):
            futures[3].result()
        with pytest.raises(ValueError):
            futures.result()
        assert futures.result(raise_on_failure=False)[:3] == [0, 1, 2]
        assert isinstance(futures.result(raise_on_failure=False)[3], ValueError)

    def test_map_with_wait_for(self, runner, tmp_path):
        marker = str(tmp_path / "marker")

        @task
        def make_marker(path: str) -> None:
            mark_call(path, "ready")

        @task
        def read_marker(x: int, path: str) -> str:
            with open(path) as f:
                return f"{x}:{f.read().strip()}"

        @flow(task_runner=runner())
        def pipeline() -> list[str]:
            ready = make_marker.submit(marker)
            return read_marker.map([1, 2], unmapped(marker), wait_for=[ready]).result()

        assert pipeline() == ["1:ready", "2:ready"]

    def test_map_over_a_generator_of_many_items(self, runner):
        n = 20_000

        @task
        def plus_one(x: int) -> int:
            return x + 1

        @flow(task_runner=runner())
        def pipeline() -> int:
            results = plus_one.map(i for i in range(n)).result()
            assert results == list(range(1, n + 1))
            return len(results)

        assert pipeline() == n

    def test_map_of_failures_feeds_not_ready_downstream(self, runner):
        out = {}

        @flow(task_runner=runner())
        def pipeline() -> None:
            out["second"] = square.map(fails_on_three.map(range(5)))

        pipeline()
        second = out["second"]
        assert [f.state.name for f in second] == ["Completed"] * 3 + ["NotReady", "Completed"]
        assert [second[i].result() for i in (0, 1, 2, 4)] == [0, 1, 4, 16]

    def test_unequal_lengths_with_a_generator_raise(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> None:
            scale.map((i for i in range(3)), [1, 2, 3, 4, 5]).wait()

        with pytest.raises(MappingLengthError):
            pipeline()

    def test_map_over_an_upstream_future_maps_over_its_result(self, runner):
        # Prefect 3: transform.map(extract.submit()) maps over the upstream's result
        # (src/prefect/task_runners.py, TaskRunner.map resolves top-level futures).
        @task
        def extract() -> list[int]:
            return [1, 2, 3]

        @flow(task_runner=runner())
        def pipeline() -> list[int]:
            return square.map(extract.submit()).result() + scale.map(extract.submit(), unmapped(10)).result()

        assert pipeline() == [1, 4, 9, 10, 20, 30]

    def test_map_over_an_unfinished_upstream_does_not_block_the_flow_body(self, runner, tmp_path):
        # The upstream ends only once the body has gone past the .map call: a map that waited
        # for it would leave it waiting, and it would fail after its bounded wait.
        if isinstance(runner(), SequentialTaskRunner):
            pytest.skip("the sequential runner runs each task inside submit(): nothing is unfinished")
        gate = str(tmp_path / "gate")

        @flow(task_runner=runner())
        def pipeline() -> list[int]:
            mapped = square.map(gated.submit(gate))
            Path(gate).touch()
            return mapped.result()

        assert pipeline() == [1, 4, 9]

    @pytest.mark.parametrize("task_", [bracketed, bracketed_async], ids=["sync", "async"])
    def test_map_keeps_at_most_max_in_flight_runs_unfinished(self, runner, call_log, task_):
        n = 2

        @flow(task_runner=bounded(runner, n))
        def pipeline() -> list[int]:
            return task_.map(range(12), log=unmapped(call_log)).result()

        assert pipeline() == list(range(12))
        assert read_lines(call_log).count("end") == 12
        assert most_at_once(call_log) <= n
