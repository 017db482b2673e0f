"""Retries, retry delays, retry conditions, jitter and timeouts, as Prefect 3 pins them down.

Sources: Prefect's tests/test_task_engine.py (TestTaskRetries, TestTimeout), tests/test_tasks.py
(TestTaskRetries, TestTaskTimeouts, TestTaskConstructorValidation), tests/test_flows.py
(TestFlowRetries, TestFlowTimeouts), tests/server/orchestration/test_core_policy.py (jitter
bounds), src/prefect/tasks.py ``exponential_backoff``, and
docs/v3/how-to-guides/workflows/retries.mdx.

Prefect mocks the sleep between retries (``anyio.sleep`` / ``time.sleep``) and checks the delays
it was given; so do we, so no test waits for a retry delay.
"""

import threading
import time

import pytest

from prefect_like import State, StateType, exponential_backoff, flow, quote, task
from prefect_like.context import get_run_context
from prefect_like.errors import FlowRunTimeoutError, TaskRunTimeoutError
from prefect_like.states import Failed

from ._support import async_test, state_names

LONG = 1000.0  # delays no test could wait for: a recorded one came from a retry


@pytest.fixture
def sleeps(monkeypatch):
    """Records the retry delays instead of sleeping them (Prefect's mock_sleep)."""
    recorded: list[float] = []
    real_sleep = time.sleep

    def fake_sleep(seconds):
        if seconds >= 1:
            recorded.append(seconds)
            return None
        return real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", fake_sleep)
    return recorded


# -- retry counts and state history -----------------------------------------------------------------


@pytest.mark.parametrize("always_fail", [True, False])
def test_task_respects_retry_count(store, always_fail):
    # Prefect: tests/test_tasks.py::TestTaskRetries::test_task_respects_retry_count
    calls = []
    exc = ValueError()

    @task(retries=3)
    def flaky_function():
        calls.append(1)
        # 3 retries means 4 attempts
        if not always_fail and len(calls) == 4:
            return True
        raise exc

    @flow
    def test_flow():
        future = flaky_function.submit()
        future.wait()
        # Prefect's idiom: a tuple that is not all states is a plain value, not aggregated
        return future.state, ...

    task_run_state, _ = test_flow()
    assert len(calls) == 4
    if always_fail:
        assert task_run_state.is_failed()
        assert task_run_state.result(raise_on_failure=False) is exc
    else:
        assert task_run_state.is_completed()
        assert task_run_state.result() is True
    assert state_names(store(), task_run_state.run_id) == [
        "Pending",
        "Running",
        "Retrying",
        "Retrying",
        "Retrying",
        "Failed" if always_fail else "Completed",
    ]


def test_task_only_uses_necessary_retries(store):
    # Prefect: tests/test_tasks.py::TestTaskRetries::test_task_only_uses_necessary_retries
    calls = []

    @task(retries=3)
    def flaky_function():
        calls.append(1)
        if len(calls) == 2:
            return True
        raise ValueError()

    @flow
    def test_flow():
        future = flaky_function.submit()
        future.wait()
        return future.state

    task_run_state = test_flow()
    assert task_run_state.is_completed()
    assert task_run_state.result() is True
    assert len(calls) == 2
    assert state_names(store(), task_run_state.run_id) == [
        "Pending",
        "Running",
        "Retrying",
        "Completed",
    ]


def test_task_retries_receive_latest_run_count_in_context():
    # Prefect: tests/test_tasks.py::TestTaskRetries::test_task_retries_receive_latest_task_run_in_context
    seen = []

    @task(retries=3)
    def flaky_function():
        seen.append(get_run_context().run_count)
        if len(seen) < 4:
            raise ValueError()
        return True

    @flow
    def test_flow():
        return flaky_function()

    assert test_flow() is True
    assert seen == [1, 2, 3, 4]


def test_sync_task_retries_with_explicit_failed_state():
    # Prefect: tests/test_task_engine.py::TestTaskRetries::test_sync_task_retries_with_explicit_failed_state
    calls = []

    @task(retries=3)
    def flaky_function():
        calls.append(1)
        if len(calls) == 2:
            return True
        return Failed(message="oops", data=ValueError("oops"))

    @flow
    def test_flow():
        return flaky_function()

    assert test_flow() is True
    assert len(calls) == 2


