"""State change hooks, as Prefect's own tests pin them down.

Sources: Prefect's tests/test_tasks.py (TestTaskHooksWithKwargs, TestTaskHooksOnCompletion,
TestTaskHooksOnFailure, TestTaskHooksOnRunning) and tests/test_flows.py (TestFlowHooksContext,
TestFlowHooksOnCompletion, TestFlowHooksOnFailure, TestFlowHooksOnCancellation,
TestFlowHooksOnCrashed, TestFlowHooksOnRunning). Where Prefect reads its API, the store is read.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from functools import partial
from unittest.mock import MagicMock, call

import pytest

from prefect_like import State, StateType, flow, get_run_logger, task
from prefect_like.context import FlowRunContext, TaskRunContext, get_run_context
from prefect_like.exceptions import TerminationSignal
from prefect_like.states import Cancelled, Crashed
from prefect_like.testing.helpers import PYTHON, REPO_ROOT


def create_hook(mock_obj):
    def my_hook(task_or_flow, run, state):
        mock_obj()

    return my_hook


def create_async_hook(mock_obj):
    async def my_hook(task_or_flow, run, state):
        mock_obj()

    return my_hook


SYNC_AND_ASYNC = [
    (create_hook, create_hook),
    (create_hook, create_async_hook),
    (create_async_hook, create_hook),
    (create_async_hook, create_async_hook),
]


# -- validation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hook_name", ["on_completion", "on_failure", "on_running"])
def test_task_noniterable_hook_raises(hook_name):
    # Prefect: tests/test_tasks.py::TestTaskHooksOnCompletion::test_noniterable_hook_raises (and OnFailure, OnRunning)
    def completion_hook():
        pass

    with pytest.raises(TypeError, match=f"Expected iterable for '{hook_name}'; got function instead"):

        @task(**{hook_name: completion_hook})
        def my_task():
            pass


@pytest.mark.parametrize("hook_name", ["on_completion", "on_failure", "on_running"])
def test_task_noncallable_hook_raises(hook_name):
    # Prefect: tests/test_tasks.py::TestTaskHooksOnCompletion::test_noncallable_hook_raises
    with pytest.raises(TypeError, match=f"Expected callables in '{hook_name}'; got str instead"):

        @task(**{hook_name: ["test"]})
        def my_task():
            pass


@pytest.mark.parametrize("hook_name", ["on_completion", "on_failure", "on_cancellation", "on_crashed", "on_running"])
def test_flow_callable_noncallable_hook_raises(hook_name):
    # Prefect: tests/test_flows.py::TestFlowHooksOnCompletion::test_callable_noncallable_hook_raises (and the others)
    def a_hook(flow, flow_run, state):
        pass

    with pytest.raises(TypeError, match=f"Expected callables in '{hook_name}'; got str instead"):

        @flow(**{hook_name: [a_hook, "test"]})
        def my_flow():
            pass


# -- task hooks ------------------------------------------------------------------------------------------------


def test_task_hook_with_extra_default_arg():
    # Prefect: tests/test_tasks.py::TestTaskHooksWithKwargs::test_hook_with_extra_default_arg
    data = {}

    def hook(task, task_run, state, foo=42):
        data.update(name=hook.__name__, state=state, foo=foo)

    @task(on_completion=[hook])
    def foo_task():
        pass

    @flow
    def foo_flow():
        return foo_task(return_state=True)

    state = foo_flow()
    assert data == dict(name="hook", state=state, foo=42)


def test_task_hook_with_bound_kwargs(caplog):
    # Prefect: tests/test_tasks.py::TestTaskHooksWithKwargs::test_hook_with_bound_kwargs
    data = {}

    def hook(task, task_run, state, **kwargs):
        data.update(name=hook.__name__, state=state, kwargs=kwargs)

    @task(on_completion=[partial(hook, foo=42)])
    def foo_task():
        pass

    @flow
    def foo_flow():
        return foo_task(return_state=True)

    with caplog.at_level("INFO"):
        state = foo_flow()
    assert data == dict(name="hook", state=state, kwargs={"foo": 42})
    assert "Hook 'hook' finished running successfully" in caplog.text


def test_decorated_on_completion_hooks_run_on_completed():
    # Prefect: tests/test_tasks.py::TestTaskHooksOnCompletion::test_decorated_on_completion_hooks_run_on_completed
    my_mock = MagicMock()

    @task
    def my_task():
        pass

    @my_task.on_completion
    def completed1(task, task_run, state):
        my_mock("completed1")

    @my_task.on_completion
    def completed2(task, task_run, state):
        my_mock("completed2")

    @flow
    def my_flow():
        return my_task(return_state=True)

    state = my_flow()
    assert state.type == StateType.COMPLETED
    assert my_mock.call_args_list == [call("completed1"), call("completed2")]


def test_on_completion_hooks_dont_run_on_failure():
    # Prefect: tests/test_tasks.py::TestTaskHooksOnCompletion::test_on_completion_hooks_dont_run_on_failure
    my_mock = MagicMock()

    def completed(task, task_run, state):
        my_mock("completed")

    @task(on_completion=[completed])
    def my_task():
        raise Exception("oops")

    @flow
    def my_flow():
        future = my_task.submit()
        future.wait()
        return future.state

    with pytest.raises(Exception, match="oops"):
        my_flow()
    assert my_mock.call_args_list == []


def test_other_completion_hooks_run_if_a_hook_fails(store):
    # Prefect: tests/test_tasks.py::TestTaskHooksOnCompletion::test_other_completion_hooks_run_if_a_hook_fails
    my_mock = MagicMock()

    def completed1(task, task_run, state):
        my_mock("completed1")

    def exception_hook(task, task_run, state):
        raise Exception("oops")

    def completed2(task, task_run, state):
        my_mock("completed2")

    @task(on_completion=[completed1, exception_hook, completed2])
    def my_task():
        pass

    @flow
    def my_flow():
        return my_task(return_state=True)

    state = my_flow()
    assert state.type == StateType.COMPLETED
    assert my_mock.call_args_list == [call("completed1"), call("completed2")]
    # The failing hook's error is stored with the task run, its state unchanged.
    run = store().get_task_run(state.run_id)
    assert run["state_name"] == "Completed"
    logs = store().logs(task_run_id=state.run_id)
    assert any("An error was encountered while running hook 'exception_hook'" in log["message"] for log in logs)


@pytest.mark.parametrize("hook1, hook2", SYNC_AND_ASYNC)
def test_on_completion_hooks_work_with_sync_and_async(hook1, hook2):
    # Prefect: tests/test_tasks.py::TestTaskHooksOnCompletion::test_on_completion_hooks_work_with_sync_and_async
    my_mock = MagicMock()

    @task(on_completion=[hook1(my_mock), hook2(my_mock)])
    def my_task():
        pass

    @flow
    def my_flow():
        return my_task(return_state=True)

    assert my_flow().type == StateType.COMPLETED
    assert my_mock.call_args_list == [call(), call()]


def test_async_hooks_of_an_async_task_in_an_async_flow():
    # Prefect: tests/test_tasks.py::TestTaskHooksOnCompletion::test_on_completion_hooks_work_with_sync_and_async,
    # with the task and the flow async: the hook is awaited while the flow's loop runs.
    import asyncio

    my_mock = MagicMock()

    @task(on_completion=[create_async_hook(my_mock)])
    async def my_task():
        return 1

    @flow
    async def my_flow():
        return await my_task()

    assert asyncio.run(my_flow()) == 1
    assert my_mock.call_args_list == [call()]


def test_on_failure_hooks_run_on_failure():
    # Prefect: tests/test_tasks.py::TestTaskHooksOnFailure::test_on_failure_hooks_run_on_failure
    my_mock = MagicMock()

    def failed1(task, task_run, state):
        my_mock("failed1")

    def failed2(task, task_run, state):
        my_mock("failed2")

    @task(on_failure=[failed1, failed2])
    def my_task():
        raise Exception("oops")

    @flow
    def my_flow():
        future = my_task.submit()
        future.wait()
        return future.state

    state = my_flow(return_state=True)
    assert state.type == StateType.FAILED
    assert my_mock.call_args_list == [call("failed1"), call("failed2")]


def test_failure_hooks_dont_run_on_retries():
    # Prefect: tests/test_tasks.py::TestTaskHooksOnFailure::test_failure_hooks_dont_run_on_retries
    my_mock = MagicMock()

    def failed1(task, task_run, state):
        my_mock("failed1")

    @task(retries=2, on_failure=[failed1])
    def my_task():
        raise Exception("oops")

    @flow
    def my_flow():
        future = my_task.submit()
        future.wait()
        return future.state

    state = my_flow(return_state=True)
    assert state.type == StateType.FAILED
    assert my_mock.call_args_list == [call("failed1")]


def test_on_failure_hooks_run_on_a_timeout():
    # Prefect: docs/v3/how-to-guides/workflows/state-change-hooks.mdx (a TimedOut run is Failed, so on_failure runs)
    import time

    seen = []

    @task(timeout_seconds=0.1, on_failure=[lambda task, task_run, state: seen.append(state.name)])
    def slow():
        time.sleep(2)

    @flow
    def my_flow():
        return slow(return_state=True).name

    assert my_flow() == "TimedOut"
    assert seen == ["TimedOut"]


def test_on_running_hooks_run_on_both_completed_and_failed():
    # Prefect: tests/test_tasks.py::TestTaskHooksOnRunning::test_on_running_hooks_run_on_both_completed_and_failed
    my_mock = MagicMock()

    def running(task, task_run, state):
        my_mock("running", state.name)

    @task(on_running=[running])
    def my_task(fail):
        if fail:
            raise ValueError("fail")

    @flow
    def my_flow():
        return my_task(False, return_state=True), my_task(True, return_state=True)

    my_flow(return_state=True)
    assert my_mock.call_args_list == [call("running", "Running"), call("running", "Running")]


@pytest.mark.parametrize("delay", [0.1, 0])
def test_on_running_hooks_fire_on_retry(delay):
    # Prefect: tests/test_tasks.py::TestTaskHooksOnRunning::test_on_running_hooks_fire_on_retry_with_delay
    # and ::test_on_running_hooks_fire_on_retry_without_delay
    my_mock = MagicMock()

    def running_hook(task, task_run, state):
        my_mock("running")

    @task(on_running=[running_hook], retries=1, retry_delay_seconds=delay)
    def my_task():
        if my_mock.call_count < 2:
            raise ValueError("failing")
        return "success"

    @flow
    def my_flow():
        return my_task(return_state=True)

    assert my_flow().type == StateType.COMPLETED
    assert my_mock.call_args_list == [call("running"), call("running")]


def test_task_hooks_get_the_task_and_its_run():
    # Prefect: docs/v3/how-to-guides/workflows/state-change-hooks.mdx (hook(task, task_run, state))
    seen = {}

    def hook(tsk, task_run, state):
        seen.update(task=tsk, id=task_run.id, name=task_run.name, flow_run_id=task_run.flow_run_id,
                    run_count=task_run.run_count, state=task_run.state, context=TaskRunContext.get())

    @task(on_completion=[hook], task_run_name="sum-{x}")
    def add(x):
        return x + 1

    @flow
    def my_flow():
        return add(1, return_state=True), FlowRunContext.get().flow_run_id

    state, flow_run_id = my_flow()
    assert seen["task"] is add
    assert (seen["id"], seen["name"], seen["flow_run_id"], seen["run_count"]) == (state.run_id, "sum-1", flow_run_id, 1)
    assert seen["state"] is state
    assert seen["context"].task_run_id == state.run_id  # the hook runs in the task run's context


def test_a_cached_run_calls_on_completion():
    # Prefect: docs/v3/how-to-guides/workflows/state-change-hooks.mdx (a Cached state is a Completed state)
    from prefect_like.caching import INPUTS

    names = []

    @task(cache_policy=INPUTS, on_completion=[lambda task, run, state: names.append(state.name)])
    def double(x):
        return 2 * x

    @flow
    def my_flow():
        return double(2), double(2)

    assert my_flow() == (4, 4)
    assert names == ["Completed", "Cached"]


# -- flow hooks ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hook_type, fn_body, expected_exc",
    [
        ("on_completion", lambda: None, None),
        ("on_failure", lambda: 100 / 0, ZeroDivisionError),
        ("on_cancellation", lambda: Cancelled(), Exception),
    ],
)
def test_hooks_are_called_within_flow_run_context(caplog, hook_type, fn_body, expected_exc):
    # Prefect: tests/test_flows.py::TestFlowHooksContext::test_hooks_are_called_within_flow_run_context
    # (Prefect's Cancelling() is returned here as Cancelled(): there is no Cancelling state)
    checked = []

    def hook(flow, flow_run, state):
        ctx = get_run_context()
        assert ctx is not None
        assert ctx.flow_run and ctx.flow_run == flow_run
        assert ctx.flow_run.state == state
        assert ctx.flow == flow
        checked.append(True)

    @flow(**{hook_type: [hook]})
    def foo_flow():
        return fn_body()

    with caplog.at_level("INFO"):
        if expected_exc:
            with pytest.raises(expected_exc):
                foo_flow()
        else:
            foo_flow()
    assert checked == [True]
    assert "Hook 'hook' finished running successfully" in caplog.text


def test_flow_on_failure_hooks_dont_run_on_retries():
    # Prefect: tests/test_flows.py::TestFlowHooksOnFailure::test_on_failure_hooks_dont_run_on_retries
    my_mock = MagicMock()

    def failed1(flow, flow_run, state):
        my_mock("failed1")

    def failed2(flow, flow_run, state):
        my_mock("failed2")

    @flow(on_failure=[failed1, failed2], retries=3)
    def my_flow():
        raise SyntaxError("oops")

    state = my_flow(return_state=True)
    assert state.type == StateType.FAILED
    assert [c.args[0] for c in my_mock.call_args_list] == ["failed1", "failed2"]


def test_on_failure_hooks_run_on_bad_parameters():
    # Prefect: tests/test_flows.py::TestFlowHooksOnFailure::test_on_failure_hooks_run_on_bad_parameters
    my_mock = MagicMock()

    def failure_hook(flow, flow_run, state):
        my_mock("failure_hook")

    @flow(on_failure=[failure_hook])
    def my_flow(x: int):
        pass

    state = my_flow(x="x", return_state=True)
    assert state.type == StateType.FAILED
    assert my_mock.call_args_list == [call("failure_hook")]


@pytest.mark.parametrize("hook1, hook2", SYNC_AND_ASYNC)
def test_flow_on_completion_hooks_work_with_sync_and_async(hook1, hook2):
    # Prefect: tests/test_flows.py::TestFlowHooksOnCompletion::test_on_completion_hooks_work_with_sync_and_async
    my_mock = MagicMock()

    @flow(on_completion=[hook1(my_mock), hook2(my_mock)])
    def my_flow():
        pass

    my_flow()
    assert my_mock.call_args_list == [call(), call()]


def test_other_flow_completion_hooks_run_if_a_hook_fails():
    # Prefect: tests/test_flows.py::TestFlowHooksOnCompletion::test_other_completion_hooks_run_if_a_hook_fails
    my_mock = MagicMock()

    def completed1(flow, flow_run, state):
        my_mock("completed1")

    def exception_hook(flow, flow_run, state):
        raise Exception("oops")

    def completed2(flow, flow_run, state):
        my_mock("completed2")

    @flow(on_completion=[completed1, exception_hook, completed2])
    def my_flow():
        return 1

    state = my_flow(return_state=True)
    assert state.is_completed() and state.result() == 1
    assert my_mock.call_args_list == [call("completed1"), call("completed2")]


def test_on_cancellation_hooks_run_on_cancelled_state():
    # Prefect: tests/test_flows.py::TestFlowHooksOnCancellation::test_on_cancellation_hooks_run_on_cancelled_state
    my_mock = MagicMock()

    @flow(on_cancellation=[lambda f, r, s: my_mock("cancelled_hook1"), lambda f, r, s: my_mock("cancelled_hook2")])
    def my_flow():
        return Cancelled()

    my_flow(return_state=True)
    assert my_mock.mock_calls == [call("cancelled_hook1"), call("cancelled_hook2")]


def test_on_cancelled_hook_on_subflow_succeeds():
    # Prefect: tests/test_flows.py::TestFlowHooksOnCancellation::test_on_cancelled_hook_on_subflow_succeeds
    my_mock = MagicMock()

    def cancelled(flow, flow_run, state):
        my_mock("cancelled")

    def failed(flow, flow_run, state):
        my_mock("failed")

    @flow(on_cancellation=[cancelled])
    def subflow():
        return Cancelled()

    @flow(on_failure=[failed])
    def my_flow():
        subflow()

    my_flow(return_state=True)
    assert my_mock.mock_calls == [call("cancelled"), call("failed")]


def test_on_crashed_hooks_run_on_crashed_state():
    # Prefect: tests/test_flows.py::TestFlowHooksOnCrashed::test_on_crashed_hooks_run_on_crashed_state
    my_mock = MagicMock()

    @flow(on_crashed=[lambda f, r, s: my_mock("crashed_hook1"), lambda f, r, s: my_mock("crashed_hook2")],
          on_failure=[lambda f, r, s: my_mock("failed")])
    def my_flow():
        return Crashed()

    my_flow(return_state=True)
    assert my_mock.mock_calls == [call("crashed_hook1"), call("crashed_hook2")]


@pytest.mark.parametrize("returned", [lambda: 1, lambda: State(StateType.FAILED, message="no")])
def test_on_crashed_and_on_cancellation_hooks_are_ignored_otherwise(returned):
    # Prefect: tests/test_flows.py::TestFlowHooksOnCrashed::test_on_crashed_hooks_are_ignored_if_terminal_state_completed,
    # ::test_on_crashed_hooks_are_ignored_if_terminal_state_failed (and the same for on_cancellation)
    my_mock = MagicMock()

    @flow(on_crashed=[lambda f, r, s: my_mock("crashed")], on_cancellation=[lambda f, r, s: my_mock("cancelled")])
    def my_flow():
        return returned()

    my_flow(return_state=True)
    assert my_mock.mock_calls == []


def test_flow_on_running_hooks_run_on_each_attempt():
    # Prefect: tests/test_flows.py::TestFlowHooksOnRunning::test_on_running_hooks_run_on_running, with a retry
    counts = []

    @flow(retries=1, on_running=[lambda f, flow_run, s: counts.append((flow_run.run_count, s.name))])
    def my_flow():
        if len(counts) < 2:
            raise ValueError("first attempt fails")
        return "ok"

    assert my_flow() == "ok"
    assert counts == [(1, "Running"), (2, "Running")]


def test_decorated_flow_hooks_and_their_logger(store):
    # Prefect: tests/test_flows.py::TestFlowHooksOnCompletion::test_decorated_on_completion_hooks_run_on_completed,
    # and docs/v3/how-to-guides/workflows/state-change-hooks.mdx (a hook logs with get_run_logger)
    @flow
    def my_flow():
        return 1

    @my_flow.on_completion
    def notify(flow, flow_run, state):
        get_run_logger().info("flow %s ended %s", flow_run.name, state.name)

    state = my_flow(return_state=True)
    logs = [log["message"] for log in store().logs(flow_run_id=state.run_id)]
    assert any(message.startswith("flow ") and message.endswith(" ended Completed") for message in logs)


SIGNALLED = """
import os, signal, sys
from prefect_like import flow

