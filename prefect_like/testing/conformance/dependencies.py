"""Futures as arguments are dependencies; wait_for orders; a failed upstream makes NotReady."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from pydantic import BaseModel

from prefect_like import StateType, allow_failure, as_completed, flow, task, wait
from prefect_like.errors import UpstreamFailedError
from prefect_like.testing.fixtures import ConformanceFixtures
from prefect_like.testing.helpers import count_lines, mark_call, read_lines


@task
def inc(x: int) -> int:
    return x + 1


@task
def total(values) -> int:
    return sum(values)


@task
def explode(x: int) -> int:
    raise ValueError(f"kaput {x}")


# Containers a task argument may hide futures in. Prefect 3 resolves futures inside lists, tuples,
# sets, dicts, dataclass instances and pydantic models: ``visit_collection`` in PrefectHQ/prefect's
# ``src/prefect/utilities/collections.py`` walks each (dataclasses through ``fields()``, models
# through ``model_fields``) and rebuilds it with the results. Module level, so Dask and Ray
# workers import them.


@dataclasses.dataclass
class Trial:
    lr: Any
    scores: Any


class TrialModel(BaseModel):
    lr: Any
    scores: Any


@task
def describe_trial(trial: Any) -> tuple[str, Any, Any]:
    return type(trial).__name__, trial.lr, trial.scores


@task
def identity(value: Any) -> Any:
    return value


class DependencyTests(ConformanceFixtures):
    """Futures as arguments are dependencies; wait_for orders; a failed upstream makes NotReady."""

    def test_future_argument_passes_the_upstream_result(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> int:
            a = inc.submit(1)
            b = inc.submit(a)
            return inc(b)

        assert pipeline() == 4

    def test_futures_nested_in_collections_are_resolved(self, runner):
        @task
        def describe(items: list, mapping: dict, pair: tuple) -> tuple:
            return items, mapping, pair

        @flow(task_runner=runner())
        def pipeline():
            a, b = inc.submit(1), inc.submit(10)
            return describe.submit(
                [a, b, 3],
                {"a": a, "nested": {"b": [b]}},
                (a, "const"),
            ).result()

        items, mapping, pair = pipeline()
        assert items == [2, 11, 3]
        assert mapping == {"a": 2, "nested": {"b": [11]}}
        assert pair == (2, "const")

    def test_a_list_of_futures_feeds_a_reduction(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> int:
            return total([inc.submit(i) for i in range(20)])

        assert pipeline() == sum(range(1, 21))

    def test_diamond(self, runner):
        @task
        def combine(left: int, right: int) -> int:
            return left * right

        @flow(task_runner=runner())
        def pipeline() -> int:
            root = inc.submit(1)
            left = inc.submit(root)
            right = inc.submit(inc.submit(root))
            return combine.submit(left, right).result()

        assert pipeline() == 3 * 4

    def test_wait_for_orders_without_passing_data(self, runner, tmp_path):
        order = str(tmp_path / "order.log")

        @task
        def first(path: str) -> str:
            time.sleep(0.2)  # gives a runner that ignored wait_for the chance to run `second` first
            mark_call(path, "first")
            return "ignored"

        @task
        def second(path: str) -> int:
            mark_call(path, "second")
            return 7

        @flow(task_runner=runner())
        def pipeline() -> int:
            f = first.submit(order)
            return second.submit(order, wait_for=[f]).result()

        assert pipeline() == 7
        assert read_lines(order) == ["first", "second"]

    def test_wait_for_on_a_direct_call(self, runner, tmp_path):
        order = str(tmp_path / "order.log")

        @task
        def step(path: str, name: str) -> None:
            if name == "first":
                time.sleep(0.2)
            mark_call(path, name)

        @flow(task_runner=runner())
        def pipeline() -> None:
            f = step.submit(order, "first")
            step(order, "second", wait_for=[f])

        pipeline()
        assert read_lines(order) == ["first", "second"]

    def test_failed_upstream_makes_downstream_not_ready(self, runner, call_log):
        @task
        def downstream(x: int, log: str) -> int:
            mark_call(log)
            return x

        out = {}

        @flow(task_runner=runner())
        def pipeline() -> None:
            out["up"] = up = explode.submit(1)
            out["down"] = downstream.submit(up, call_log)

        pipeline()
        up, down = out["up"], out["down"]
        assert down.done()  # the flow waits for every run it submitted
        assert up.state.is_failed()
        assert count_lines(call_log) == 0  # the downstream never ran
        state = down.state
        assert state.type is StateType.PENDING
        assert state.is_pending()
        assert state.name == "NotReady"
        assert "explode" in (state.message or "")  # names the upstream task
        with pytest.raises(UpstreamFailedError):
            down.result()
        assert isinstance(down.result(raise_on_failure=False), UpstreamFailedError)
        assert isinstance(down.exception(), UpstreamFailedError)

    def test_not_ready_propagates_down_a_chain(self, runner, call_log):
        @task
        def downstream(x: int, log: str) -> int:
            mark_call(log)
            return x

        futures = []

        @flow(task_runner=runner())
        def pipeline() -> None:
            a = explode.submit(0)
            b = downstream.submit(a, call_log)
            c = downstream.submit(b, call_log)
            d = downstream.submit({"nested": [c]}, call_log)
            futures.extend([b, c, d])

        pipeline()
        assert count_lines(call_log) == 0
        for f in futures:
            assert f.state.name == "NotReady"
            with pytest.raises(UpstreamFailedError):
                f.result()

    def test_failed_wait_for_upstream_makes_downstream_not_ready(self, runner, call_log):
        @task
        def downstream(log: str) -> int:
            mark_call(log)
            return 1

        out = {}

        @flow(task_runner=runner())
        def pipeline() -> None:
            up = explode.submit(1)
            out["down"] = downstream.submit(call_log, wait_for=[up])

        pipeline()
        down = out["down"]
        assert down.state.name == "NotReady"
        assert count_lines(call_log) == 0

    def test_direct_call_with_failed_upstream_raises_upstream_failed(self, runner, call_log):
        @task
        def downstream(x: int, log: str) -> int:
            mark_call(log)
            return x

        @flow(task_runner=runner())
        def pipeline() -> str:
            up = explode.submit(1)
            try:
                downstream(up, call_log)
            except UpstreamFailedError:
                return "caught"
            return "ran"

        assert pipeline() == "caught"
        assert count_lines(call_log) == 0

    def test_allow_failure_lets_the_downstream_run(self, runner, call_log):
        @task
        def cleanup(x, log: str) -> str:
            mark_call(log)
            return "cleaned"

        @flow(task_runner=runner())
        def pipeline():
            up = explode.submit(1)
            return cleanup.submit(allow_failure(up), call_log).result()

        assert pipeline() == "cleaned"
        assert count_lines(call_log) == 1

    def test_allow_failure_in_wait_for(self, runner, call_log):
        @task
        def cleanup(log: str) -> str:
            mark_call(log)
            return "cleaned"

        @flow(task_runner=runner())
        def pipeline():
            up = explode.submit(1)
            return cleanup.submit(call_log, wait_for=[allow_failure(up)]).result()

        assert pipeline() == "cleaned"
        assert count_lines(call_log) == 1

    def test_a_long_chain_of_dependent_tasks(self, runner):
        @flow(task_runner=runner())
        def pipeline(n: int) -> int:
            f = inc.submit(0)
            for _ in range(n - 1):
                f = inc.submit(f)
            return f.result()

        assert pipeline(300) == 300

    def test_wide_fan_in_on_one_upstream(self, runner):
        @task
        def slow_root() -> int:
            time.sleep(0.1)
            return 1

        @flow(task_runner=runner())
        def pipeline() -> list[int]:
            root = slow_root.submit()
            return [f.result() for f in [inc.submit(root) for _ in range(50)]]

        assert pipeline() == [2] * 50

    def test_module_wait_returns_done_and_not_done(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> None:
            futures = [inc.submit(i) for i in range(10)] + [explode.submit(0)]
            done, not_done = wait(futures)
            assert set(done) == set(futures)
            assert not not_done
            assert all(f.done() for f in futures)

        pipeline()

    def test_as_completed_yields_every_future_once(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> list[int]:
            futures = [inc.submit(i) for i in range(10)] + [explode.submit(99)]
            seen = []
            for future in as_completed(futures):
                assert future.done()
                seen.append(future)
            assert len(seen) == len(futures)
            assert set(seen) == set(futures)
            return sorted(f.result() for f in seen if f.state.is_completed())

        assert pipeline() == list(range(1, 11))

    def test_allow_failure_on_a_direct_call(self, runner, call_log):
        @task
        def cleanup(x, log: str) -> str:
            mark_call(log)
            return "cleaned"

        @flow(task_runner=runner())
        def pipeline() -> tuple[str, str]:
            up = explode.submit(1)
            return (
                cleanup(allow_failure(up), call_log),
                cleanup(None, call_log, wait_for=[allow_failure(up)]),
            )

        assert pipeline() == ("cleaned", "cleaned")
        assert count_lines(call_log) == 2

    def test_a_future_list_argument_is_resolved_to_its_results(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> tuple[int, list[int]]:
            xs = [1, 2, 3]
            return total.submit(inc.map(xs)).result(), identity(inc.map(xs))

        assert pipeline() == (2 + 3 + 4, [2, 3, 4])

    def test_futures_in_a_dict_a_tuple_and_a_set_are_resolved(self, runner):
        @flow(task_runner=runner())
        def pipeline():
            a, b = inc.submit(1), inc.submit(10)
            return (
                identity.submit({"a": a, "both": (a, b), "map": inc.map([0, 1])}).result(),
                identity.submit((a, (b, "const"))).result(),
                identity.submit({a, b}).result(),
            )

        mapping, pair, a_set = pipeline()
        assert mapping == {"a": 2, "both": (2, 11), "map": [1, 2]}
        assert pair == (2, (11, "const"))
        assert a_set == {2, 11}

    def test_futures_in_a_dataclass_instance_are_resolved(self, runner):
        @flow(task_runner=runner())
        def pipeline():
            return describe_trial.submit(Trial(lr=inc.submit(0), scores=inc.map([1, 2]))).result()

        assert pipeline() == ("Trial", 1, [2, 3])

    def test_futures_in_a_pydantic_model_are_resolved(self, runner):
        @flow(task_runner=runner())
        def pipeline():
            trial = TrialModel(lr=inc.submit(0), scores={"best": inc.submit(5)})
            return describe_trial.submit(trial).result()

        assert pipeline() == ("TrialModel", 1, {"best": 6})