def test_task_retries_with_explicit_failed_state_message_only():
    # Prefect: tests/test_task_engine.py::TestTaskRetries::test_sync_task_retries_with_explicit_failed_state
    # (a returned Failed state is retried like a raised exception)
    calls = []

    @task(retries=2)
    def flaky_function():
        calls.append(1)
        return Failed(message="oops")

    @flow
    def test_flow():
        return quote(
            flaky_function(return_state=True)
        )  # quoted: the flow returns the state as a value

    state = test_flow().unquote()
    assert isinstance(state, State)
    assert len(calls) == 3
    assert state.is_failed()
    assert state.message == "oops"


# -- retry delays ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "retry_delay_seconds,expected",
    [
        (LONG, [LONG, LONG, LONG]),
        ([LONG, 2 * LONG, 3 * LONG], [LONG, 2 * LONG, 3 * LONG]),
        # repeat last value if len(retry_delay_seconds) < retries
        ([LONG, 2 * LONG], [LONG, 2 * LONG, 2 * LONG]),
    ],
)
def test_sync_task_respects_retry_delay_seconds(store, sleeps, retry_delay_seconds, expected):
    # Prefect: tests/test_task_engine.py::TestTaskRetries::test_sync_task_respects_retry_delay_seconds
    # (outside a flow, as there; Prefect's delays are 1, 2, 3, ours LONG multiples of them)
    @task(retries=3, retry_delay_seconds=retry_delay_seconds)
    def flaky_function():
        raise ValueError()

    task_run_state = flaky_function(return_state=True)
    assert task_run_state.is_failed()
    assert sleeps == pytest.approx(expected, abs=1)
    names = state_names(store(), task_run_state.run_id)
    assert names[0] == "Pending"
    assert names.count("Retrying") == 3
    assert names[-1] == "Failed"


@async_test
async def test_async_task_respects_retry_delay_seconds(monkeypatch):
    # Prefect: tests/test_task_engine.py::TestTaskRetries::test_async_task_respects_retry_delay_seconds
    import asyncio

    recorded = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds, *args, **kwargs):
        if seconds >= 1:
            recorded.append(seconds)
            return None
        return await real_sleep(seconds, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)

    @task(retries=3, retry_delay_seconds=[LONG, 2 * LONG])
    async def flaky_function():
        raise ValueError()

    @flow
    async def test_flow():
        return quote(
            await flaky_function(return_state=True)
        )  # quoted: the flow returns the state as a value

    state = (await test_flow()).unquote()
    assert state.is_failed()
    assert recorded == pytest.approx([LONG, 2 * LONG, 2 * LONG], abs=1)


def test_retry_delay_callable_is_called_once_with_the_number_of_retries(sleeps):
    # Prefect: src/prefect/tasks.py Task.__init__ (a callable retry_delay_seconds is called
    # with the number of retries and gives the list of delays), docs/v3/how-to-guides/workflows/retries.mdx
    calls = []

    def delays(retries):
        calls.append(retries)
        return [LONG * (i + 1) for i in range(retries)]

    @task(retries=3, retry_delay_seconds=delays)
    def flaky_function():
        raise ValueError()

    @flow
    def test_flow():
        return quote(
            flaky_function(return_state=True)
        )  # quoted: the flow returns the state as a value

    state = test_flow().unquote()
    assert state.is_failed()
    assert calls == [3]
    assert sleeps == [LONG, 2 * LONG, 3 * LONG]


def test_exponential_backoff_gives_prefects_delays():
    # Prefect: src/prefect/tasks.py::exponential_backoff ("backoff_factor * 2**r for r in range(retries)")
    # and docs/v3/how-to-guides/workflows/retries.mdx "Retry with configurable delay"
    assert exponential_backoff(backoff_factor=2)(4) == [2, 4, 8, 16]
    assert exponential_backoff(backoff_factor=10)(3) == [10, 20, 40]
    assert exponential_backoff(backoff_factor=1)(0) == []


