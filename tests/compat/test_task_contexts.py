"""Tasks called outside any flow, tasks nested in tasks, and log_prints, as in Prefect 3.

Sources: Prefect's tests/test_tasks.py (TestNestedTasks), tests/test_task_engine.py
(TestTaskRunsSync, run outside a flow) and tests/test_log_prints.py.
"""

from __future__ import annotations

import builtins
import sys

import pytest

from prefect_like import State, flow, task
from prefect_like.context import get_run_context

from ._support import async_test, state_names

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


def _print_of_another_library(seen: list[str], wraps_ours: bool):
    """What Ray's progress bars put in place when Ray starts: a print that notes each call and
    prints by itself (or, ``wraps_ours``, calls the print it found: ours)."""
    found = builtins.print

    def their_print(*args, sep=" ", end="\n", file=None, flush=False):
        seen.append(sep.join(map(str, args)))
        if wraps_ours:
            found(*args, sep=sep, end=end, file=file, flush=flush)
        else:
            (file or sys.stdout).write(sep.join(map(str, args)) + end)

    return their_print


@pytest.mark.parametrize("wraps_ours", [False, True])
def test_log_prints_still_captures_after_another_library_replaced_print(store, monkeypatch, capsys, wraps_ours):
    # Not from Prefect: after a Ray flow in the same process (a notebook), Ray's print had
    # replaced ours, and log_prints stopped capturing anything.
    @task
    def test_task():
        print("hello from the task")

    @flow(log_prints=True)
    def parent_flow():
        test_task()

    parent_flow()  # ours is in place
    seen: list[str] = []
    monkeypatch.setattr(builtins, "print", _print_of_another_library(seen, wraps_ours))
    state = parent_flow(return_state=True)
    assert any("hello from the task" in m for m in _messages(store(), state.run_id))
    assert "hello from the task" not in seen
    print("outside any run")  # handed to their print, and printed once
    assert seen == ["outside any run"]
    assert capsys.readouterr().out.count("outside any run") == 1


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
