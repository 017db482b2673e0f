"""Caching: a hit is COMPLETED/Cached and does not call the function; policies, keys, expiry."""

from __future__ import annotations

import os
import subprocess
import textwrap
from datetime import timedelta
from pathlib import Path

from prefect_like import flow, task
from prefect_like.caching import INPUTS, NONE, TASK_SOURCE
from prefect_like.testing.fixtures import ConformanceFixtures
from prefect_like.testing.helpers import PYTHON, REPO_ROOT, count_lines, mark_call


def run_twice(runner, task_, *args):
    """Run ``task_(*args)`` in two flow runs; return both final task states."""

    states = []

    @flow(task_runner=runner())
    def pipeline() -> None:
        states.append(task_(*args, return_state=True))

    pipeline()
    pipeline()
    return states


CROSS_PROCESS_SCRIPT = """
import sys
from prefect_like import flow, task
from prefect_like.caching import INPUTS


@task(cache_policy=INPUTS, persist_result=True)
def expensive(x, log):
    with open(log, "a") as f:
        f.write("x\\n")
    return {"value": x * 2}


@flow
def pipeline(x, log):
    state = expensive(x, log, return_state=True)
    return state.name, state.result()["value"]


print(*pipeline(int(sys.argv[1]), sys.argv[2]))
"""


