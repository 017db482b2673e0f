"""Defining and calling tasks and flows: what a call returns, futures, states, options."""

from __future__ import annotations

import pytest

from prefect_like import State, StateType, flow, task, unmapped
from prefect_like.errors import ParameterTypeError
from prefect_like.testing.fixtures import ConformanceFixtures
from prefect_like.testing.helpers import count_lines, mark_call


@task
def add(x: int, y: int) -> int:
    return x + y


@task()
def double(x: int) -> int:
    return 2 * x


@task(name="custom-name", tags=["a", "b"])
def named(x: int) -> int:
    return x


@task
def weighted_total(*values: int, weight: int = 1, **extra: int) -> int:
    return sum(values) * weight + sum(extra.values())


class BasicsTests(ConformanceFixtures):
    """Defining and calling tasks and flows: what a call returns, futures, states, options."""

    def test_flow_call_returns_its_return_value(self, runner):
        @flow(task_runner=runner())
        def pipeline(x: int) -> int:
            return x + 1

        assert pipeline(1) == 2
        assert pipeline(x=41) == 42

    def test_task_call_in_flow_returns_its_result(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> tuple[int, int, int]:
            return add(1, 2), double(3), named(7)

        assert pipeline() == (3, 6, 7)

    def test_flow_decorator_with_and_without_arguments(self, runner):
        @flow
        def bare() -> str:
            return "bare"

        @flow()
        def empty_parens() -> str:
            return "empty"

        @flow(name="explicit", task_runner=runner())
        def with_args() -> int:
            return add(2, 3)

        assert bare() == "bare"
        assert empty_parens() == "empty"
        assert with_args() == 5

    def test_submit_returns_a_future_with_the_result(self, runner):
        out = {}

        @flow(task_runner=runner())
        def pipeline() -> int:
            out["future"] = future = add.submit(2, 3)
            return future.result()

        assert pipeline() == 5
        future = out["future"]
        assert future.done()
        assert future.result() == 5
        assert future.exception() is None
        assert isinstance(future.task_run_id, str) and future.task_run_id
        assert future.state.is_completed()
        assert future.state.type is StateType.COMPLETED
        assert future.state.result() == 5

    def test_flow_returning_futures_returns_their_states(self, runner):
        # Prefect 3: futures a flow returns are resolved to their runs' States, in containers too.
        @flow(task_runner=runner())
        def pipeline():
            return add.submit(1, 2), [double.submit(1), {"d": double.submit(2)}]

        first, (second, third) = pipeline()
        assert isinstance(first, State) and first.result() == 3
        assert second.result() == 2
        assert third["d"].result() == 4

    def test_submit_with_keyword_arguments(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> int:
            return add.submit(x=10, y=-3).result()

        assert pipeline() == 7

    def test_future_wait_and_done_callback(self, runner, tmp_path):
        seen = []

        @flow(task_runner=runner())
        def pipeline() -> int:
            future = double.submit(21)
            future.add_done_callback(lambda f: seen.append(f.result()))
            future.wait()
            assert future.done()
            return future.result(timeout=30)

        assert pipeline() == 42
        assert seen == [42]

    def test_done_callback_on_a_finished_future_runs(self, runner):
        seen = []

        @flow(task_runner=runner())
        def pipeline() -> None:
            future = double.submit(1)
            future.wait()
            future.add_done_callback(lambda f: seen.append(f))
            assert seen == [future]

        pipeline()

    def test_flow_return_state(self, runner, store):
        @flow(task_runner=runner())
        def pipeline(x: int) -> int:
            return double(x)

        state = pipeline(4, return_state=True)
        assert isinstance(state, State)
        assert state.type is StateType.COMPLETED
        assert state.name == "Completed"
        assert state.is_completed()
        assert not (
            state.is_failed() or state.is_crashed() or state.is_pending() or state.is_running()
        )
        assert isinstance(state.timestamp, float)
        assert state.result() == 8
        assert isinstance(state.run_id, str)
        assert store.get_flow_run(state.run_id)["state_name"] == "Completed"

    def test_task_return_state(self, runner):
        out = {}

        @flow(task_runner=runner())
        def pipeline() -> None:
            out["state"] = add(1, 1, return_state=True)
            out["future"] = add.submit(2, 2, return_state=True)

        pipeline()
        state, future = out["state"], out["future"]
        assert isinstance(state, State)
        assert state.is_completed()
        assert state.result() == 2
        # submit with return_state=True waits and returns the run's State (Prefect 3)
        assert isinstance(future, State)
        assert future.result() == 4

    def test_with_options_returns_a_new_task(self, runner, store):
        renamed = add.with_options(name="renamed-add", retries=3)

        @flow(task_runner=runner())
        def pipeline() -> tuple[int, int]:
            return add(1, 1), renamed(2, 2)

        state = pipeline(return_state=True)
        assert state.result() == (2, 4)
        assert renamed is not add
        assert renamed.name == "renamed-add"
        assert add.name == "add"
        names = sorted(tr["task_name"] for tr in store.list_task_runs(state.run_id))
        assert names == ["add", "renamed-add"]

    def test_task_run_name_format_string_and_callable(self, runner, store):
        @task(task_run_name="trial-{lr}")
        def train(lr: float, epochs: int = 1) -> float:
            return lr * epochs

        @task(task_run_name=lambda: "from-callable")
        def evaluate(x: float) -> float:
            return x

        @flow(task_runner=runner())
        def sweep() -> None:
            train(0.1)
            train.submit(lr=0.5, epochs=2).wait()
            evaluate(1.0)

        state = sweep(return_state=True)
        names = sorted(tr["name"] for tr in store.list_task_runs(state.run_id))
        assert names == ["from-callable", "trial-0.1", "trial-0.5"]

    def test_flow_name_and_flow_run_name(self, runner, store):
        @flow(task_runner=runner())
        def default_named() -> None:
            pass

        @flow(name="my-sweep", flow_run_name="sweep-{lr}", task_runner=runner())
        def renamed(lr: float) -> None:
            pass

        first = default_named(return_state=True)
        second = renamed(0.01, return_state=True)
        # as in Prefect: the function's name, with hyphens for underscores
        assert store.get_flow_run(first.run_id)["flow_name"] == "default-named"
        record = store.get_flow_run(second.run_id)
        assert record["flow_name"] == "my-sweep"
        assert record["name"] == "sweep-0.01"

    def test_flow_parameters_are_validated_and_coerced(self, runner):
        @flow(task_runner=runner())
        def train(lr: float, epochs: int = 2) -> tuple[float, int]:
            return lr, epochs

        assert train("0.1") == (0.1, 2)
        assert isinstance(train("0.1")[0], float)
        with pytest.raises(ParameterTypeError) as info:
            train(lr="abc")
        assert isinstance(info.value, TypeError)
        assert "lr" in str(info.value)

    def test_validate_parameters_false_passes_values_through(self, runner):
        @flow(validate_parameters=False, task_runner=runner())
        def train(lr: float) -> object:
            return lr

        assert train("abc") == "abc"

    def test_subflow_is_linked_to_its_parent(self, runner, store):
        @flow(task_runner=runner())
        def child(x: int) -> int:
            return double(x)

        @flow(task_runner=runner())
        def parent() -> tuple[int, str]:
            child_state = child(5, return_state=True)
            return child(6), child_state.run_id

        state = parent(return_state=True)
        value, child_run_id = state.result()
        assert value == 12
        record = store.get_flow_run(child_run_id)
        assert record["flow_name"] == "child"
        assert record["state"] == "COMPLETED"
        assert record["parent_flow_run_id"] == state.run_id
        assert store.get_flow_run(state.run_id)["parent_flow_run_id"] is None

    def test_a_flow_can_be_called_again(self, runner, call_log):
        @task
        def work(x: int, log: str) -> int:
            mark_call(log)
            return x

        @flow(task_runner=runner())
        def pipeline(start: int, stop: int) -> list[int]:
            return work.map(range(start, stop), log=unmapped(call_log)).result()

        assert pipeline(0, 3) == [0, 1, 2]
        assert pipeline(10, 12) == [10, 11]
        assert count_lines(call_log) == 5

    def test_task_called_outside_a_flow_is_a_plain_call(self):
        assert add(1, 2) == 3
        assert double.fn(4) == 8

    def test_a_task_may_call_another_task(self, runner, store):
        @task
        def outer(x: int) -> int:
            return double(x) + 1

        @flow(task_runner=runner())
        def pipeline() -> list[int]:
            return [outer(1), outer.submit(2).result()] + outer.map([3]).result()

        state = pipeline(return_state=True)
        assert state.result() == [3, 5, 7]
        names = sorted(tr["task_name"] for tr in store.list_task_runs(state.run_id))
        assert names == ["double"] * 3 + ["outer"] * 3

    def test_submit_and_map_inside_a_task(self, runner, store):
        # Prefect 3 allows .submit() and .map() inside a task; the runs belong to the flow run.
        @task
        def outer(x: int) -> int:
            return double.submit(x).result() + sum(double.map([x, x]).result())

        @flow(task_runner=runner())
        def pipeline() -> int:
            return outer.submit(1).result()

        state = pipeline(return_state=True)
        assert state.result() == 6
        names = sorted(tr["task_name"] for tr in store.list_task_runs(state.run_id))
        assert names == ["double"] * 3 + ["outer"]

    def test_failing_subflow_raises_into_its_parent(self, runner, store):
        @flow(task_runner=runner())
        def child() -> None:
            raise LookupError("child failed")

        @flow(task_runner=runner())
        def parent() -> tuple[str, str]:
            state = child(return_state=True)
            try:
                child()
            except LookupError as error:
                return state.name, str(error)
            return state.name, "not raised"

        state = parent(return_state=True)
        assert state.is_completed()
        assert state.result() == ("Failed", "child failed")

    def test_tasks_with_star_args_and_star_kwargs(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> tuple[int, int]:
            parts = [add.submit(i, i) for i in range(3)]
            return weighted_total.submit(*parts, weight=2, bonus=1).result(), weighted_total(
                1, 2, 3
            )

        assert pipeline() == ((0 + 2 + 4) * 2 + 1, 6)
