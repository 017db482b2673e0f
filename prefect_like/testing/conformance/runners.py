"""A runner's lifecycle: one instance serves many flow runs, restarts, and duplicates itself."""

from __future__ import annotations

from prefect_like import flow, task, unmapped
from prefect_like.testing.fixtures import ConformanceFixtures
from prefect_like.testing.helpers import count_lines, mark_call

# Settings a runner may have; those it has must survive ``duplicate()``.
PUBLIC_SETTINGS = ("max_workers", "max_in_flight", "address")


@task
def logged(x: int, log: str) -> int:
    mark_call(log)
    return x * 2


class RunnerLifecycleTests(ConformanceFixtures):
    """A runner's lifecycle: one instance serves many flow runs, restarts, and duplicates itself."""

    def test_one_runner_instance_serves_two_flows(self, runner, call_log):
        # ``@flow(task_runner=instance)`` takes a fresh duplicate per flow run, so the same
        # instance can back several flows, each called more than once.
        runner_instance = runner()

        @flow(task_runner=runner_instance)
        def first(n: int) -> list[int]:
            return logged.map(range(n), log=unmapped(call_log)).result()

        @flow(task_runner=runner_instance)
        def second(n: int) -> int:
            return logged.submit(logged.submit(n, call_log), call_log).result()

        assert first(3) == [0, 2, 4]
        assert second(5) == 20
        assert first(2) == [0, 2]
        assert second(1) == 4
        assert count_lines(call_log) == 3 + 2 + 2 + 2

    def test_a_runner_starts_again_after_shutdown(self, runner, call_log):
        r = runner()

        @flow(task_runner=r)
        def pipeline(n: int) -> list[int]:
            return logged.map(range(n), log=unmapped(call_log)).result()

        r.start()
        assert pipeline(2) == [0, 2]
        r.shutdown()
        r.start()
        assert pipeline(3) == [0, 2, 4]
        r.shutdown()
        with r:
            assert pipeline(1) == [0]
        with r:
            assert pipeline(1) == [0]
        assert count_lines(call_log) == 2 + 3 + 1 + 1

    def test_duplicate_gives_an_unstarted_runner_with_the_same_settings(self, runner, call_log):
        original = runner()
        copy = original.duplicate()
        assert copy is not original
        assert type(copy) is type(original)
        assert repr(copy) == repr(original)
        for name in PUBLIC_SETTINGS:
            if hasattr(original, name):
                assert getattr(copy, name) == getattr(original, name), name

        # Unstarted: it starts (and works) while the original is started too.
        original.start()
        try:
            copy.start()
            copy.shutdown()

            @flow(task_runner=original.duplicate())
            def pipeline() -> int:
                return logged(21, call_log)

            assert pipeline() == 42
        finally:
            original.shutdown()
        assert count_lines(call_log) == 1