def test_exponential_backoff_delays_are_used_between_retries(sleeps):
    # Prefect: docs/v3/how-to-guides/workflows/retries.mdx (retries=4, exponential_backoff(backoff_factor=2))
    calls = []

    @task(retries=4, retry_delay_seconds=exponential_backoff(backoff_factor=LONG))
    def melancholic_task():
        calls.append(1)
        raise Exception("We used to see each other so much more often")

    state = melancholic_task(return_state=True)
    assert state.is_failed()
    assert len(calls) == 5
    assert sleeps == [LONG, 2 * LONG, 4 * LONG, 8 * LONG]


def test_retry_jitter_factor_keeps_delays_within_prefects_bounds(sleeps):
    # Prefect: tests/server/orchestration/test_core_policy.py (RetryFailedTasks with
    # retry_jitter_factor: the delay is a clamped Poisson interval, at most delay * (1 + jitter))
    # and docs/v3/how-to-guides/workflows/retries.mdx "Add jitter to retry delays"
    @task(
        retries=3,
        retry_delay_seconds=exponential_backoff(backoff_factor=LONG),
        retry_jitter_factor=3,
    )
    def some_task_with_exponential_backoff_retries():
        raise Exception("I could fail some more")

    state = some_task_with_exponential_backoff_retries(return_state=True)
    assert state.is_failed()
    assert len(sleeps) == 3
    for base, slept in zip([LONG, 2 * LONG, 4 * LONG], sleeps, strict=True):
        assert 0 <= slept <= base * (1 + 3)


def test_retry_jitter_factor_without_delay_does_not_raise():
    # Prefect: tests/server/orchestration/test_core_policy.py::TestRetryFailedTasks::test_jitter_with_zero_delay_does_not_raise
    calls = []

    @task(retries=2, retry_jitter_factor=0.5)
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ValueError()
        return "ok"

    assert flaky() == "ok"
    assert len(calls) == 3


def test_task_cannot_configure_negative_relative_jitter():
    # Prefect: tests/test_tasks.py::TestTaskConstructorValidation::test_task_cannot_configure_negative_relative_jitter
    with pytest.raises(ValueError, match="retry_jitter_factor"):

        @task(retries=42, retry_delay_seconds=100, retry_jitter_factor=-10)
        def insanity():
            raise RuntimeError("try again!")


def test_task_accepts_fractional_retry_delay_seconds():
    # Prefect: tests/test_tasks.py::TestTaskConstructorValidation::test_task_accepts_fractional_retry_delay_seconds
    @task(retries=2, retry_delay_seconds=1.5)
    def task_with_float_delay():
        return "success"

    @task(retries=3, retry_delay_seconds=[0.5, 1.1, 2.7])
    def task_with_float_list_delay():
        return "success"

    assert task_with_float_delay.retries == 2
    assert task_with_float_delay.retry_delay_seconds == 1.5
    assert task_with_float_list_delay.retries == 3
    assert task_with_float_list_delay.retry_delay_seconds == [0.5, 1.1, 2.7]


# -- retry_condition_fn ------------------------------------------------------------------------------


def test_task_passes_failed_state_to_retry_fn(store):
    # Prefect: tests/test_task_engine.py::TestTaskRetries::test_task_passes_failed_state_to_retry_fn_sync
    calls = []
    handler_calls = []

    def handler(task, task_run, state):
        handler_calls.append(state.is_failed())
        try:
            state.result()
        except SyntaxError:
            return True
        return False

    @task(retries=3, retry_condition_fn=handler)
    def flaky_function():
        calls.append(1)
        if len(calls) == 2:
            return True
        raise SyntaxError("oops")

    @flow
    def test_flow():
        return flaky_function(return_state=True)

    task_run_state = test_flow()
    assert task_run_state.is_completed()
    assert task_run_state.result() is True
    assert len(calls) == 2
    assert handler_calls == [True]
    assert state_names(store(), task_run_state.run_id) == [
        "Pending",
        "Running",
        "Retrying",
        "Completed",
    ]


