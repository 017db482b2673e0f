"""timeout_seconds: a task or flow past its limit fails with TimeoutError, and the flow goes on."""

from __future__ import annotations

import asyncio
import time

import pytest

from prefect_like import flow, task
from prefect_like.testing.fixtures import ConformanceFixtures
from prefect_like.testing.helpers import count_lines, mark_call


def sleep_for(seconds: float) -> None:
    # Short sleeps, so an engine that interrupts a thread between bytecodes can stop it early.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


@task(timeout_seconds=0.5)
def too_slow() -> str:
    sleep_for(5)
    return "finished"


@task
def after(log: str) -> str:
    mark_call(log)
    return "after"


class TimeoutTests(ConformanceFixtures):
    """timeout_seconds: a task or flow past its limit fails with TimeoutError, and the flow goes on."""

    def test_task_timeout_fails_the_task_and_the_flow_goes_on(self, runner, call_log):
        out = {}

        @flow(task_runner=runner())
        def pipeline() -> str:
            out["slow"] = slow = too_slow.submit()
            slow.wait()
            return after(call_log)

        later = pipeline()
        slow = out["slow"]
        assert slow.state.is_failed()
        assert later == "after"
        assert count_lines(call_log) == 1
        with pytest.raises(TimeoutError):
            slow.result()
        assert isinstance(slow.exception(), TimeoutError)

    def test_task_timeout_on_direct_call(self, runner, call_log):
        out = {}

        @flow(task_runner=runner())
        def pipeline() -> str:
            out["state"] = too_slow(return_state=True)
            return after(call_log)

        later = pipeline()
        state = out["state"]
        assert state.is_failed()
        assert isinstance(state.result(raise_on_failure=False), TimeoutError)
        assert later == "after"

    def test_task_within_its_timeout_completes(self, runner):
        @task(timeout_seconds=30)
        def quick(x: int) -> int:
            return x

        @flow(task_runner=runner())
        def pipeline() -> int:
            return quick.submit(3).result()

        assert pipeline() == 3

    def test_timed_out_upstream_makes_downstream_not_ready(self, runner):
        @task
        def use(value: str) -> str:
            return value

        out = {}

        @flow(task_runner=runner())
        def pipeline() -> None:
            out["down"] = use.submit(too_slow.submit())

        pipeline()
        assert out["down"].state.name == "NotReady"

    def test_async_task_timeout(self, runner):
        @task(timeout_seconds=0.5)
        async def too_slow_async() -> str:
            await asyncio.sleep(5)
            return "finished"

        out = {}

        @flow(task_runner=runner())
        def pipeline() -> None:
            out["future"] = too_slow_async.submit()

        pipeline()
        future = out["future"]
        assert future.state.is_failed()
        with pytest.raises(TimeoutError):
            future.result()

    def test_timeout_is_stored_as_the_error(self, runner, store):
        @flow(task_runner=runner())
        def pipeline() -> None:
            too_slow(return_state=True)

        state = pipeline(return_state=True)
        (run,) = store.list_task_runs(state.run_id)
        assert run["state"] == "FAILED"
        assert run["state_name"] == "TimedOut"
        assert run["error"]["type"] == "TaskRunTimeoutError"  # a TimeoutError, as in Prefect

    def test_flow_timeout(self, runner):
        @flow(timeout_seconds=0.5, task_runner=runner())
        def slow_flow() -> str:
            sleep_for(5)
            return "finished"

        with pytest.raises(TimeoutError):
            slow_flow()
        state = slow_flow(return_state=True)
        assert state.is_failed()
        assert isinstance(state.result(raise_on_failure=False), TimeoutError)
