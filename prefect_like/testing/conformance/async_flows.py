"""Async tasks and flows: an async flow is awaited, an async task call inside it is awaited."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from prefect_like import State, flow, task
from prefect_like.errors import UpstreamFailedError
from prefect_like.testing.fixtures import ConformanceFixtures
from prefect_like.testing.helpers import count_lines, mark_call


@task
async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@task()
async def async_fail(x: int) -> int:
    await asyncio.sleep(0)
    raise ValueError(f"async failure {x}")


@task
def sync_inc(x: int) -> int:
    return x + 1


class AsyncTests(ConformanceFixtures):
    """Async tasks and flows: an async flow is awaited, an async task call inside it is awaited."""

    def test_async_flow_is_awaited(self, runner):
        @flow(task_runner=runner())
        async def pipeline(x: int) -> int:
            return await async_double(x)

        call = pipeline(3)
        assert inspect.isawaitable(call)
        assert asyncio.run(call) == 6

    def test_async_flow_decorators_without_arguments(self):
        @flow
        async def bare() -> str:
            return "bare"

        @flow()
        async def parens() -> str:
            return "parens"

        assert asyncio.run(bare()) == "bare"
        assert asyncio.run(parens()) == "parens"

    def test_async_task_call_in_async_flow_returns_a_coroutine(self, runner):
        @flow(task_runner=runner())
        async def pipeline() -> int:
            call = async_double(5)
            assert inspect.isawaitable(call)
            return await call

        assert asyncio.run(pipeline()) == 10

    def test_submit_in_async_flow_returns_a_future(self, runner):
        out = {}

        @flow(task_runner=runner())
        async def pipeline():
            out["future"] = future = async_double.submit(4)
            assert not inspect.isawaitable(future)
            return sync_inc.submit(future)

        # As in Prefect 3, a returned future gives the flow its State.
        assert asyncio.run(pipeline()).result() == 9
        assert out["future"].result() == 8

    def test_future_result_inside_async_flow(self, runner):
        @flow(task_runner=runner())
        async def pipeline() -> list[int]:
            futures = [async_double.submit(i) for i in range(5)]
            return [f.result() for f in futures]

        assert asyncio.run(pipeline()) == [0, 2, 4, 6, 8]

    def test_sync_task_call_in_async_flow_returns_the_result(self, runner):
        @flow(task_runner=runner())
        async def pipeline() -> int:
            value = sync_inc(1)
            assert not inspect.isawaitable(value)
            return value + await async_double(value)

        assert asyncio.run(pipeline()) == 2 + 4

    def test_async_tasks_in_a_sync_flow(self, runner):
        @flow(task_runner=runner())
        def pipeline() -> tuple[int, list[int]]:
            return async_double.submit(1).result(), async_double.map([1, 2, 3]).result()

        assert pipeline() == (2, [2, 4, 6])

    def test_async_flow_return_state(self, runner):
        @flow(task_runner=runner())
        async def pipeline() -> int:
            return await async_double(1)

        state = asyncio.run(pipeline(return_state=True))
        assert isinstance(state, State)
        assert state.is_completed()
        assert state.result() == 2

    def test_async_task_failure(self, runner):
        out = {}

        @flow(task_runner=runner())
        async def pipeline() -> None:
            out["future"] = async_fail.submit(1)
            with pytest.raises(ValueError, match="async failure 2"):
                await async_fail(2)
            out["state"] = await async_fail(3, return_state=True)

        asyncio.run(pipeline())
        future, state = out["future"], out["state"]
        assert future.state.is_failed()
        assert isinstance(future.exception(), ValueError)
        assert state.is_failed()

    def test_async_failed_upstream_makes_downstream_not_ready(self, runner, call_log):
        @task
        async def downstream(x: int, log: str) -> int:
            mark_call(log)
            return x

        out = {}

        @flow(task_runner=runner())
        async def pipeline() -> None:
            out["down"] = downstream.submit(async_fail.submit(1), call_log)

        asyncio.run(pipeline())
        down = out["down"]
        assert down.state.name == "NotReady"
        with pytest.raises(UpstreamFailedError):
            down.result()
        assert count_lines(call_log) == 0

    def test_async_flow_body_raising(self, runner):
        @flow(task_runner=runner())
        async def pipeline() -> None:
            await async_double(1)
            raise KeyError("from the async body")

        with pytest.raises(KeyError):
            asyncio.run(pipeline())
        state = asyncio.run(pipeline(return_state=True))
        assert state.is_failed()

    def test_async_task_retries(self, runner, call_log):
        @task(retries=2)
        async def unreliable(log: str) -> str:
            mark_call(log)
            if count_lines(log) < 3:
                raise RuntimeError("not yet")
            return "ok"

        @flow(task_runner=runner())
        async def pipeline() -> str:
            return await unreliable(call_log)

        assert asyncio.run(pipeline()) == "ok"
        assert count_lines(call_log) == 3

    def test_async_subflow(self, runner, store):
        @flow(task_runner=runner())
        async def child(x: int) -> int:
            return await async_double(x)

        @flow(task_runner=runner())
        async def parent():
            child_state = await child(2, return_state=True)
            return await child(3), child_state.run_id

        state = asyncio.run(parent(return_state=True))
        value, child_run_id = state.result()
        assert value == 6
        assert store.get_flow_run(child_run_id)["parent_flow_run_id"] == state.run_id

    def test_sync_subflow_in_async_flow(self, runner):
        @flow(task_runner=runner())
        def child(x: int) -> int:
            return sync_inc(x)

        @flow(task_runner=runner())
        async def parent() -> int:
            return child(1) + await async_double(1)

        assert asyncio.run(parent()) == 2 + 2

    def test_map_of_async_task_in_async_flow(self, runner):
        @flow(task_runner=runner())
        async def pipeline() -> list[int]:
            return async_double.map(range(50)).result()

        assert asyncio.run(pipeline()) == [2 * i for i in range(50)]