def test_retry_condition_fn_false_stops_retrying():
    # Prefect: docs/v3/how-to-guides/workflows/retries.mdx "Retry with a custom condition":
    # "Otherwise, the task will exit with an exception."
    calls = []

    def retry_handler(task, task_run, state) -> bool:
        try:
            state.result()
        except KeyError:
            return False
        except Exception:
            return True
        return True

    @task(retries=5, retry_condition_fn=retry_handler)
    def api_call_task():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("retry me")
        raise KeyError("do not retry me")

    @flow
    def my_workflow():
        return quote(
            api_call_task(return_state=True)
        )  # quoted: the flow returns the state as a value

    state = my_workflow().unquote()
    assert state.is_failed()
    assert len(calls) == 2
    assert isinstance(state.result(raise_on_failure=False), KeyError)


def test_retry_condition_fn_gets_the_task():
    # Prefect: tests/test_task_engine.py::TestTaskRetries::test_task_passes_failed_state_to_retry_fn
    # (the handler is called as handler(task, task_run, state))
    seen = []

    def handler(task_, task_run, state):
        seen.append(task_.name)
        return False

    @task(name="the-task", retries=3, retry_condition_fn=handler)
    def fails():
        raise ValueError()

    @flow
    def test_flow():
        return quote(fails(return_state=True))  # quoted: the flow returns the state as a value

    assert test_flow().unquote().is_failed()
    assert seen == ["the-task"]


def test_task_condition_fn_raises_when_not_a_callable():
    # Prefect: tests/test_tasks.py::TestTaskConstructorValidation::test_task_condition_fn_raises_when_not_a_callable
    with pytest.raises(TypeError):

        @task(retry_condition_fn="not a callable")
        def my_task():
            pass


# -- flow retries ------------------------------------------------------------------------------------


def test_flow_retry_with_error_in_flow():
    # Prefect: tests/test_flows.py::TestFlowRetries::test_flow_retry_with_error_in_flow
    run_count = 0

    @flow(retries=1)
    def foo():
        nonlocal run_count
        run_count += 1
        if run_count == 1:
            raise ValueError()
        return "hello"

    assert foo() == "hello"
    assert run_count == 2


def test_flow_retry_with_no_error_in_flow_and_one_failed_task():
    # Prefect: tests/test_flows.py::TestFlowRetries::test_flow_retry_with_no_error_in_flow_and_one_failed_task
    task_run_count = 0
    flow_run_count = 0

    @task
    def my_task():
        nonlocal task_run_count
        task_run_count += 1
        if flow_run_count == 1:
            raise ValueError()
        return "hello"

    @flow(retries=1)
    def foo():
        nonlocal flow_run_count
        flow_run_count += 1
        return my_task()

    assert foo() == "hello"
    assert flow_run_count == 2
    assert task_run_count == 2, "Task should be reset and run again"


def test_flow_retry_with_error_in_flow_and_successful_persisted_task():
    # Prefect: tests/test_flows.py::TestFlowRetries::test_flow_retry_with_error_in_flow_and_successful_task
    # (persist_result=True turns on the DEFAULT cache policy, whose RUN_ID part keeps the
    # cache within the flow run: the retried flow finds the task's result and does not rerun it)
    task_run_count = 0
    flow_run_count = 0

    @task(persist_result=True)
    def my_task():
        nonlocal task_run_count
        task_run_count += 1
        return "hello"

    @flow(retries=1)
    def foo():
        nonlocal flow_run_count
        flow_run_count += 1
        state = my_task(return_state=True)
        if flow_run_count == 1:
            raise ValueError()
        return state.result()

    assert foo() == "hello"
    assert flow_run_count == 2
    assert task_run_count == 1


# -- timeouts ------------------------------------------------------------------------------------------


@pytest.fixture
def release():
    """An event a timed-out task blocks on; set at the end so its abandoned thread ends."""
    event = threading.Event()
    yield event
    event.set()


def test_task_timeouts_actually_timeout(release):
    # Prefect: tests/test_tasks.py::TestTaskTimeouts::test_task_timeouts_actually_timeout
    # and test_task_timeouts_are_not_task_crashes / test_task_timeouts_do_not_crash_flow_runs
    @task(timeout_seconds=0.1)
    def sleep_task():
        release.wait(30)

    @task
    def quick():
        return 1

    @flow
    def timeout_test_flow():
        return sleep_task(return_state=True), quick(return_state=True), quick(return_state=True)

    flow_state = timeout_test_flow(return_state=True)
    timed_out, _, _ = flow_state.result(raise_on_failure=False)
    assert timed_out.name == "TimedOut"
    assert timed_out.is_failed()
    assert timed_out.type == StateType.FAILED
    assert timed_out.is_crashed() is False
    assert flow_state.is_failed()
    assert flow_state.is_crashed() is False


