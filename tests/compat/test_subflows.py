"""Subflows: what calling a flow inside a flow gives and records, as in Prefect 3.

Sources: Prefect's tests/test_flows.py (TestSubflowCalls, TestSubflowTaskInputs).
"""

import pytest

from prefect_like import State, flow, task
from prefect_like.errors import ParameterTypeError

from ._support import async_test


def test_subflow_call_with_no_tasks():
    # Prefect: tests/test_flows.py::TestSubflowCalls::test_subflow_call_with_no_tasks
    @flow
    def child(x, y, z=(1, 2)):
        return x, y, z

    @flow
    def parent(x, y=2):
        return child(x, y)

    assert parent(1, 2) == (1, 2, (1, 2))


def test_subflow_call_with_returned_task():
    # Prefect: tests/test_flows.py::TestSubflowCalls::test_subflow_call_with_returned_task
    @task
    def compute(x, y, z):
        return x + y + z

    @flow
    def child(x, y, z):
        return compute(x, y, z)

    @flow
    def parent(x, y=2):
        return child(x, y, 3)

    assert parent(1) == 6


def test_recursive_sync_subflow():
    # Prefect: tests/test_flows.py::TestSubflowCalls::test_recursive_sync_subflow
    @task
    def test_task():
        return 1

    @flow
    def recurse(n):
        if n <= 0:
            return test_task()
        return recurse(n - 1)

    assert recurse(3) == 1


def test_subflow_with_invalid_parameters_is_failed(store):
    # Prefect: tests/test_flows.py::TestSubflowCalls::test_subflow_with_invalid_parameters_is_failed
    @flow
    def child(x: int):
        return x

    @flow
    def parent(x):
        return child(x, return_state=True)

    parent_state = parent("foo", return_state=True)
    assert parent_state.is_failed()
    # the parent's result raises the failed subflow state's exception
    with pytest.raises(ParameterTypeError):
        parent_state.result()
    child_state = parent_state.result(raise_on_failure=False)
    assert isinstance(child_state, State)
    assert store().get_flow_run(child_state.run_id)["state"] == "FAILED"


def test_subflow_with_invalid_parameters_fails_parent():
    # Prefect: tests/test_flows.py::TestSubflowCalls::test_subflow_with_invalid_parameters_fails_parent
    child_state = None

    @flow
    def child(x: int):
        return x

    @flow
    def parent():
        nonlocal child_state
        child_state = child("foo", return_state=True)
        return child_state, child(1, return_state=True)

    parent_state = parent(return_state=True)
    assert parent_state.is_failed()
    assert "1/2 states failed." in parent_state.message
    with pytest.raises(ParameterTypeError):
        child_state.result()


def test_subflow_with_invalid_parameters_is_not_failed_without_validation():
    # Prefect: tests/test_flows.py::TestSubflowCalls::test_subflow_with_invalid_parameters_is_not_failed_without_validation
    @flow(validate_parameters=False)
    def child(x: int):
        return x

    @flow
    def parent(x):
        return child(x)

    assert parent("foo") == "foo"


def test_subflow_run_records_its_parent(store):
    # Prefect: tests/test_flows.py::TestSubflowCalls::test_subflow_relationship_tracking
    @flow(name="child-rel")
    def child():
        return 1

    @flow(name="parent-rel")
    def parent():
        return child(return_state=True)

    parent_state = parent(return_state=True)
    s = store()
    (child_run,) = s.list_flow_runs(flow_name="child-rel")
    assert child_run["parent_flow_run_id"] == parent_state.run_id


@async_test
async def test_async_flow_with_async_subflow_and_async_task():
    # Prefect: tests/test_flows.py::TestSubflowCalls::test_async_flow_with_async_subflow_and_async_task
    @task
    async def compute_async(x, y, z):
        return x + y + z

    @flow
    async def child(x, y, z):
        return await compute_async(x, y, z)

    @flow
    async def parent(x, y=2, z=3):
        return await child(x, y, z)

    assert await parent(1, 2) == 6


@async_test
async def test_async_flow_with_async_subflow_and_sync_task():
    # Prefect: tests/test_flows.py::TestSubflowCalls::test_async_flow_with_async_subflow_and_sync_task
    @task
    def compute(x, y, z):
        return x + y + z

    @flow
    async def child(x, y, z):
        return compute(x, y, z)

    @flow
    async def parent(x, y=2, z=3):
        return await child(x, y, z)

    assert await parent(1, 2) == 6


@async_test
async def test_async_flow_with_sync_subflow_and_sync_task():
    # Prefect: tests/test_flows.py::TestSubflowCalls::test_async_flow_with_sync_subflow_and_sync_task
    @task
    def compute(x, y, z):
        return x + y + z

    @flow
    def child(x, y, z):
        return compute(x, y, z)

    @flow
    async def parent(x, y=2, z=3):
        return child(x, y, z)

    assert await parent(1, 2) == 6


@async_test
async def test_async_flow_returning_a_failed_task_state_fails():
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_state_reflects_returned_task_run_state,
    # with an async flow and task
    @task
    async def fail():
        raise ValueError("Test")

    @flow
    async def foo():
        return await fail(return_state=True)

    flow_state = await foo(return_state=True)
    assert flow_state.is_failed()
    task_run_state = flow_state.result(raise_on_failure=False)
    assert isinstance(task_run_state, State)
    with pytest.raises(ValueError, match="Test"):
        task_run_state.result()
