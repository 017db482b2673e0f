"""A failing task fails its run, not the framework; what a flow ends as when something failed."""

from __future__ import annotations

import pytest

from prefect_like import StateType, flow, task
from prefect_like.testing.fixtures import ConformanceFixtures
from prefect_like.testing.helpers import count_lines, mark_call


class SweepError(Exception):
    """A user's own exception type: it must come back as itself."""


@task
def fail(x: int) -> int:
    raise SweepError(f"bad trial {x}")


@task
def ok(x: int) -> int:
    return x


class FailureTests(ConformanceFixtures):
    """A failing task fails its run, not the framework; what a flow ends as when something failed."""

    def test_task_failure_comes_back_as_its_exception(self, runner):
        out = {}

        @flow(task_runner=runner())
        def pipeline() -> None:
            out["future"] = fail.submit(1)

        pipeline()
        future = out["future"]
        assert future.done()
        state = future.state
        assert state.type is StateType.FAILED
        assert state.is_failed()
        assert state.name == "Failed"
        assert "bad trial 1" in (state.message or "")
        with pytest.raises(SweepError, match="bad trial 1"):
            future.result()
        returned = future.result(raise_on_failure=False)
        assert isinstance(returned, SweepError)
        assert str(returned) == "bad trial 1"
        assert isinstance(future.exception(), SweepError)
        with pytest.raises(SweepError):
            state.result()
        assert isinstance(state.result(raise_on_failure=False), SweepError)

    def test_direct_task_call_raises_into_the_flow(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> str:
            try:
                fail(2)
            except SweepError as error:
                return f"caught {error}"
            return "not raised"

        assert pipeline() == "caught bad trial 2"

    def test_direct_task_call_with_return_state_does_not_raise(self, runner):
        out = {}

        @flow(task_runner=runner())
        def pipeline() -> None:
            out["state"] = fail(3, return_state=True)

        pipeline()
        state = out["state"]
        assert state.is_failed()
        assert isinstance(state.result(raise_on_failure=False), SweepError)

    def test_flow_completes_even_if_some_tasks_failed(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> int:
            fail.submit(1).wait()
            return ok(5)

        state = pipeline(return_state=True)
        assert state.is_completed()
        assert state.result() == 5

    def test_flow_body_raising_fails_the_flow(self, runner, call_log):
        @flow(task_runner=runner())
        def pipeline(log: str) -> None:
            mark_call(log)
            raise SweepError("the flow body failed")

        with pytest.raises(SweepError, match="the flow body failed"):
            pipeline(call_log)
        state = pipeline(call_log, return_state=True)
        assert state.type is StateType.FAILED
        assert state.is_failed()
        assert "the flow body failed" in (state.message or "")
        assert isinstance(state.result(raise_on_failure=False), SweepError)
        with pytest.raises(SweepError):
            state.result()
        assert count_lines(call_log) == 2

    def test_uncaught_task_exception_in_flow_body_fails_the_flow(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> int:
            return fail.submit(4).result()

        with pytest.raises(SweepError, match="bad trial 4"):
            pipeline()
        assert pipeline(return_state=True).is_failed()

    def test_flow_returning_a_failed_future_fails(self, runner):
        @flow(task_runner=runner())
        def pipeline():
            return fail.submit(1)

        state = pipeline(return_state=True)
        assert state.is_failed()
        assert state.message == "1/1 states failed."  # Prefect's aggregate message
        with pytest.raises(SweepError, match="bad trial 1"):
            pipeline()

    def test_flow_returning_a_failed_state_fails(self, runner):
        @flow(task_runner=runner())
        def pipeline():
            return fail(1, return_state=True)

        assert pipeline(return_state=True).is_failed()

    def test_flow_returning_futures_in_a_list_with_one_failed(self, runner):
        @flow(task_runner=runner())
        def pipeline():
            return [ok.submit(1), fail.submit(2)]

        assert pipeline(return_state=True).is_failed()

    def test_flow_returning_completed_futures_completes(self, runner):
        @flow(task_runner=runner())
        def pipeline():
            return ok.submit(1)

        state = pipeline(return_state=True)
        assert state.is_completed()
        assert state.result().result() == 1  # the flow's data is the returned run's State
        assert pipeline().result() == 1

    def test_many_failures_in_a_sweep(self, runner):
        @task
        def trial(i: int) -> int:
            if i % 3 == 0:
                raise SweepError(f"trial {i}")
            return i

        out = {}

        @flow(task_runner=runner())
        def sweep() -> None:
            out["futures"] = trial.map(range(30))

        sweep()
        futures = out["futures"]
        failed = [i for i, f in enumerate(futures) if f.state.is_failed()]
        assert failed == list(range(0, 30, 3))
        assert [f.result() for f in futures if f.state.is_completed()] == [
            i for i in range(30) if i % 3
        ]
