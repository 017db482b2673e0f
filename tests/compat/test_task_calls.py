"""Calling, submitting and nesting tasks, and tasks called outside any flow, as in Prefect 3.

Sources: Prefect's tests/test_tasks.py (TestTaskCall, TestTaskRun, TestTaskSubmit, TestTaskStates,
TestNestedTasks), tests/test_task_engine.py (TestTaskRunsSync, TestReturnState, TestTaskRetries,
run outside a flow), tests/test_log_prints.py, and docs/v3/concepts/states.mdx.
"""

from __future__ import annotations

import pytest

from prefect_like import State, StateType, allow_failure, flow, quote, task
from prefect_like.context import get_run_context
from prefect_like.states import Cancelled, Completed, Failed

from ._support import async_test, state_names

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


# -- a task called outside a flow -----------------------------------------------------------------


def test_task_called_outside_a_flow_returns_its_value():
    # Prefect: tests/test_task_engine.py::TestTaskRunsSync::test_basic / test_with_params
    @task
    def foo(x, y=2):
        return x + y

    assert foo(1) == 3
    assert foo(1, y=5) == 6


def test_task_outside_a_flow_does_not_copy_its_arguments():
    # Prefect: tests/test_tasks.py::TestTaskCall::test_task_doesnt_modify_args
    @task
    def identity(x):
        return x

    @task
    def appender(x):
        x.append(3)
        return x

    val = [1, 2]
    assert identity(val) is val
    assert val == [1, 2]
    assert appender(val) is val
    assert val == [1, 2, 3]


def test_task_outside_a_flow_with_return_state():
    # Prefect: tests/test_task_engine.py::TestReturnState::test_return_state
    @task
    def foo():
        return 42

    state = foo(return_state=True)
    assert isinstance(state, State)
    assert state.is_completed()
    assert state.result() == 42


def test_task_outside_a_flow_return_state_even_on_failure():
    # Prefect: tests/test_task_engine.py::TestReturnState::test_return_state_even_on_failure
    @task
    def foo():
        raise ValueError("xyz")

    state = foo(return_state=True)
    assert isinstance(state, State)
    assert state.is_failed()
    with pytest.raises(ValueError, match="xyz"):
        state.result()


def test_task_outside_a_flow_raises_its_error():
    # Prefect: tests/test_task_engine.py::TestTaskRunsSync::test_task_ends_in_failed
    @task
    def foo():
        raise ValueError("xyz")

    with pytest.raises(ValueError, match="xyz"):
        foo()


def test_task_outside_a_flow_is_tracked_completed(store):
    # Prefect: tests/test_task_engine.py::TestTaskRunsSync::test_task_ends_in_completed
    @task
    def foo():
        return get_run_context().run_id

    task_run_id = foo()
    run = store().get_task_run(task_run_id)
    assert run["state"] == "COMPLETED"
    assert run["flow_run_id"] is None


def test_task_outside_a_flow_is_tracked_failed(store):
    # Prefect: tests/test_task_engine.py::TestTaskRunsSync::test_task_ends_in_failed
    ids = []

    @task
    def foo():
        ids.append(get_run_context().run_id)
        raise ValueError("xyz")

    with pytest.raises(ValueError, match="xyz"):
        foo()
    assert store().get_task_run(ids[0])["state"] == "FAILED"


def test_task_outside_a_flow_state_history(store):
    # Prefect: tests/test_task_engine.py::TestTaskRunsSync::test_task_run_states
    @task
    def foo():
        return get_run_context().run_id

    task_run_id = foo()
    assert state_names(store(), task_run_id) == ["Pending", "Running", "Completed"]


def test_task_outside_a_flow_retries(store):
    # Prefect: tests/test_task_engine.py::TestTaskRunsSync::test_task_ends_in_failed_after_retrying
    ids = []

    @task(retries=1)
    def foo():
        if not ids:
            ids.append(get_run_context().run_id)
            raise ValueError("xyz")
        return get_run_context().run_id

    result = foo()
    assert result == ids[0]
    assert store().get_task_run(result)["state"] == "COMPLETED"


def test_task_outside_a_flow_retries_with_return_state(store):
    # Prefect: tests/test_task_engine.py::TestTaskRetries::test_sync_task_respects_retry_delay_seconds
    # (the task is called outside a flow with return_state=True; delays are 0 here)
    calls = []

    @task(retries=3, retry_delay_seconds=0)
    def flaky_function():
        calls.append(1)
        raise ValueError()

    task_run_state = flaky_function(return_state=True)
    assert task_run_state.is_failed()
    assert len(calls) == 4
    names = state_names(store(), task_run_state.run_id)
    assert names[0] == "Pending" and names[-1] == "Failed"
    assert names.count("Retrying") == 3