class CachingTests(ConformanceFixtures):
    """Caching: a hit is COMPLETED/Cached and does not call the function; policies, keys, expiry."""

    def test_same_inputs_hit_the_cache_in_a_later_flow_run(self, runner, call_log, store):
        @task(cache_policy=INPUTS)
        def expensive(x: int, log: str) -> int:
            mark_call(log)
            return x * 10

        first, second = run_twice(runner, expensive, 4, call_log)
        assert first.is_completed() and first.name == "Completed"
        assert second.is_completed()
        assert second.name == "Cached"
        assert second.result() == 40
        assert count_lines(call_log) == 1
        assert store.get_task_run(second.run_id)["state_name"] == "Cached"

    def test_a_different_input_misses(self, runner, call_log):
        @task(cache_policy=INPUTS)
        def expensive(x: int, log: str) -> int:
            mark_call(log)
            return x * 10

        @flow(task_runner=runner())
        def pipeline(x: int) -> tuple[str, int]:
            state = expensive(x, call_log, return_state=True)
            return state.name, state.result()

        assert pipeline(1) == ("Completed", 10)
        assert pipeline(2) == ("Completed", 20)  # a miss
        assert pipeline(1) == ("Cached", 10)
        assert count_lines(call_log) == 2

    def test_submitted_and_mapped_runs_hit_the_cache(self, runner, call_log):
        @task(cache_policy=INPUTS)
        def expensive(x: int, log: str) -> int:
            mark_call(log)
            return x + 1

        runs = []

        @flow(task_runner=runner())
        def pipeline() -> None:
            runs.append(
                (expensive.map([1, 2, 3], log=[call_log] * 3), expensive.submit(1, call_log))
            )

        pipeline()
        futures, _ = runs[0]
        assert futures.result() == [2, 3, 4]
        calls_after_first = count_lines(call_log)
        pipeline()
        futures, single = runs[1]
        assert futures.result() == [2, 3, 4]
        assert [f.state.name for f in futures] == ["Cached"] * 3
        assert single.state.name == "Cached"
        assert count_lines(call_log) == calls_after_first

    def test_cache_policy_none_never_caches(self, runner, call_log):
        @task(cache_policy=NONE)
        def expensive(x: int, log: str) -> int:
            mark_call(log)
            return x

        first, second = run_twice(runner, expensive, 1, call_log)
        assert first.name == second.name == "Completed"
        assert count_lines(call_log) == 2

    def test_inputs_plus_task_source(self, runner, call_log):
        @task(cache_policy=INPUTS + TASK_SOURCE)
        def expensive(x: int, log: str) -> int:
            mark_call(log)
            return x

        @task(cache_policy=INPUTS + TASK_SOURCE)
        def other_source(x: int, log: str) -> int:
            mark_call(log)
            return -x

        first, second = run_twice(runner, expensive, 3, call_log)
        assert (first.name, second.name) == ("Completed", "Cached")
        # same inputs, different function: never the first one's cached result
        other, _ = run_twice(runner, other_source, 3, call_log)
        assert other.name == "Completed"
        assert other.result() == -3
        assert count_lines(call_log) == 2

    def test_cache_key_fn(self, runner, call_log):
        def by_x_only(context, parameters) -> str:
            return f"x={parameters['x']}"

        @task(cache_key_fn=by_x_only)
        def expensive(x: int, noise: int, log: str) -> int:
            mark_call(log)
            return x + noise

        @flow(task_runner=runner())
        def pipeline(noise: int) -> tuple[str, int]:
            state = expensive(1, noise, call_log, return_state=True)
            return state.name, state.result()

        assert pipeline(100) == ("Completed", 101)
        assert pipeline(200) == ("Cached", 101)  # the cached value, computed with noise=100
        assert count_lines(call_log) == 1

    def test_cache_key_fn_returning_none_does_not_cache(self, runner, call_log):
        @task(cache_key_fn=lambda context, parameters: None)
        def expensive(x: int, log: str) -> int:
            mark_call(log)
            return x

        first, second = run_twice(runner, expensive, 1, call_log)
        assert first.name == second.name == "Completed"
        assert count_lines(call_log) == 2

    def test_unexpired_cache_hits(self, runner, call_log):
        @task(cache_policy=INPUTS, cache_expiration=timedelta(hours=1))
        def expensive(x: int, log: str) -> int:
            mark_call(log)
            return x

        _, second = run_twice(runner, expensive, 1, call_log)
        assert second.name == "Cached"
        assert count_lines(call_log) == 1

    def test_expired_cache_misses(self, runner, call_log):
        # a millisecond is gone long before the second flow run starts
        @task(cache_policy=INPUTS, cache_expiration=timedelta(milliseconds=1))
        def expensive(x: int, log: str) -> int:
            mark_call(log)
            return x

        first, second = run_twice(runner, expensive, 1, call_log)
        assert first.name == second.name == "Completed"
        assert count_lines(call_log) == 2

    def test_failed_runs_are_not_cached(self, runner, call_log):
        @task(cache_policy=INPUTS)
        def fails_first(log: str) -> str:
            mark_call(log)
            if count_lines(log) == 1:
                raise RuntimeError("first call fails")
            return "ok"

        first, second = run_twice(runner, fails_first, call_log)
        assert first.is_failed()
        assert second.name == "Completed"
        assert second.result() == "ok"
        assert count_lines(call_log) == 2

    def test_result_storage_holds_persisted_results(self, runner, tmp_path, call_log):
        storage = tmp_path / "my-results"

        @task(cache_policy=INPUTS, persist_result=True, result_storage=str(storage))
        def expensive(x: int, log: str) -> dict:
            mark_call(log)
            return {"loss": x / 10}

        first, second = run_twice(runner, expensive, 5, call_log)
        assert first.result() == {"loss": 0.5}
        assert second.name == "Cached"
        assert second.result() == {"loss": 0.5}
        assert count_lines(call_log) == 1
        assert storage.is_dir() and any(p.is_file() for p in storage.rglob("*"))

    def test_cache_persists_across_processes(self, tmp_path, prefect_like_home, call_log):
        script = tmp_path / "cached_script.py"
        script.write_text(textwrap.dedent(CROSS_PROCESS_SCRIPT))
        env = {
            **os.environ,
            "PREFECT_LIKE_HOME": str(prefect_like_home),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
        }

        def run(x: int) -> str:
            done = subprocess.run(
                [PYTHON, str(script), str(x), call_log],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout.strip().splitlines()[-1]

        assert run(21) == "Completed 42"
        assert run(21) == "Cached 42"
        assert count_lines(call_log) == 1
        assert Path(prefect_like_home).is_dir()
