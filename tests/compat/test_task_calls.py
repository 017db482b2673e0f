"""Calling and submitting tasks, return_state, and tasks that return States, as in Prefect 3.

Sources: Prefect's tests/test_tasks.py (TestTaskCall, TestTaskRun, TestTaskSubmit, TestTaskStates,
TestNestedTasks), tests/test_task_engine.py (TestTaskRunsSync, TestReturnState, TestTaskRetries,
run outside a flow), tests/test_log_prints.py, and docs/v3/concepts/states.mdx.
"""

from __future__ import annotations

import pytest

from prefect_like import State, StateType, allow_failure, flow, quote, task
from prefect_like.states import Cancelled, Completed, Failed

from ._support import async_test

# -- __call__ inside a flow ------------------------------------------------------------------------


def test_sync_task_called_inside_sync_flow():
    # Prefect: tests/test_tasks.py::TestTaskCall::test_sync_task_called_inside_sync_flow
    @task
    def foo(x):
        return x

    @flow
    def bar():
        return foo(1)

    assert bar() == 1


@async_test
async def test_async_task_called_inside_async_flow():
    # Prefect: tests/test_tasks.py::TestTaskCall::test_async_task_called_inside_async_flow
    @task
    async def foo(x):
        return x

    @flow
    async def bar():
        return await foo(1)

    assert await bar() == 1


@async_test
async def test_sync_task_called_inside_async_flow():
    # Prefect: tests/test_tasks.py::TestTaskCall::test_sync_task_called_inside_async_flow
    @task
    def foo(x):
        return x

    @flow
    async def bar():
        return foo(1)

    assert await bar() == 1


def test_task_called_with_task_dependency():
    # Prefect: tests/test_tasks.py::TestTaskCall::test_task_called_with_task_dependency
    @task
    def foo(x):
        return x

    @task
    def bar(y):
        return y + 1

    @flow
    def test_flow():
        return bar(foo(1))

    assert test_flow() == 2


def test_task_with_variadic_args():
    # Prefect: tests/test_tasks.py::TestTaskCall::test_task_with_variadic_args
    @task
    def foo(*foo, bar):
        return foo, bar

    @flow
    def test_flow():
        return foo(1, 2, 3, bar=4)

    assert test_flow() == ((1, 2, 3), 4)


def test_task_with_variadic_keyword_args():
    # Prefect: tests/test_tasks.py::TestTaskCall::test_task_with_variadic_keyword_args
    @task
    def foo(foo, bar, **foobar):
        return foo, bar, foobar

    @flow
    def test_flow():
        return foo(1, 2, x=3, y=4, z=5)

    assert test_flow() == (1, 2, dict(x=3, y=4, z=5))


def test_task_failure_raises_in_flow():
    # Prefect: tests/test_tasks.py::TestTaskCall::test_task_failure_raises_in_flow
    @task
    def foo():
        raise ValueError("Test")

    @flow
    def bar():
        foo()
        return "bar"

    state = bar(return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match="Test"):
        state.result()


# -- return_state on __call__ and submit -----------------------------------------------------------


def test_sync_task_run_inside_sync_flow_return_state():
    # Prefect: tests/test_tasks.py::TestTaskRun::test_sync_task_run_inside_sync_flow
    @task
    def foo(x):
        return x

    @flow
    def bar():
        return foo(1, return_state=True)

    task_state = bar()
    assert isinstance(task_state, State)
    assert task_state.result() == 1


@async_test
async def test_async_task_run_inside_async_flow_return_state():
    # Prefect: tests/test_tasks.py::TestTaskRun::test_async_task_run_inside_async_flow
    @task
    async def foo(x):
        return x

    @flow
    async def bar():
        return await foo(1, return_state=True)

    task_state = await bar()
    assert isinstance(task_state, State)
    assert task_state.result() == 1


@async_test
async def test_sync_task_run_inside_async_flow_return_state():
    # Prefect: tests/test_tasks.py::TestTaskRun::test_sync_task_run_inside_async_flow
    @task
    def foo(x):
        return x

    @flow
    async def bar():
        return foo(1, return_state=True)

    task_state = await bar()
    assert isinstance(task_state, State)
    assert task_state.result() == 1


def test_return_state_of_a_failing_call_does_not_raise():
    # Prefect: docs/snippets/final-flow-state.mdx (add_one("1", return_state=True) is failed and
    # the flow returns successfully)
    @task
    def add_one(x):
        return x + 1

    @flow
    def my_flow():
        state = add_one("1", return_state=True)
        assert state.is_failed()
        return state.is_failed()

    assert my_flow() is True


