"""get_run_logger and log_prints: lines logged in a run are stored with that run."""

from __future__ import annotations

import logging

from prefect_like import flow, get_run_logger, task
from prefect_like.testing.fixtures import ConformanceFixtures


def messages(rows) -> list[str]:
    return [row["message"] for row in rows]


def is_level(row, name: str) -> bool:
    level = row["level"]
    return level == name or level == getattr(logging, name) or str(level).upper() == name


class LoggingTests(ConformanceFixtures):
    """get_run_logger and log_prints: lines logged in a run are stored with that run."""

    def test_task_logger_lines_are_stored_with_the_task_run(self, runner, store):
        @task
        def chatty(x: int) -> int:
            logger = get_run_logger()
            logger.info("processing item %d", x)
            logger.warning("careful with %s", x)
            return x

        @flow(task_runner=runner())
        def pipeline():
            future = chatty.submit(7)
            future.wait()
            return future.task_run_id

        state = pipeline(return_state=True)
        task_run_id = state.result()
        rows = store.logs(task_run_id=task_run_id)
        assert messages(rows) == ["processing item 7", "careful with 7"]
        assert is_level(rows[0], "INFO")
        assert is_level(rows[1], "WARNING")
        assert "processing item 7" in messages(store.logs(flow_run_id=state.run_id))

    def test_flow_logger_lines_are_stored_with_the_flow_run(self, runner, store):
        @flow(task_runner=runner())
        def pipeline() -> None:
            get_run_logger().info("hello from the flow")
            get_run_logger().error("an error line")

        state = pipeline(return_state=True)
        rows = store.logs(flow_run_id=state.run_id)
        assert "hello from the flow" in messages(rows)
        (error_row,) = [row for row in rows if row["message"] == "an error line"]
        assert is_level(error_row, "ERROR")

    def test_each_mapped_run_logs_to_its_own_run(self, runner, store):
        @task
        def chatty(x: int) -> int:
            get_run_logger().info(f"item {x}")
            return x

        @flow(task_runner=runner())
        def pipeline():
            futures = chatty.map(range(5))
            futures.wait()
            return [f.task_run_id for f in futures]

        ids = pipeline()
        assert [messages(store.logs(task_run_id=run_id)) for run_id in ids] == [
            [f"item {i}"] for i in range(5)
        ]

    def test_task_log_prints(self, runner, store, capsys):
        @task(log_prints=True)
        def printer(x: int) -> int:
            print("printed", x)
            return x

        @flow(task_runner=runner())
        def pipeline():
            future = printer.submit(3)
            future.wait()
            return future.task_run_id

        task_run_id = pipeline()
        assert "printed 3" in messages(store.logs(task_run_id=task_run_id))

    def test_flow_log_prints(self, runner, store):
        @flow(log_prints=True, task_runner=runner())
        def pipeline() -> None:
            print("flow says hi")

        state = pipeline(return_state=True)
        assert "flow says hi" in messages(store.logs(flow_run_id=state.run_id))

    def test_flow_log_prints_reach_its_submitted_and_mapped_tasks(self, runner, store):
        # Prefect 3: log_prints=True on a flow captures prints in its tasks, unless a task
        # says log_prints=False (docs/v3/how-to-guides/workflows/add-logging.mdx).
        @task
        def chatty(i: int) -> str:
            print(f"chatty {i}")
            from prefect_like.context import get_run_context

            return get_run_context().run_id

        @task(log_prints=False)
        def quiet() -> str:
            print("quiet task")
            from prefect_like.context import get_run_context

            return get_run_context().run_id

        @flow(log_prints=True, task_runner=runner())
        def pipeline() -> list[str]:
            return [chatty.submit(0).result(), *chatty.map([1, 2]).result(), quiet.submit().result()]

        *chatty_ids, quiet_id = pipeline()
        for i, run_id in enumerate(chatty_ids):
            assert messages(store.logs(task_run_id=run_id)) == [f"chatty {i}"]
        assert messages(store.logs(task_run_id=quiet_id)) == []

    def test_prints_are_not_captured_without_log_prints(self, runner, store, capsys):
        @task(log_prints=False)
        def printer() -> None:
            print("not a log line")

        @flow(task_runner=runner())
        def pipeline():
            future = printer.submit()
            future.wait()
            return future.task_run_id

        state = pipeline(return_state=True)
        assert "not a log line" not in messages(store.logs(task_run_id=state.result()))
        assert "not a log line" not in messages(store.logs(flow_run_id=state.run_id))

    def test_logging_in_async_task(self, runner, store):
        @task
        async def chatty() -> None:
            get_run_logger().info("async hello")

        @flow(task_runner=runner())
        def pipeline():
            future = chatty.submit()
            future.wait()
            return future.task_run_id

        assert messages(store.logs(task_run_id=pipeline())) == ["async hello"]