def test_submit_outside_a_flow_raises():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_raises_outside_of_flow
    @task
    def foo(x):
        return x

    with pytest.raises(RuntimeError):
        foo.submit(1)


def test_map_outside_a_flow_raises():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_map_raises_outside_of_flow_when_not_deferred
    @task
    def test_task(x):
        return x

    with pytest.raises(RuntimeError):
        test_task.map([1, 2, 3])


# -- nested tasks -------------------------------------------------------------------------------------


def test_nested_task():
    # Prefect: tests/test_tasks.py::TestNestedTasks::test_nested_task
    @task
    def inner_task():
        return 42

    @task
    def outer_task():
        return inner_task()

    @flow
    def my_flow():
        return outer_task()

    assert my_flow() == 42


@async_test
async def test_nested_async_task():
    # Prefect: tests/test_tasks.py::TestNestedTasks::test_nested_async_task
    @task
    async def inner_task():
        return 42

    @task
    async def outer_task():
        return await inner_task()

    @flow
    async def my_flow():
        return await outer_task()

    assert await my_flow() == 42


def test_nested_submitted_task():
    # Prefect: tests/test_tasks.py::TestNestedTasks::test_nested_submitted_task
    @task
    def inner_task():
        return 42

    @task
    def outer_task():
        future = inner_task.submit()
        return future.result()

    @flow
    def my_flow():
        return outer_task()

    assert my_flow() == 42


@async_test
async def test_nested_submitted_async_task():
    # Prefect: tests/test_tasks.py::TestNestedTasks::test_nested_submitted_async_task
    @task
    async def inner_task():
        return 42

    @task
    async def outer_task():
        future = inner_task.submit()
        return future.result()

    @flow
    async def my_flow():
        return await outer_task()

    assert await my_flow() == 42


def test_nested_submitted_task_that_also_is_submitted():
    # Prefect: tests/test_tasks.py::TestNestedTasks::test_nested_submitted_task_that_also_is_submitted
    @task
    def inner_task():
        return 42

    @task
    def outer_task():
        future = inner_task.submit()
        return future.result()

    @flow
    def my_flow():
        future = outer_task.submit()
        return future.result()

    assert my_flow() == 42


def test_nested_map():
    # Prefect: tests/test_tasks.py::TestNestedTasks::test_nested_map
    @task
    def inner_task(x):
        return x * 2

    @task
    def outer_task(x):
        futures = inner_task.map(x)
        return sum(future.result() for future in futures)

    @flow
    def my_flow():
        return outer_task([1, 2, 3])

    assert my_flow() == 12


@async_test
async def test_nested_async_map():
    # Prefect: tests/test_tasks.py::TestNestedTasks::test_nested_async_map
    @task
    async def inner_task(x):
        return x * 2

    @task
    async def outer_task(x):
        futures = inner_task.map(x)
        return sum([future.result() for future in futures])

    @flow
    async def my_flow():
        return await outer_task([1, 2, 3])

    assert await my_flow() == 12


def test_nested_wait_for():
    # Prefect: tests/test_tasks.py::TestNestedTasks::test_nested_wait_for
    @task
    def inner_task(x):
        return x * 2

    @task
    def outer_task(x, y):
        future = inner_task.submit(x)
        return future.result() + y

    @flow
    def my_flow():
        f1 = inner_task.submit(2)
        f2 = outer_task.submit(3, 4, wait_for=[f1])
        return f2.result()

    assert my_flow() == 10


def test_nested_task_with_retries():
    # Prefect: tests/test_tasks.py::TestNestedTasks::test_nested_task_with_retries
    count = 0

    @task(retries=1)
    def inner_task():
        nonlocal count
        count += 1
        raise Exception("oops")

    @task
    def outer_task():
        state = inner_task(return_state=True)
        return state.name

    @flow
    def my_flow():
        return outer_task()

    assert my_flow() == "Failed"
    assert count == 2


def test_nested_task_with_retries_on_inner_and_outer_task():
    # Prefect: tests/test_tasks.py::TestNestedTasks::test_nested_task_with_retries_on_inner_and_outer_task
    count = 0

    @task(retries=1)
    def inner_task():
        nonlocal count
        count += 1
        raise Exception("oops")

    @task(retries=1)
    def outer_task():
        inner_task()

    @flow
    def my_flow():
        state = outer_task(return_state=True)
        return state.name

    assert my_flow() == "Failed"
    assert count == 4