def test_sync_task_submit_with_return_state_true():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_sync_task_with_return_state_true
    seen = []

    @task
    def foo(x):
        return x

    @flow
    def bar():
        state = foo.submit(1, return_state=True)
        seen.append(isinstance(state, State))
        return state

    task_state = bar()
    assert seen == [True]
    assert task_state.result() == 1


@async_test
async def test_async_task_submit_with_return_state_true():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_async_task_with_return_state_true
    seen = []

    @task
    async def foo(x):
        return x

    @flow
    async def bar():
        state = foo.submit(1, return_state=True)
        seen.append(isinstance(state, State))
        return state

    task_state = await bar()
    assert seen == [True]
    assert task_state.result() == 1


def test_submit_return_state_is_final_and_failed_for_a_failing_task():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_sync_task_with_return_state_true
    # (submit(return_state=True) waits for the run: its state is final)
    @task
    def foo():
        raise ValueError("no")

    @flow
    def bar():
        state = foo.submit(return_state=True)
        return state.is_final(), state.is_failed(), type(state.result(raise_on_failure=False))

    assert bar() == (True, True, ValueError)


def test_submit_returns_a_future_and_result_gives_the_value():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_sync_task_submitted_inside_sync_flow
    from prefect_like import TaskFuture

    @task
    def foo(x):
        return x

    @flow
    def bar():
        future = foo.submit(1)
        return isinstance(future, TaskFuture), future.result()

    assert bar() == (True, 1)


@async_test
async def test_async_task_submitted_inside_sync_flow():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_async_task_submitted_inside_sync_flow
    @task
    async def foo(x):
        return x

    @flow
    def bar():
        return foo.submit(1)

    task_state = bar()
    assert task_state.result() == 1


def test_downstream_runs_if_upstream_succeeds():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_downstream_runs_if_upstream_succeeds
    @task
    def foo(x):
        return x

    @task
    def bar(y):
        return y + 1

    @flow
    def test_flow():
        f = foo.submit(1)
        b = bar.submit(f)
        return b.result()

    assert test_flow() == 2


def test_downstream_receives_exception_if_upstream_fails_and_allow_failure():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_downstream_receives_exception_if_upstream_fails_and_allow_failure
    @task
    def fails():
        raise ValueError("Fail task!")

    @task
    def bar(y):
        return y

    @flow
    def test_flow():
        f = fails.submit()
        b = bar.submit(allow_failure(f))
        return b.result()

    result = test_flow()
    assert isinstance(result, ValueError)
    assert "Fail task!" in str(result)


def test_downstream_receives_exception_in_collection_if_upstream_fails_and_allow_failure():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_downstream_receives_exception_in_collection_if_upstream_fails_and_allow_failure
    @task
    def fails():
        raise ValueError("Fail task!")

    @task
    def bar(y):
        return y

    @flow
    def test_flow():
        f = fails.submit()
        b = bar.submit(allow_failure([f, 1, 2]))
        return b.result()

    result = test_flow()
    assert isinstance(result, list)
    assert isinstance(result[0], ValueError)
    assert result[1:] == [1, 2]
    assert "Fail task!" in str(result)


def test_wait_for_downstream_does_not_run_if_upstream_fails():
    # Prefect: tests/test_tasks.py::TestTaskWaitFor::test_downstream_does_not_run_if_upstream_fails
    @task
    def fails():
        raise ValueError("Fail task!")

    @task
    def bar():
        return 1

    @flow
    def test_flow():
        f = fails.submit()
        return bar.submit(wait_for=[f])

    flow_state = test_flow(return_state=True)
    task_state = flow_state.result(raise_on_failure=False)
    assert task_state.is_pending()
    assert task_state.name == "NotReady"


def test_wait_for_runs_if_upstream_fails_with_allow_failure():
    # Prefect: tests/test_tasks.py::TestTaskWaitFor::test_downstream_runs_if_upstream_fails_with_allow_failure_annotation
    @task
    def fails():
        raise ValueError("Fail task!")

    @task
    def bar():
        return 1

    @flow
    def test_flow():
        f = fails.submit()
        b = bar.submit(wait_for=[allow_failure(f)])
        return b.result()

    assert test_flow() == 1


