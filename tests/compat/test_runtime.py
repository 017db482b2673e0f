"""The run context in Prefect's shape: ``prefect_like.runtime``, ``get_run_context()``,
``FlowRunContext.get()``, ``TaskRunContext.get()``, ``get_logger``, ``disable_run_logger``.

Sources: Prefect's tests/runtime/test_flow_run.py, tests/runtime/test_task_run.py,
tests/runtime/test_deployment.py (the attributes inside and outside a run), tests/test_context.py
(test_get_run_context, TestTaskRunContext), tests/test_logging.py (test_disable_run_logger,
test_get_logger) and docs/v3/how-to-guides/workflows/access-runtime-info.mdx.
"""

from __future__ import annotations

import datetime
import logging

import pytest

from prefect_like import flow, get_run_logger, runtime, task
from prefect_like.context import FlowRunContext, TaskRunContext, get_run_context
from prefect_like.logging import disable_run_logger, get_logger
from prefect_like.runtime import deployment, flow_run, task_run

# -- outside any run -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, name, empty",
    [
        (flow_run, "id", None),
        (flow_run, "name", None),
        (flow_run, "flow_name", None),
        (flow_run, "parameters", {}),
        (flow_run, "tags", []),
        (flow_run, "run_count", 0),
        (flow_run, "parent_flow_run_id", None),
        (flow_run, "parent_deployment_id", None),
        (task_run, "id", None),
        (task_run, "name", None),
        (task_run, "task_name", None),
        (task_run, "parameters", {}),
        (task_run, "tags", []),
        (task_run, "run_count", 0),
        (deployment, "id", None),
        (deployment, "name", None),
        (deployment, "version", None),
        (deployment, "parameters", {}),
        (deployment, "flow_run_id", None),
    ],
)
def test_attributes_are_empty_outside_a_run(module, name, empty):
    # Prefect: tests/runtime/test_flow_run.py::TestID::test_id_is_attribute (and each attribute's "_outside_run"
    # test), tests/runtime/test_task_run.py, tests/runtime/test_deployment.py
    assert getattr(module, name) == empty


def test_scheduled_start_time_is_now_outside_a_run():
    # Prefect: tests/runtime/test_flow_run.py::TestStartTime::test_scheduled_start_time_is_timestamp_when_not_set
    before = datetime.datetime.now(datetime.UTC)
    value = flow_run.scheduled_start_time
    assert before <= value <= datetime.datetime.now(datetime.UTC)


def test_an_unknown_attribute_raises_attribute_error():
    # Prefect: tests/runtime/test_flow_run.py::test_attribute_error_on_unknown_attribute (AttributeError)
    with pytest.raises(AttributeError, match="no attribute 'foo'"):
        flow_run.foo  # noqa: B018
    assert "id" in dir(flow_run)


# -- inside runs -----------------------------------------------------------------------------------------------


def test_flow_run_attributes_inside_a_flow_and_its_tasks():
    # Prefect: tests/runtime/test_flow_run.py::TestID::test_id_pulls_from_api_when_needed,
    # ::TestName::test_name_is_populated_when_run, ::TestParameters::test_parameters_from_context,
    # ::TestFlowName::test_flow_name_is_populated, ::TestRunCount
    @task
    def inner(x):
        return flow_run.id, flow_run.parameters, task_run.id, task_run.name, task_run.parameters, task_run.run_count

    @flow(flow_run_name="run-{a}")
    def my_flow(a: int, b: str = "z"):
        return (flow_run.id, flow_run.name, flow_run.flow_name, flow_run.parameters, flow_run.run_count,
                flow_run.scheduled_start_time, deployment.flow_run_id, inner.submit(5).result(),
                FlowRunContext.get().flow_run_id)

    flow_id, name, flow_name, parameters, count, started, dep_flow_run_id, inner_values, context_id = my_flow(1)
    assert flow_id == context_id == dep_flow_run_id
    assert (name, flow_name, parameters, count) == ("run-1", "my-flow", {"a": 1, "b": "z"}, 1)
    assert isinstance(started, datetime.datetime) and started.tzinfo is not None
    inner_flow_id, inner_flow_parameters, task_id, task_name, task_parameters, task_count = inner_values
    assert inner_flow_id == flow_id and inner_flow_parameters == {"a": 1, "b": "z"}
    assert task_id.startswith(flow_id[:12]) and task_name == "inner"
    assert (task_parameters, task_count) == ({"x": 5}, 1)


