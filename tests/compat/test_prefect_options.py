"""Every Prefect 3 task and flow option is taken by ``@task``/``@flow`` and ``with_options``, with
Prefect's defaults and checks, and the attributes Prefect gives a task and a flow.

Sources: the signatures of Task.__init__ / Task.with_options (src/prefect/tasks.py) and
Flow.__init__ / Flow.with_options (src/prefect/flows.py); Prefect's tests/test_flows.py
(TestFlow::test_initializes_with_default_version, ::test_default_description_is_from_docstring,
::test_invalid_run_name, TestDecorator::test_flow_decorator_sets_default_version,
TestFlowParameterTypes, test_validate_parameters); tests/test_tasks.py (TestTaskRetries
::test_task_retry_delay_seconds_list_too_long, test_retry_jitter_factor_negative,
TestTaskRunName::test_invalid_run_name, TestTaskDescription).
"""

from __future__ import annotations

import datetime
import hashlib

import pytest

from prefect_like import flow, task
from prefect_like.caching import INPUTS, NO_CACHE
from prefect_like.errors import ParameterTypeError

TASK_OPTIONS = dict(
    name="named", description="about", tags=["a"], version="1.2", cache_policy=INPUTS, cache_key_fn=None,
    cache_expiration=datetime.timedelta(hours=1), task_run_name="run-{x}", retries=1, retry_delay_seconds=[0, 1],
    retry_jitter_factor=0.5, persist_result=True, result_storage=None, result_serializer="json",
    result_storage_key=None, cache_result_in_memory=False, timeout_seconds=30, log_prints=True,
    refresh_cache=False, on_completion=[], on_failure=[], on_running=[], on_commit=[], on_rollback=[],
    retry_condition_fn=None, viz_return_value=42,
)
FLOW_OPTIONS = dict(
    name="named", version="2.0", flow_run_name="run-{x}", retries=1, retry_delay_seconds=0, task_runner="sequential",
    description="about", timeout_seconds=30, validate_parameters=True, persist_result=True, result_storage=None,
    result_serializer="json", cache_result_in_memory=False, log_prints=True, on_completion=[], on_failure=[],
    on_cancellation=[], on_crashed=[], on_running=[],
)


def test_every_prefect_task_option_is_accepted_and_the_task_runs():
    # Prefect: src/prefect/tasks.py Task.__init__ (asset_deps aside: there are no assets)

    @task(**TASK_OPTIONS)
    def add(x):
        return x + 1

    @flow
    def my_flow():
        return add(1)

    assert my_flow() == 2
    assert (add.name, add.description, add.tags, add.version) == ("named", "about", {"a"}, "1.2")
    assert add.with_options(**TASK_OPTIONS).version == "1.2"


def test_every_prefect_flow_option_is_accepted_and_the_flow_runs():
    # Prefect: src/prefect/flows.py Flow.__init__
    @flow(**FLOW_OPTIONS)
    def my_flow(x: int):
        return x

    assert my_flow(3) == 3
    assert (my_flow.name, my_flow.version, my_flow.description) == ("named", "2.0", "about")
    assert my_flow.with_options(**FLOW_OPTIONS)(4) == 4


@pytest.mark.parametrize("decorator", [task, flow])
def test_an_unknown_option_is_refused(decorator):
    # Prefect: a TypeError for an unexpected keyword argument
    with pytest.raises(TypeError, match="got unknown options: colour"):
        decorator(colour="red")

    @decorator
    def fn():
        pass

    with pytest.raises(TypeError, match="with_options\\(\\) got unknown options: colour"):
        fn.with_options(colour="red")


def test_task_description_defaults_to_docstring():
    # Prefect: tests/test_tasks.py::TestTaskDescription (description = description or inspect.getdoc(fn))
    @task
    def documented():
        """
        Hello
        """

    assert documented.description == "Hello"
    assert documented.with_options(description="Other").description == "Other"


def test_flow_description_and_version_defaults():
    # Prefect: tests/test_flows.py::TestFlow::test_default_description_is_from_docstring,
    # TestDecorator::test_flow_decorator_sets_default_version (an md5 of the flow's file)
    @flow
    def my_fn():
        """
        Hello
        """

    assert my_fn.description == "Hello"
    with open(__file__, "rb") as source:
        assert my_fn.version == hashlib.md5(source.read()).hexdigest()
    assert my_fn.with_options(version="X").version == "X"


def test_version_is_none_without_a_source_file():
    # Prefect: tests/test_flows.py::TestFlow::test_version_none_if_source_file_cannot_be_determined
    namespace: dict = {}
    exec("def made(): return 1", namespace)
    assert flow(namespace["made"]).version is None


@pytest.mark.parametrize("decorator, option", [(task, "task_run_name"), (flow, "flow_run_name")])
def test_invalid_run_name(decorator, option):
    # Prefect: tests/test_flows.py::TestFlow::test_invalid_run_name, tests/test_tasks.py::TestTaskRunName::
    # test_invalid_run_name
    class InvalidRunNameArg:
        def format(*args, **kwargs):
            pass

    with pytest.raises(TypeError, match=f"Expected string or callable for '{option}'; got InvalidRunNameArg instead."):

        @decorator(**{option: InvalidRunNameArg()})
        def fn():
            pass