# -- a task returning a State ----------------------------------------------------------------------


@pytest.mark.parametrize("error", [ValueError("Hello"), None])
def test_task_final_state_reflects_exceptions_during_run(error):
    # Prefect: tests/test_tasks.py::TestTaskStates::test_final_state_reflects_exceptions_during_run
    @task
    def bar():
        if error:
            raise error

    @flow
    def foo():
        return quote(bar(return_state=True))

    task_state = foo().unquote()
    assert task_state.is_failed() if error else task_state.is_completed()
    found = task_state.result(raise_on_failure=False)
    if error is None:
        assert found is None
    else:
        assert type(found) is ValueError and str(found) == "Hello"


def test_final_task_state_respects_returned_state():
    # Prefect: tests/test_tasks.py::TestTaskStates::test_final_task_state_respects_returned_state
    @task
    def bar():
        return State(type=StateType.FAILED, message="Test returned state", data=True)

    @flow
    def foo():
        return quote(bar(return_state=True))

    task_state = foo().unquote()
    assert task_state.is_failed()
    assert task_state.result(raise_on_failure=False) is True
    assert task_state.message == "Test returned state"


def test_task_returning_failed_state_with_message():
    # Prefect: docs/v3/concepts/states.mdx "Task return values": "if a task explicitly returns a
    # Prefect Failed state, the task will be marked Failed"
    @task
    def toggle_task(fail: bool):
        if fail:
            return Failed(message="I was instructed to fail.")
        return Completed(message="I was instructed to succeed.")

    @flow
    def example():
        return toggle_task(fail=True, return_state=True), toggle_task(fail=False, return_state=True)

    flow_state = example(return_state=True)
    state_one, state_two = flow_state.result(raise_on_failure=False)
    assert state_one.is_failed()
    assert state_one.message == "I was instructed to fail."
    assert state_two.is_completed()
    assert state_two.message == "I was instructed to succeed."
    # "similarly, the flow run will fail because we return a Failed state"
    assert flow_state.is_failed()
    assert flow_state.message == "1/2 states failed."


def test_calling_a_task_that_returns_failed_raises():
    # Prefect: docs/v3/concepts/states.mdx "Task return values" (a call gives the result of the
    # task's final state; a Failed state's result raises)
    @task
    def fail_by_hand():
        return Failed(message="I was instructed to fail.")

    @flow
    def example():
        fail_by_hand()

    state = example(return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="I was instructed to fail."):
        state.result()


def test_task_returning_completed_state_gives_its_data():
    # Prefect: tests/test_states.py::TestReturnValueToStateSync::test_returns_single_state_unaltered
    # (a manual state returned by a task is its final state, its data the task's result)
    @task
    def foo():
        return Completed(data="hello!", message="by hand")

    @flow
    def bar():
        state = foo(return_state=True)
        return state.message, state.result(), foo()

    assert bar() == ("by hand", "hello!", "hello!")


def test_task_returning_cancelled_state_is_cancelled():
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_state_with_cancelled_tasks_has_cancelled_state
    @task
    def cancel():
        return Cancelled()

    @flow
    def bar():
        return quote(cancel(return_state=True))

    state = bar().unquote()
    assert state.is_cancelled()
    assert state.type == StateType.CANCELLED


def test_task_returning_named_completed_state_keeps_its_name(store):
    # Prefect: docs/v3/concepts/flows.mdx "Custom named states" (Completed(name="Skipped")),
    # applied to a task run as docs/v3/concepts/states.mdx "Task return values" allows
    @task
    def maybe():
        return Completed(message="No work to do", name="Skipped")

    @flow
    def bar():
        return [maybe(return_state=True)]

    flow_state = bar(return_state=True)
    (state,) = flow_state.result()
    assert state.name == "Skipped"
    assert state.is_completed()
    assert flow_state.message == "All states completed."
    assert store().get_task_run(state.run_id)["state_name"] == "Skipped"


def test_task_returning_failed_state_is_stored_failed(store):
    # Prefect: tests/test_tasks.py::TestTaskStates::test_final_task_state_respects_returned_state
    # (the state the API records is the returned one)
    @task
    def bar():
        return Failed(message="Test returned state")

    @flow
    def foo():
        return quote(bar(return_state=True))

    state = foo().unquote()
    stored = store().get_task_run(state.run_id)
    assert stored["state"] == "FAILED"
    assert stored["message"] == "Test returned state"