def test_task_timeout_raises_task_run_timeout_error(release):
    # Prefect: tests/test_task_engine.py::TestTimeout::test_timeout_sync_task
    # (TimeoutError "timed out after 0.1 second(s)"; ours is TaskRunTimeoutError, a TimeoutError)
    @task(timeout_seconds=0.1)
    def sync_task():
        release.wait(30)

    with pytest.raises(TaskRunTimeoutError):
        sync_task()
    state = sync_task(return_state=True)
    assert state.name == "TimedOut"
    error = state.result(raise_on_failure=False)
    assert isinstance(error, TaskRunTimeoutError)
    assert isinstance(error, TimeoutError)


@async_test
async def test_async_task_timeout(release):
    # Prefect: tests/test_task_engine.py::TestTimeout::test_timeout_async_task
    import asyncio

    @task(timeout_seconds=0.1)
    async def async_task():
        await asyncio.sleep(2)

    @flow
    async def my_flow():
        return quote(
            await async_task(return_state=True)
        )  # quoted: the flow returns the state as a value

    state = (await my_flow()).unquote()
    assert state.name == "TimedOut"
    assert isinstance(state.result(raise_on_failure=False), TimeoutError)


def test_task_timeout_is_stored_timed_out(store, release):
    # Prefect: tests/test_tasks.py::TestTaskTimeouts::test_task_timeouts_actually_timeout (the
    # run's recorded state)
    @task(timeout_seconds=0.1)
    def sleep_task():
        release.wait(30)

    @flow
    def my_flow():
        return quote(sleep_task(return_state=True))

    state = my_flow().unquote()
    stored = store().get_task_run(state.run_id)
    assert stored["state"] == "FAILED"
    assert stored["state_name"] == "TimedOut"


def test_task_timeouts_do_not_timeout_prematurely():
    # Prefect: tests/test_tasks.py::TestTaskTimeouts::test_task_timeouts_do_not_timeout_prematurely
    @task(timeout_seconds=100)
    def my_task():
        return 42

    @flow
    def my_flow():
        return my_task.submit()

    flow_state = my_flow(return_state=True)
    assert flow_state.type == StateType.COMPLETED
    task_res = flow_state.result()
    assert task_res.type == StateType.COMPLETED


def test_flows_fail_with_timeout(release):
    # Prefect: tests/test_flows.py::TestFlowTimeouts::test_flows_fail_with_timeout
    @flow(timeout_seconds=0.1)
    def my_flow():
        release.wait(30)

    state = my_flow(return_state=True)
    assert state.is_failed()
    assert state.name == "TimedOut"
    with pytest.raises(TimeoutError):
        state.result()
    assert isinstance(state.result(raise_on_failure=False), FlowRunTimeoutError)


@async_test
async def test_async_flows_fail_with_timeout():
    # Prefect: tests/test_flows.py::TestFlowTimeouts::test_async_flows_fail_with_timeout
    import asyncio

    @flow(timeout_seconds=0.1)
    async def my_flow():
        await asyncio.sleep(5)

    state = await my_flow(return_state=True)
    assert state.is_failed()
    assert state.name == "TimedOut"
    with pytest.raises(TimeoutError):
        state.result()


def test_flow_timeout_only_applies_if_exceeded():
    # Prefect: tests/test_flows.py::TestFlowTimeouts::test_timeout_only_applies_if_exceeded
    @flow(timeout_seconds=10)
    def my_flow():
        return 1

    state = my_flow(return_state=True)
    assert state.is_completed()


def test_flow_timeout_is_stored_timed_out(store, release):
    # Prefect: tests/test_flows.py::TestFlowTimeouts::test_flows_fail_with_timeout (the run's
    # recorded state)
    @flow(timeout_seconds=0.1)
    def my_flow():
        release.wait(30)

    state = my_flow(return_state=True)
    stored = store().get_flow_run(state.run_id)
    assert stored["state"] == "FAILED"
    assert stored["state_name"] == "TimedOut"