def crashed(flow, flow_run, state):
    print("crashed", state.type.value, flush=True)

def cancelled(flow, flow_run, state):
    print("cancelled", state.type.value, flush=True)

@flow(on_crashed=[crashed], on_cancellation=[cancelled])
def my_flow():
    os.kill(os.getpid(), signal.{signal})
    import time
    time.sleep(30)

try:
    my_flow(return_state=True)
except KeyboardInterrupt as exc:
    print("raised", type(exc).__name__, flush=True)
"""


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_on_crashed_and_on_cancellation_run_when_a_signal_ends_the_flow(tmp_path, signal_name):
    # Prefect: tests/test_flows.py::TestFlowHooksOnCrashed::test_on_crashed_hook_called_on_sigterm_without_intent
    # (the run is recorded Cancelled here, see docs/coming-from-prefect.md; both hooks run)
    script = tmp_path / "signalled.py"
    script.write_text(textwrap.dedent(SIGNALLED.replace("{signal}", signal_name)))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([PYTHON, str(script)], capture_output=True, text=True, timeout=60, env=env)
    lines = done.stdout.splitlines()
    assert lines[:2] == ["cancelled CANCELLED", "crashed CANCELLED"], done.stdout + done.stderr
    raised = "Interrupted" if signal_name == "SIGTERM" else "KeyboardInterrupt"
    assert lines[2] == f"raised {raised}"
    assert issubclass(TerminationSignal, KeyboardInterrupt)