def noop():
    pass


def test_task_retry_checks():
    # Prefect: tests/test_tasks.py::TestTaskRetries::test_task_retry_delay_seconds_list_too_long (more than 50),
    # src/prefect/tasks.py (retry_jitter_factor must be >= 0; retry_delay_seconds of a wrong type)
    with pytest.raises(ValueError, match="Can not configure more than 50 retry delays per task."):
        task(retries=51, retry_delay_seconds=[1] * 51)(noop)
    with pytest.raises(ValueError, match="`retry_jitter_factor` must be >= 0."):
        task(retry_jitter_factor=-1)(noop)
    with pytest.raises(TypeError, match="Invalid `retry_delay_seconds` provided"):
        task(retry_delay_seconds="soon")(noop)
    with pytest.raises(TypeError, match="Expected `retry_condition_fn` to be callable, got str instead."):
        task(retry_condition_fn="yes")(noop)


def test_persist_result_false_turns_caching_off():
    # Prefect: src/prefect/tasks.py ("Ignoring `cache_policy` because `persist_result` is False")
    calls = []

    @task(cache_policy=INPUTS, persist_result=False)
    def add(x):
        calls.append(x)
        return x

    @flow
    def my_flow():
        return add(1), add(1)

    my_flow()
    assert calls == [1, 1]
    assert add.cache_policy is None
    assert task(cache_policy=NO_CACHE)(lambda: 1).cache_policy is None


def test_hook_options_and_their_lists():
    # Prefect: src/prefect/tasks.py (on_completion_hooks ...), src/prefect/flows.py (on_cancellation_hooks ...)
    def hook(*args):
        pass

    @task(on_commit=[hook], on_rollback=[hook], on_failure=[hook])
    def t():
        pass

    assert t.on_commit_hooks == t.on_rollback_hooks == t.on_failure_hooks == [hook]
    assert t.with_options(name="other").on_failure_hooks == [hook]

    @flow(on_cancellation=[hook], on_crashed=[hook])
    def f():
        pass

    assert f.on_cancellation_hooks == f.on_crashed_hooks == [hook] and f.on_running_hooks == []


def test_flow_parameters_schema():
    # Prefect: tests/test_flows.py::TestFlowParameterTypes (flow.parameters is the parameter schema),
    # src/prefect/utilities/callables.py::parameter_schema (properties with title and position, required)
    @flow
    def my_flow(x: int, y: str = "a", *args, **kwargs):
        pass

    schema = my_flow.parameters
    assert schema.required == ["x"]
    assert schema.properties["x"] == {"type": "integer", "title": "x", "position": 0}
    assert schema.properties["y"] == {"type": "string", "title": "y", "position": 1, "default": "a"}
    assert set(schema.model_dump()) == {"title", "type", "properties", "required", "definitions"}


def test_validate_parameters():
    # Prefect: tests/test_flows.py::TestFlowParameterTypes::test_flow_parameter_annotations_can_be_coerced
    # (Flow.validate_parameters coerces, and raises ParameterTypeError naming the parameter)
    @flow
    def my_flow(x: int, y: str = "a"):
        pass

    assert my_flow.validate_parameters({"x": "3"}) == {"x": 3}
    with pytest.raises(ParameterTypeError, match="x"):
        my_flow.validate_parameters({"x": "three"})
    with pytest.raises(TypeError, match="unexpected parameters: z"):
        my_flow.validate_parameters({"x": 1, "z": 2})
    assert my_flow.should_validate_parameters is True
    assert my_flow.with_options(validate_parameters=False).validate_parameters({"x": "three"}) == {"x": "three"}


@pytest.mark.parametrize("decorator", [task, flow])
def test_with_options_can_unset_timeout_seconds_with_zero(decorator):
    # Prefect: tests/test_tasks.py::TestTaskWithOptions::test_with_options_can_unset_timeout_seconds_with_zero,
    # tests/test_flows.py::TestFlowWithOptions::test_with_options_can_unset_timeout_seconds_with_zero
    @decorator(timeout_seconds=1)
    def fn():
        return 1

    assert fn.with_options(timeout_seconds=0).timeout_seconds is None
    with pytest.raises(ValueError, match="timeout_seconds must be positive"):
        fn.with_options(timeout_seconds=-1)


def test_conflicting_cache_options_are_warned_about(caplog):
    # Prefect: src/prefect/tasks.py ("Both `cache_policy` and `cache_key_fn` are set ... `cache_key_fn` will be used",
    # "Ignoring `cache_policy` because `persist_result` is False")
    @task(cache_policy=INPUTS, cache_key_fn=lambda context, parameters: "fixed")
    def both(x):
        return x

    @task(cache_policy=INPUTS, persist_result=False)
    def unpersisted(x):
        return x

    assert "`cache_key_fn` will be used" in caplog.text
    assert "ignoring `cache_policy` because `persist_result` is False" in caplog.text
    assert unpersisted.cache_policy is None and both.cache_policy is not None
