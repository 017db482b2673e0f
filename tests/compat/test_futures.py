"""Futures: waiting, results, and futures resolved wherever they sit in a task's arguments.

Sources: Prefect's tests/test_tasks.py::TestTaskFutures, tests/test_futures.py
(TestResolveFuturesToResults, TestPrefectFutureList, TestUtilityFunctions), tests/test_flows.py
(TestFlowParameterTypes::test_subflow_parameters_*_from_task_future, TestSubflowTaskInputs).
Prefect asserts inside its flows in several of these; so do we (a failed assertion fails the flow,
and the call raises it).
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass

import pydantic
import pytest

from prefect_like import allow_failure, as_completed, flow, task, wait
from prefect_like.states import State

from ._support import async_test


@task
def identity(x):
    return x


# -- TestTaskFutures -------------------------------------------------------------------------------


@async_test
async def test_wait_gets_final_state():
    # Prefect: tests/test_tasks.py::TestTaskFutures::test_wait_gets_final_state
    @task
    async def foo():
        return 1

    @flow
    async def my_flow():
        future = foo.submit()
        future.wait()
        assert future.state.is_completed()
        return True

    assert await my_flow() is True


def test_wait_returns_with_timeout_exceeded_and_state_not_completed():
    # Prefect: tests/test_tasks.py::TestTaskFutures::test_wait_returns_none_with_timeout_exceeded
    release = threading.Event()

    @task
    def foo():
        release.wait(10)
        return 1

    @flow
    def my_flow():
        future = foo.submit()
        future.wait(0.01)
        not_completed = not future.state.is_completed()
        release.set()
        return not_completed, future.result()

    assert my_flow() == (True, 1)


def test_wait_returns_final_state_with_timeout_not_exceeded():
    # Prefect: tests/test_tasks.py::TestTaskFutures::test_wait_returns_final_state_with_timeout_not_exceeded
    @task
    def foo():
        return 1

    @flow
    def my_flow():
        future = foo.submit()
        future.wait(5)
        state = future.state
        assert state is not None
        assert state.is_completed()
        return True

    assert my_flow() is True


def test_result_raises_with_timeout_exceeded():
    # Prefect: tests/test_tasks.py::TestTaskFutures::test_result_raises_with_timeout_exceeded
    release = threading.Event()

    @task
    def foo():
        release.wait(10)
        return 1

    @flow
    def my_flow():
        future = foo.submit()
        try:
            with pytest.raises(TimeoutError):
                future.result(timeout=0.01)
        finally:
            release.set()
        return future.result()

    assert my_flow() == 1


def test_result_returns_data_with_timeout_not_exceeded():
    # Prefect: tests/test_tasks.py::TestTaskFutures::test_result_returns_data_with_timeout_not_exceeded
    @flow
    def my_flow():
        return identity.submit(1).result(timeout=5)

    assert my_flow() == 1


def test_result_raises_exception_from_task():
    # Prefect: tests/test_tasks.py::TestTaskFutures::test_result_raises_exception_from_task
    @task
    def foo():
        raise ValueError("Test")

    @flow
    def my_flow():
        future = foo.submit()
        with pytest.raises(ValueError, match="Test"):
            future.result()
        return True

    assert my_flow() is True


def test_result_returns_exception_from_task_if_asked():
    # Prefect: tests/test_tasks.py::TestTaskFutures::test_result_returns_exception_from_task_if_asked
    @task
    def foo():
        raise ValueError("Test")

    @flow
    def my_flow():
        result = foo.submit().result(raise_on_failure=False)
        assert isinstance(result, ValueError) and str(result) == "Test"
        return True

    assert my_flow() is True


def test_async_tasks_in_sync_flows_return_sync_futures():
    # Prefect: tests/test_tasks.py::TestTaskFutures::test_async_tasks_in_sync_flows_return_sync_futures
    data = {"value": 1}

    @task
    async def get_data():
        return data

    @flow
    def test_flow():
        result = get_data.submit().result()
        assert result == data, "Retrieving the result returns data"
        return result

    assert test_flow() == data


# -- future lists, wait, as_completed ------------------------------------------------------------------


def test_future_list_result_with_raise_on_failure_false():
    # Prefect: tests/test_futures.py::TestPrefectFutureList::test_results_with_raise_on_failure_false
    @task
    def maybe(i):
        if i == 5:
            raise ValueError("oops")
        return i

    @flow
    def my_flow():
        return maybe.map(range(6)).result(raise_on_failure=False)

    results = my_flow()
    assert results[:5] == [0, 1, 2, 3, 4]
    assert isinstance(results[5], ValueError)


def test_future_list_result_with_failure_raises():
    # Prefect: tests/test_futures.py::TestPrefectFutureList::test_results_with_failure
    @task
    def maybe(i):
        if i == 5:
            raise ValueError("oops")
        return i

    @flow
    def my_flow():
        with pytest.raises(ValueError, match="oops"):
            maybe.map(range(6)).result()
        return True

    assert my_flow() is True


def test_future_list_result_preserves_order():
    # Prefect: tests/test_futures.py::TestPrefectFutureList::test_result_preserves_order
    @flow
    def my_flow():
        return identity.map(list(range(20))).result()

    assert my_flow() == list(range(20))


def test_wait_utility():
    # Prefect: tests/test_futures.py::TestUtilityFunctions::test_wait
    @flow
    def my_flow():
        futures = identity.map([1, 2, 3])
        done, not_done = wait(futures)
        assert len(done) == 3
        assert len(not_done) == 0
        return sorted(f.result() for f in done)

    assert my_flow() == [1, 2, 3]


def test_wait_with_timeout_utility():
    # Prefect: tests/test_futures.py::TestUtilityFunctions::test_wait_with_timeout
    release = threading.Event()

    @task
    def slow():
        release.wait(10)
        return "slow"

    @flow
    def my_flow():
        quick = identity.submit(1)
        quick.wait()
        hanging = slow.submit()
        done, not_done = wait([quick, hanging], timeout=0.01)
        release.set()
        return len(done), len(not_done), hanging.result()

    assert my_flow() == (1, 1, "slow")


def test_as_completed_utility():
    # Prefect: tests/test_futures.py::TestUtilityFunctions::test_as_completed
    @flow
    def my_flow():
        futures = identity.map([1, 2, 3, 4])
        return sorted(f.result() for f in as_completed(futures))

    assert my_flow() == [1, 2, 3, 4]


def test_as_completed_yields_correct_order():
    # Prefect: tests/test_futures.py::TestUtilityFunctions::test_as_completed_yields_correct_order
    release = threading.Event()

    @task
    def slow():
        release.wait(10)
        return "slow"

    @flow
    def my_flow():
        hanging = slow.submit()
        quick = identity.submit("quick")
        order = []
        for future in as_completed([hanging, quick]):
            order.append(future.result())
            release.set()
        return order

    assert my_flow() == ["quick", "slow"]


# -- futures inside what a task is given -------------------------------------------------------------


@pytest.mark.parametrize("_type", [list, tuple, set])
def test_futures_in_listlike_arguments_are_resolved(_type):
    # Prefect: tests/test_futures.py::TestResolveFuturesToResults::test_resolve_futures_transforms_future_in_listlike_type
    @flow
    def my_flow():
        return identity(_type(["a", identity.submit("foo"), "b"]))

    assert my_flow() == _type(["a", "foo", "b"])


@pytest.mark.parametrize("_type", [dict, OrderedDict])
def test_futures_in_dictlike_arguments_are_resolved(_type):
    # Prefect: tests/test_futures.py::TestResolveFuturesToResults::test_resolve_futures_transforms_future_in_dictlike_type
    @flow
    def my_flow():
        key_future = identity.submit("foo")
        value_future = identity.submit("bar")
        return identity(_type([("a", 1), (key_future, value_future), ("b", 2)]))

    result = my_flow()
    assert result == _type([("a", 1), ("foo", "bar"), ("b", 2)])
    assert type(result) is _type


@dataclass
class Foo:
    a: int
    foo: str
    b: int = 2


@dataclass
class Nested:
    foo: str
    nested_list: list
    nested_dict: dict


def test_futures_in_a_dataclass_argument_are_resolved():
    # Prefect: tests/test_futures.py::TestResolveFuturesToResults::test_resolve_futures_transforms_future_in_dataclass
    @flow
    def my_flow():
        return identity(Foo(a=1, foo=identity.submit("bar")))

    assert my_flow() == Foo(a=1, foo="bar", b=2)


def test_futures_in_nested_collections_are_resolved():
    # Prefect: tests/test_futures.py::TestResolveFuturesToResults::test_resolves_futures_in_nested_collections
    @flow
    def my_flow():
        future = identity.submit("bar")
        return identity(Nested(foo=future, nested_list=[[future]], nested_dict={"key": [future]}))

    assert my_flow() == Nested(foo="bar", nested_list=[["bar"]], nested_dict={"key": ["bar"]})


def test_futures_in_a_submitted_tasks_nested_arguments_are_resolved():
    # Prefect: tests/test_futures.py::TestResolveFuturesToResults::test_resolves_futures_in_nested_collections,
    # through .submit() (the task waits for the futures and gets their results)
    @flow
    def my_flow():
        future = identity.submit(3)
        return identity.submit({"x": [future, (future,)], "y": Foo(a=future, foo="f")}).result()

    assert my_flow() == {"x": [3, (3,)], "y": Foo(a=3, foo="f", b=2)}


class Model(pydantic.BaseModel):
    data: int
    tags: list = []


def test_futures_in_a_pydantic_model_argument_are_resolved():
    # Prefect: src/prefect/utilities/collections.py visit_collection (pydantic models are visited
    # field by field), as used by tests/test_futures.py::TestResolveFuturesToResults
    @flow
    def my_flow():
        return identity(Model.model_construct(data=identity.submit(1), tags=[identity.submit("t")]))

    result = my_flow()
    assert isinstance(result, Model)
    assert result.data == 1
    assert result.tags == ["t"]


def test_futures_in_arguments_are_not_mutated_in_place():
    # Prefect: tests/test_tasks.py::TestTaskCall::test_task_doesnt_modify_args (the caller's
    # container still holds its future)
    from prefect_like import TaskFuture

    @flow
    def my_flow():
        future = identity.submit(1)
        args = [future]
        identity(args)
        return isinstance(args[0], TaskFuture)

    assert my_flow() is True


def test_a_state_as_argument_is_resolved_to_its_result():
    # Prefect: tests/test_tasks.py::TestTaskInputs::test_task_inputs_populated_with_state_upstream
    # (a State passed to a task gives the task its result)
    @flow
    def my_flow():
        state = identity(5, return_state=True)
        return identity(state)

    assert my_flow() == 5


def test_allow_failure_of_a_state_gives_its_exception():
    # Prefect: tests/test_tasks.py::TestTaskInputs::test_task_inputs_populated_with_state_upstream_wrapped_with_allow_failure
    @task
    def fails():
        raise ValueError("x")

    @flow
    def my_flow():
        state = fails(return_state=True)
        return identity(allow_failure(state))

    result = my_flow()
    assert isinstance(result, ValueError)


# -- futures passed to a subflow -------------------------------------------------------------------


class ParameterTestClass:
    pass


def test_subflow_parameters_from_future_can_be_unserializable_types():
    # Prefect: tests/test_flows.py::TestFlowParameterTypes::test_subflow_parameters_from_future_can_be_unserializable_types
    data = ParameterTestClass()

    @flow
    def my_subflow(x):
        return x

    @flow
    def my_flow():
        return my_subflow(identity(data))

    assert my_flow() is data


class ParameterTestModel(pydantic.BaseModel):
    data: int


def test_subflow_parameters_can_be_pydantic_models_from_task_future():
    # Prefect: tests/test_flows.py::TestFlowParameterTypes::test_subflow_parameters_can_be_pydantic_models_from_task_future
    @flow
    def my_subflow(x):
        return x

    @flow
    def my_flow():
        return my_subflow(identity.submit(ParameterTestModel(data=1)))

    assert my_flow() == ParameterTestModel(data=1)


def test_subflow_with_one_upstream_task_future():
    # Prefect: tests/test_flows.py::TestSubflowTaskInputs::test_subflow_with_one_upstream_task_future
    @task
    def child_task(x):
        return x

    @flow
    def child_flow(x):
        return x

    @flow
    def parent_flow():
        task_future = child_task.submit(1)
        return child_flow(x=task_future)

    assert parent_flow() == 1


def test_subflow_with_one_upstream_task_state():
    # Prefect: tests/test_flows.py::TestSubflowTaskInputs::test_subflow_with_one_upstream_task_state
    @task
    def child_task(x):
        return x

    @flow
    def child_flow(x):
        return x

    @flow
    def parent_flow():
        task_state = child_task(257, return_state=True)
        return child_flow(x=task_state)

    assert parent_flow() == 257


def test_subflow_gets_the_value_of_a_future_with_typed_parameter():
    # Prefect: tests/test_flows.py::TestSubflowTaskInputs::test_subflow_with_upstream_task_passes_validation
    @task
    def child_task(x):
        return x

    @flow
    def child_flow(x: int):
        return x * 2

    @flow
    def parent_flow():
        return child_flow(x=child_task.submit(2))

    assert parent_flow() == 4


def test_subflow_stores_the_resolved_parameter(store):
    # Prefect: tests/test_flows.py::TestSubflowTaskInputs::test_subflow_with_one_upstream_task_future
    # (the subflow run's parameters are the value, not the future)
    @flow(name="child-param")
    def child_flow(x):
        return x

    @flow
    def parent_flow():
        return child_flow(x=identity.submit(7))

    assert parent_flow() == 7
    (run,) = store().list_flow_runs(flow_name="child-param")
    assert run["parameters"] == {"x": 7}


def test_subflow_with_future_of_failed_task_and_allow_failure():
    # Prefect: tests/test_flows.py::TestSubflowTaskInputs::test_subflow_with_one_upstream_task_future_and_allow_failure
    @task
    def child_task():
        raise ValueError()

    @flow
    def child_flow(x):
        return x

    @flow
    def parent_flow():
        future = child_task.submit()
        return child_flow(x=allow_failure(future))

    result = parent_flow()
    assert isinstance(result, ValueError)


def test_flow_return_value_with_futures_inside_dict_resolves_to_states():
    # Prefect: tests/test_futures.py::TestResolveFuturesToStates::test_resolve_futures_transforms_future_in_dictlike_type
    # (what a flow returns has its futures replaced by their states)
    @flow
    def my_flow():
        return {"a": identity.submit(1), "b": 2}

    result = my_flow()
    assert isinstance(result["a"], State)
    assert result["a"].result() == 1
    assert result["b"] == 2
