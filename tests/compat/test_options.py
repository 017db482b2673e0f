"""Task and flow options as run behaviour: with_options, run names, the option attributes.

Sources: Prefect's tests/test_tasks.py (TestTaskWithOptions, TestTaskRunName,
test_task_run_name_is_set), tests/test_flows.py (TestFlowWithOptions, TestFlowRunName), with the
run names Prefect reads from its API read here from the store.
"""

import pytest

from prefect_like import StateType, flow, task
from prefect_like.context import get_run_context


def test_with_options_allows_override_of_0_retries():
    # Prefect: tests/test_tasks.py::TestTaskWithOptions::test_with_options_allows_override_of_0_retries
    @task(retries=3, retry_delay_seconds=10)
    def initial_task():
        pass

    task_with_options = initial_task.with_options(retries=0, retry_delay_seconds=0)
    assert task_with_options.retries == 0
    assert task_with_options.retry_delay_seconds == 0


def test_with_options_retries_zero_runs_once():
    # Prefect: tests/test_tasks.py::TestTaskWithOptions::test_with_options_allows_override_of_0_retries
    # (what the override does to a run)
    calls = []

    @task(retries=3)
    def initial_task():
        calls.append(1)
        raise ValueError()

    state = initial_task.with_options(retries=0)(return_state=True)
    assert state.is_failed()
    assert len(calls) == 1


def test_with_options_keeps_the_original_task():
    # Prefect: tests/test_tasks.py::TestTaskWithOptions::test_with_options_uses_existing_settings_when_no_override
    calls = []

    @task(retries=1)
    def flaky():
        calls.append(1)
        if len(calls) % 2:
            raise ValueError()
        return "ok"

    renamed = flaky.with_options(name="other")
    assert renamed.name == "other"
    assert flaky.name == "flaky"
    assert renamed() == "ok"  # the retry survives the rename
    assert len(calls) == 2


def test_flow_with_options_can_unset_retries_with_zero():
    # Prefect: tests/test_flows.py::TestFlowWithOptions::test_with_options_can_unset_retries_with_zero
    runs = []

    @flow(retries=3)
    def initial_flow():
        runs.append(1)
        raise ValueError()

    state = initial_flow.with_options(retries=0)(return_state=True)
    assert state.is_failed()
    assert len(runs) == 1


def test_flow_with_options_can_unset_timeout_seconds_with_zero_or_none():
    # Prefect: tests/test_flows.py::TestFlowWithOptions::test_with_options_can_unset_timeout_seconds_with_zero
    @flow(timeout_seconds=1)
    def initial_flow():
        return 1

    flow_with_options = initial_flow.with_options(timeout_seconds=None)
    assert flow_with_options(return_state=True).is_completed()


def test_task_run_name_from_kwarg_and_options():
    # Prefect: tests/test_tasks.py::TestTaskRunName::test_run_name_from_kwarg and test_run_name_from_options
    @task(task_run_name="first_name")
    def my_task():
        return get_run_context().name

    assert my_task.task_run_name == "first_name"
    assert my_task() == "first_name"
    new_task = my_task.with_options(task_run_name=lambda: "second_name")
    assert new_task.task_run_name() == "second_name"
    assert new_task() == "second_name"


def test_task_run_name_is_set(store):
    # Prefect: tests/test_tasks.py::test_task_run_name_is_set
    @task(task_run_name="fixed-name")
    def my_task(name):
        return name

    @flow
    def my_flow(name):
        return my_task(name, return_state=True).run_id

    state = my_flow("chris", return_state=True)
    assert store().get_task_run(state.result())["name"] == "fixed-name"


def test_task_run_name_with_parameters(store):
    # Prefect: tests/test_tasks.py::TestTaskRunName (task_run_name templated from parameters,
    # as docs/v3/api-ref/python/prefect-tasks.mdx describes task_run_name)
    @task(task_run_name="{name}-is-{age}")
    def my_task(name, age=3):
        return get_run_context().name

    @flow
    def my_flow():
        return my_task("rex")

    assert my_flow() == "rex-is-3"


def test_flow_run_name_when_provided(store):
    # Prefect: tests/test_flows.py::TestFlowRunName::test_sets_run_name_when_provided
    @flow(flow_run_name="hi")
    def flow_with_name(foo: str = "bar", bar: int = 1):
        pass

    state = flow_with_name(return_state=True)
    assert state.type == StateType.COMPLETED
    assert store().get_flow_run(state.run_id)["name"] == "hi"


def test_flow_run_name_with_params_including_defaults(store):
    # Prefect: tests/test_flows.py::TestFlowRunName::test_sets_run_name_with_params_including_defaults
    @flow(flow_run_name="hi-{foo}-{bar}")
    def flow_with_name(foo: str = "one", bar: str = "1"):
        pass

    state = flow_with_name(bar="two", return_state=True)
    assert state.type == StateType.COMPLETED
    assert store().get_flow_run(state.run_id)["name"] == "hi-one-two"


def test_flow_run_name_with_function(store):
    # Prefect: tests/test_flows.py::TestFlowRunName::test_sets_run_name_with_function
    def generate_flow_run_name():
        return "hi"

    @flow(flow_run_name=generate_flow_run_name)
    def flow_with_name(foo: str = "one", bar: str = "1"):
        pass

    state = flow_with_name(bar="two", return_state=True)
    assert state.type == StateType.COMPLETED
    assert store().get_flow_run(state.run_id)["name"] == "hi"


def test_flow_name_from_function_and_kwarg():
    # Prefect: tests/test_flows.py::TestFlow::test_default_name_is_from_function ("my_fn" -> "my-fn")
    @flow
    def my_flow():
        pass

    @flow(name="named")
    def other():
        pass

    assert my_flow.name == "my-flow"  # Prefect: the function name, underscores as hyphens
    assert other.name == "named"


def test_task_name_from_function_and_kwarg():
    # Prefect: tests/test_tasks.py::TestTaskName::test_name_from_function and test_name_from_kwarg
    @task
    def my_task():
        pass

    @task(name="another_name")
    def other():
        pass

    assert my_task.name == "my_task"
    assert other.name == "another_name"


def test_using_return_state_in_flow_definition_raises_reserved():
    # Prefect: tests/test_flows.py::TestFlow::test_using_return_state_in_flow_definition_raises_reserved
    # Prefect's ReservedArgumentError is a TypeError
    with pytest.raises(TypeError, match="'return_state' is a reserved argument name"):

        @flow
        def foo(return_state):
            pass


def test_using_wait_for_in_task_definition_raises_reserved():
    # Prefect: tests/test_tasks.py::TestTaskWaitFor::test_using_wait_for_in_task_definition_raises_reserved
    # Prefect's ReservedArgumentError is a TypeError
    with pytest.raises(TypeError, match="'wait_for' is a reserved argument name"):

        @task
        def foo(wait_for):
            pass
