"""Task and flow retries: how many times the function runs, and the state it ends in."""

from __future__ import annotations

import pytest

from prefect_like import exponential_backoff, flow, task, unmapped
from prefect_like.testing.fixtures import ConformanceFixtures
from prefect_like.testing.helpers import count_lines, mark_call

ALIVE = ("PENDING", "RUNNING")


def flaky(log: str, failures: int, error: type[Exception] = RuntimeError) -> str:
    """Fail the first ``failures`` calls (counted in ``log``), then succeed."""
    mark_call(log)
    calls = count_lines(log)
    if calls <= failures:
        raise error(f"attempt {calls} failed")
    return f"ok after {calls}"


@task
def first_step() -> int:
    return 1


@task
def second_step(x: int) -> int:
    return x + 1


class RetryTests(ConformanceFixtures):
    """Task and flow retries: how many times the function runs, and the state it ends in."""

    def test_retries_until_success(self, runner, call_log, store):
        @task(retries=2)
        def unreliable(log: str) -> str:
            return flaky(log, failures=2)

        out = {}

        @flow(task_runner=runner())
        def pipeline() -> None:
            out["future"] = unreliable.submit(call_log)

        pipeline()
        future = out["future"]
        assert future.result() == "ok after 3"
        assert future.state.is_completed()
        assert count_lines(call_log) == 3
        run = store.get_task_run(future.task_run_id)
        assert run["run_count"] == 3
        assert run["state"] == "COMPLETED"
        assert "Retrying" in [s["state_name"] for s in run["states"]]

    def test_retries_exhausted_fails_with_the_last_error(self, runner, call_log, store):
        @task(retries=1)
        def unreliable(log: str) -> str:
            return flaky(log, failures=5)

        out = {}

        @flow(task_runner=runner())
        def pipeline() -> None:
            out["future"] = unreliable.submit(call_log)

        pipeline()
        future = out["future"]
        assert future.state.is_failed()
        with pytest.raises(RuntimeError, match="attempt 2 failed"):
            future.result()
        assert count_lines(call_log) == 2
        assert store.get_task_run(future.task_run_id)["run_count"] == 2

    def test_no_retries_by_default(self, runner, call_log):
        @task
        def unreliable(log: str) -> str:
            return flaky(log, failures=1)

        @flow(task_runner=runner())
        def pipeline() -> bool:
            return unreliable(call_log, return_state=True).is_failed()

        assert pipeline() is True
        assert count_lines(call_log) == 1

    def test_direct_call_retries_and_returns_the_result(self, runner, call_log):
        @task(retries=3, retry_delay_seconds=0)
        def unreliable(log: str) -> str:
            return flaky(log, failures=3)

        @flow(task_runner=runner())
        def pipeline() -> str:
            return unreliable(call_log)

        assert pipeline() == "ok after 4"

    @pytest.mark.parametrize(
        "delay",
        [0, 0.01, [0.01, 0.02], lambda attempt: 0.01, exponential_backoff(backoff_factor=0.01)],
        ids=["zero", "number", "list", "callable", "exponential_backoff"],
    )
    def test_retry_delay_forms(self, runner, call_log, delay):
        @task(retries=2, retry_delay_seconds=delay)
        def unreliable(log: str) -> str:
            return flaky(log, failures=2)

        @flow(task_runner=runner())
        def pipeline() -> str:
            return unreliable.submit(call_log).result()

        assert pipeline() == "ok after 3"

    def test_retry_jitter_factor(self, runner, call_log):
        @task(retries=2, retry_delay_seconds=0.01, retry_jitter_factor=0.5)
        def unreliable(log: str) -> str:
            return flaky(log, failures=2)

        @flow(task_runner=runner())
        def pipeline() -> str:
            return unreliable.submit(call_log).result()

        assert pipeline() == "ok after 3"

    def test_retry_condition_false_does_not_retry(self, runner, call_log):
        @task(retries=3, retry_condition_fn=lambda task, task_run, state: False)
        def unreliable(log: str) -> str:
            return flaky(log, failures=1)

        @flow(task_runner=runner())
        def pipeline() -> bool:
            return unreliable(call_log, return_state=True).is_failed()

        assert pipeline() is True
        assert count_lines(call_log) == 1

    def test_retry_condition_sees_the_failed_state(self, runner, tmp_path):
        def only_value_errors(task, task_run, state) -> bool:
            return state.is_failed() and isinstance(
                state.result(raise_on_failure=False), ValueError
            )

        value_log = str(tmp_path / "value.log")
        key_log = str(tmp_path / "key.log")

        @task(retries=2, retry_condition_fn=only_value_errors)
        def unreliable(log: str, kind: str) -> str:
            return flaky(log, failures=1, error=ValueError if kind == "value" else KeyError)

        @flow(task_runner=runner())
        def pipeline() -> tuple[str, str]:
            return (
                unreliable(value_log, "value", return_state=True).name,
                unreliable(key_log, "key", return_state=True).name,
            )

        assert pipeline() == ("Completed", "Failed")
        assert count_lines(value_log) == 2
        assert count_lines(key_log) == 1

    def test_retries_via_with_options(self, runner, call_log):
        @task
        def unreliable(log: str) -> str:
            return flaky(log, failures=1)

        @flow(task_runner=runner())
        def pipeline() -> str:
            return unreliable.with_options(retries=1).submit(call_log).result()

        assert pipeline() == "ok after 2"

    def test_mapped_tasks_retry_independently(self, runner, tmp_path):
        @task(retries=1)
        def unreliable(i: int, directory: str) -> int:
            flaky(f"{directory}/calls-{i}.log", failures=1)
            return i

        @flow(task_runner=runner())
        def pipeline() -> list[int]:
            return unreliable.map(range(4), directory=unmapped(str(tmp_path))).result()

        assert pipeline() == [0, 1, 2, 3]
        assert [count_lines(tmp_path / f"calls-{i}.log") for i in range(4)] == [2, 2, 2, 2]

    def test_flow_retries(self, runner, call_log):
        @flow(retries=1, task_runner=runner())
        def pipeline(log: str) -> str:
            return flaky(log, failures=1)

        assert pipeline(call_log) == "ok after 2"
        assert count_lines(call_log) == 2

    def test_flow_retries_exhausted(self, runner, call_log):
        @flow(retries=1, task_runner=runner())
        def pipeline(log: str) -> str:
            return flaky(log, failures=5)

        state = pipeline(call_log, return_state=True)
        assert state.is_failed()
        assert count_lines(call_log) == 2
        with pytest.raises(RuntimeError, match="attempt 2 failed"):
            state.result()

    def test_flow_retry_after_queued_work_leaves_no_run_behind(self, runner, call_log, store):
        # The first attempt leaves a chain queued on the runner when it raises; the retry
        # restarts the same runner. Every run of both attempts must end, and be stored so.
        @flow(retries=1, task_runner=runner())
        def pipeline(log: str) -> int:
            mark_call(log)
            if count_lines(log) == 1:
                second_step.submit(first_step.submit())
                raise RuntimeError("the first attempt fails")
            return second_step.submit(first_step.submit()).result()

        state = pipeline(call_log, return_state=True)
        assert state.is_completed()
        assert state.result() == 2
        assert count_lines(call_log) == 2
        assert store.get_flow_run(state.run_id)["state"] == "COMPLETED"
        task_runs = store.list_task_runs(state.run_id, limit=100)
        assert sorted(r["task_name"] for r in task_runs) == ["first_step"] * 2 + ["second_step"] * 2
        assert [(r["task_name"], r["state_name"]) for r in task_runs if r["state"] in ALIVE] == []