def test_run_counts_follow_retries():
    # Prefect: tests/runtime/test_task_run.py::TestRunCount::test_run_count_increments_with_retries (and the flow's)
    task_counts, flow_counts = [], []

    @task(retries=2)
    def flaky():
        task_counts.append(task_run.run_count)
        if len(task_counts) < 3:
            raise ValueError("again")

    @flow(retries=1)
    def my_flow():
        flow_counts.append(flow_run.run_count)
        if len(flow_counts) < 2:
            raise ValueError("again")
        flaky()

    my_flow()
    assert task_counts == [1, 2, 3]
    assert flow_counts == [1, 2]


def test_subflow_parent_and_root():
    # Prefect: tests/runtime/test_flow_run.py::TestParentFlowRunId::test_parent_flow_run_id_pulls_from_api_when_needed,
    # ::TestRootFlowRunId::test_root_flow_run_id_pulls_from_api_when_needed
    @flow
    def child():
        return flow_run.id, flow_run.parent_flow_run_id, flow_run.root_flow_run_id

    @flow
    def parent():
        return flow_run.id, flow_run.root_flow_run_id, child()

    parent_id, parent_root, (child_id, child_parent, child_root) = parent()
    assert parent_root == parent_id
    assert child_parent == parent_id and child_root == parent_id and child_id != parent_id


def test_runtime_is_reached_from_the_package():
    # Prefect: docs/v3/how-to-guides/workflows/access-runtime-info.mdx ("from prefect import runtime")
    @flow
    def my_flow():
        return runtime.flow_run.name, runtime.task_run.id

    name, task_id = my_flow()
    assert isinstance(name, str) and task_id is None


# -- contexts ---------------------------------------------------------------------------------------------------


def test_get_run_context_raises_outside_a_run():
    # Prefect: tests/test_context.py::test_get_run_context (MissingContextError, a RuntimeError)
    from prefect_like.exceptions import MissingContextError

    with pytest.raises(MissingContextError):
        get_run_context()
    assert FlowRunContext.get() is None and TaskRunContext.get() is None


def test_contexts_have_prefect_fields():
    # Prefect: tests/test_context.py::test_get_run_context, ::TestTaskRunContext, and
    # docs/v3/how-to-guides/workflows/access-runtime-info.mdx (get_run_context().flow_run / .task_run)
    @task(tags=["gpu"])
    def inner():
        context = get_run_context()
        run = context.task_run
        return (type(context) is not FlowRunContext, TaskRunContext.get() is context, run.id, run.name,
                run.flow_run_id, run.run_count, run.tags, run.task_key, run.state.name, context.task is inner,
                context.parameters)

    @flow
    def my_flow():
        context = get_run_context()
        run = context.flow_run
        return (FlowRunContext.get() is context, run.id, run.name, run.flow_name, run.parameters, run.run_count,
                run.state_name, run.deployment_id, context.flow is my_flow, inner())

    same, run_id, name, flow_name, parameters, count, state_name, deployment_id, is_flow, inner_values = my_flow()
    assert same and is_flow and flow_name == "my-flow" and parameters == {} and count == 1
    assert state_name == "Running" and deployment_id is None and isinstance(name, str)
    is_task, same_task, task_id, task_name, task_flow_run_id, task_count, tags, key, task_state, is_inner, params = (
        inner_values
    )
    assert is_task and same_task and task_name == "inner" and task_flow_run_id == run_id
    assert (task_count, tags, task_state, is_inner, params) == (1, ["gpu"], "Running", True, {})
    assert key.endswith("inner")


# -- loggers ---------------------------------------------------------------------------------------------------


def test_disable_run_logger():
    # Prefect: tests/test_logging.py::test_disable_run_logger (a task's .fn calling get_run_logger, in a unit test)
    @task
    def logs():
        get_run_logger().critical("won't show")
        return 1

    with pytest.raises(RuntimeError):
        logs.fn()
    with disable_run_logger():
        assert logs.fn() == 1


def test_disable_run_logger_silences_a_run(store):
    # Prefect: tests/test_logging.py::test_disable_run_logger (nothing is logged in the block)
    @flow
    def my_flow():
        get_run_logger().warning("hidden line")

    with disable_run_logger():
        state = my_flow(return_state=True)
    assert not [log for log in store().logs(flow_run_id=state.run_id) if log["message"] == "hidden line"]


def test_get_logger():
    # Prefect: tests/test_logging.py::test_get_logger_returns_prefect_logger_by_default,
    # ::test_get_logger_returns_prefect_child_logger
    assert get_logger() is logging.getLogger("prefect_like")
    assert get_logger("foo").name == "prefect_like.foo"