@async_test
async def test_nested_async_task_without_parent_flow():
    # Prefect: tests/test_tasks.py::TestNestedTasks::test_nested_async_task_without_parent_flow
    @task
    async def inner_task():
        return 42

    @task
    async def outer_task():
        return await inner_task()

    assert await outer_task() == 42


def test_nested_submitted_runs_belong_to_the_flow_run(store):
    # Prefect: tests/test_task_engine.py::TestTaskRunsSync::test_flow_run_id_is_set (the nested
    # runs are task runs of the same flow run)
    @task
    def inner_task(x):
        return get_run_context().flow_run_id

    @task
    def outer_task():
        return [f.result() for f in inner_task.map([1, 2])]

    @flow(name="nested-owner")
    def my_flow():
        return outer_task()

    state = my_flow(return_state=True)
    assert state.result() == [state.run_id, state.run_id]
    assert store().count_task_runs(state.run_id) == 3


# -- log_prints ------------------------------------------------------------------------------------


def _messages(store, flow_run_id):
    return [line["message"] for line in store.logs(flow_run_id=flow_run_id)]


def test_flow_log_prints_captures_prints_of_its_tasks(store):
    # Prefect: tests/test_log_prints.py::test_task_log_prints_inherits_parent_value (parent True)
    @task
    def test_task():
        print("hello world!")

    @flow(log_prints=True)
    def parent_flow():
        test_task()

    state = parent_flow(return_state=True)
    assert any("hello world!" in m for m in _messages(store(), state.run_id))


def test_flow_without_log_prints_does_not_capture_task_prints(store):
    # Prefect: tests/test_log_prints.py::test_task_log_prints_inherits_parent_value (parent False)
    @task
    def test_task():
        print("hello world!")

    @flow(log_prints=False)
    def parent_flow():
        test_task()

    state = parent_flow(return_state=True)
    assert not any("hello world!" in m for m in _messages(store(), state.run_id))


def test_task_can_opt_out_of_log_prints(store):
    # Prefect: tests/test_log_prints.py::test_task_can_opt_out_of_log_prints
    @task(log_prints=False)
    def test_task():
        print("test print from the quiet task")

    @task
    def loud_task():
        print("test print from the loud task")

    @flow(log_prints=True)
    def parent_flow():
        test_task()
        loud_task.submit().wait()

    state = parent_flow(return_state=True)
    messages = _messages(store(), state.run_id)
    assert not any("quiet task" in m for m in messages)
    assert any("loud task" in m for m in messages)


@pytest.mark.parametrize("parent_value", [False, None])
def test_task_can_opt_in_to_log_prints(store, parent_value):
    # Prefect: tests/test_log_prints.py::test_task_can_opt_in_to_log_prints
    @task(log_prints=True)
    def test_task():
        name = get_run_context().name
        print(f"test print from {name}")
        return name

    @flow(log_prints=parent_value)
    def parent_flow():
        return test_task()

    state = parent_flow(return_state=True)
    assert any(f"test print from {state.result()}" in m for m in _messages(store(), state.run_id))


def test_log_prints_captures_prints_of_submitted_tasks(store):
    # Prefect: tests/test_log_prints.py::test_task_log_prints_inherits_parent_value, with the task
    # submitted to the default runner (a thread pool) as docs/v3/how-to-guides/workflows/add-logging.mdx shows
    @task
    def test_task(i):
        print(f"submitted print {i}")

    @flow(log_prints=True)
    def parent_flow():
        for f in test_task.map([0, 1, 2]):
            f.wait()

    state = parent_flow(return_state=True)
    messages = _messages(store(), state.run_id)
    for i in range(3):
        assert any(f"submitted print {i}" in m for m in messages)


def test_subflow_inherits_log_prints(store):
    # Prefect: tests/test_log_prints.py::test_subflow_log_prints_inherits_parent_value (parent True)
    @flow
    def test_subflow():
        print("hello from the subflow")

    @flow(log_prints=True)
    def parent_flow():
        return test_subflow(return_state=True).run_id

    state = parent_flow(return_state=True)
    s = store()
    child_id = state.result()
    messages = _messages(s, state.run_id) + _messages(s, child_id)
    assert any("hello from the subflow" in m for m in messages)
