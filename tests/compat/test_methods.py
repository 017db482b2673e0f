"""Flows and tasks on instance methods, classmethods and staticmethods, as in Prefect 3.

Sources: Prefect's tests/test_flows.py::TestFlowCall::test_flow_supports_* and
tests/test_tasks.py::TestTaskCall::test_task_supports_* (each parametrized over a plain class
and a pydantic model, as there), and docs/v3/concepts/flows.mdx "Supported function types".
"""

import sys

import pydantic
import pytest

from prefect_like import Flow, Task, flow, task
from prefect_like.context import get_run_context

from ._support import async_test


class BaseFooModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(ignored_types=(Flow, Task))
    x: int


class BaseFoo:
    def __init__(self, x):
        self.x = x


BASES = [BaseFoo, BaseFooModel]


# -- flows -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("T", BASES)
def test_flow_supports_instance_methods(T):
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_supports_instance_methods
    class Foo(T):
        @flow
        def instance_method(self):
            return self.x

    f = Foo(x=1)
    assert Foo(x=5).instance_method() == 5
    assert f.instance_method() == 1
    assert isinstance(Foo(x=10).instance_method, Flow)


@pytest.mark.parametrize("T", BASES)
def test_flow_supports_instance_methods_called_with_instance(T):
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_supports_instance_methods_called_with_instance
    class Foo(T):
        @flow
        def instance_method(self):
            return self.x

    f = Foo(x=1)
    assert Foo.instance_method(f) == 1
    assert f.instance_method() == 1


@pytest.mark.parametrize("T", BASES)
def test_flow_supports_class_methods(T):
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_supports_class_methods
    class Foo(T):
        @flow
        @classmethod
        def class_method(cls):
            return cls.__name__

        @classmethod
        @flow
        def class_method_of_a_different_order(cls):
            return cls.__name__

    assert Foo.class_method() == "Foo"
    assert isinstance(Foo.class_method, Flow)
    assert Foo.class_method_of_a_different_order() == "Foo"
    if sys.version_info < (3, 13):
        assert isinstance(Foo.class_method_of_a_different_order, Flow)


@pytest.mark.parametrize("T", BASES)
def test_flow_supports_static_methods(T):
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_supports_static_methods
    class Foo(T):
        @flow
        @staticmethod
        def static_method():
            return "static"

        @staticmethod
        @flow
        def static_method_of_different_order():
            return "static"

    assert Foo.static_method() == "static"
    assert isinstance(Foo.static_method, Flow)
    assert Foo.static_method_of_different_order() == "static"
    assert isinstance(Foo.static_method_of_different_order, Flow)


@pytest.mark.parametrize("T", BASES)
@async_test
async def test_flow_supports_async_instance_methods(T):
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_supports_async_instance_methods
    class Foo(T):
        @flow
        async def instance_method(self):
            return self.x

    f = Foo(x=1)
    assert await Foo(x=5).instance_method() == 5
    assert await f.instance_method() == 1
    assert isinstance(Foo(x=10).instance_method, Flow)


@pytest.mark.parametrize("T", BASES)
@async_test
async def test_flow_supports_async_class_methods(T):
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_supports_async_class_methods
    class Foo(T):
        @flow
        @classmethod
        async def class_method(cls):
            return cls.__name__

    assert await Foo.class_method() == "Foo"
    assert isinstance(Foo.class_method, Flow)


@pytest.mark.parametrize("T", BASES)
@async_test
async def test_flow_supports_async_static_methods(T):
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_supports_async_static_methods
    class Foo(T):
        @staticmethod
        @flow
        async def static_method():
            return "static"

    assert await Foo.static_method() == "static"
    assert isinstance(Foo.static_method, Flow)


def test_flow_supports_instance_methods_with_basemodel():
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_supports_instance_methods_with_basemodel
    class Foo(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(ignored_types=(Flow,))
        x: int = 5

        @flow
        def instance_method(self):
            return self.x

    assert Foo().instance_method() == 5
    assert isinstance(Foo().instance_method, Flow)


def test_flow_method_call_is_a_stored_flow_run(store):
    # Prefect: tests/test_flows.py::TestFlowCall::test_call_creates_flow_run_and_runs, on a method
    class Foo(BaseFoo):
        @flow(name="method-flow")
        def run(self, y):
            return self.x + y

    assert Foo(x=1).run(2) == 3
    (run,) = store().list_flow_runs(flow_name="method-flow")
    assert run["state"] == "COMPLETED"
    assert run["parameters"]["y"] == 2


def test_flow_method_return_state():
    # Prefect: tests/test_flows.py::TestFlowCall::test_call_with_return_state_true, on a method
    class Foo(BaseFoo):
        @flow
        def run(self):
            return self.x

    state = Foo(x=4).run(return_state=True)
    assert state.is_completed()
    assert state.result() == 4


# -- tasks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("T", BASES)
def test_task_supports_instance_methods(T):
    # Prefect: tests/test_tasks.py::TestTaskCall::test_task_supports_instance_methods
    class Foo(T):
        @task
        def instance_method(self):
            return self.x

    f = Foo(x=1)
    assert Foo(x=5).instance_method() == 5
    assert f.instance_method() == 1
    assert isinstance(Foo(x=10).instance_method, Task)


@pytest.mark.parametrize("T", BASES)
def test_task_supports_instance_methods_called_with_instance(T):
    # Prefect: tests/test_tasks.py::TestTaskCall::test_task_supports_instance_methods_called_with_instance
    class Foo(T):
        @task
        def instance_method(self):
            return self.x

    f = Foo(x=1)
    assert Foo.instance_method(f) == 1
    assert f.instance_method() == 1


@pytest.mark.parametrize("T", BASES)
def test_task_supports_class_methods(T):
    # Prefect: tests/test_tasks.py::TestTaskCall::test_task_supports_class_methods
    class Foo(T):
        @task
        @classmethod
        def class_method(cls):
            return cls.__name__

        @classmethod
        @task
        def class_method_of_a_different_order(cls):
            return cls.__name__

    assert Foo.class_method() == "Foo"
    assert isinstance(Foo.class_method, Task)
    assert Foo.class_method_of_a_different_order() == "Foo"
    if sys.version_info < (3, 13):
        assert isinstance(Foo.class_method_of_a_different_order, Task)


@pytest.mark.parametrize("T", BASES)
def test_task_supports_static_methods(T):
    # Prefect: tests/test_tasks.py::TestTaskCall::test_task_supports_static_methods
    class Foo(T):
        @staticmethod
        @task
        def static_method():
            return "static"

        @task
        @staticmethod
        def static_method_of_a_different_order():
            return "static"

    assert Foo.static_method() == "static"
    assert isinstance(Foo.static_method, Task)
    assert Foo.static_method_of_a_different_order() == "static"
    assert isinstance(Foo.static_method_of_a_different_order, Task)


def test_instance_method_doesnt_create_copy_of_self():
    # Prefect: tests/test_tasks.py::TestTaskCall::test_instance_method_doesnt_create_copy_of_self
    class Foo(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(ignored_types=(Flow, Task))

        @task
        def get_x(self):
            return self

    f = Foo()
    assert f.get_x() == f
    assert f.get_x() is f


def test_instance_method_doesnt_create_copy_of_args():
    # Prefect: tests/test_tasks.py::TestTaskCall::test_instance_method_doesnt_create_copy_of_args
    class Foo(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(ignored_types=(Flow, Task))
        x: dict

        @task
        def get_x(self):
            return self.x

    val = dict(a=1)
    f = Foo(x=val)
    assert f.x is not val
    assert f.get_x() == f.x
    assert f.get_x() is f.x


def test_task_run_name_can_access_self_arg_for_instance_methods():
    # Prefect: tests/test_tasks.py::TestTaskCall::test_task_run_name_can_access_self_arg_for_instance_methods
    class Foo:
        a = 10

        @task(task_run_name="{self.a}|{x}")
        def instance_method(self, x):
            return get_run_context().name

    assert Foo().instance_method(x=5) == "10|5"


@pytest.mark.parametrize("T", BASES)
@async_test
async def test_task_supports_async_instance_methods(T):
    # Prefect: tests/test_tasks.py::TestTaskCall::test_task_supports_async_instance_methods
    class Foo(T):
        @task
        async def instance_method(self):
            return self.x

    f = Foo(x=1)
    assert await Foo(x=5).instance_method() == 5
    assert await f.instance_method() == 1
    assert isinstance(Foo(x=10).instance_method, Task)


def test_task_method_submit_and_map_inside_a_flow():
    # Prefect: tests/test_tasks.py::TestTaskCall::test_task_supports_instance_methods, with the
    # bound task submitted and mapped (a bound Task is a Task: submit/map work on it)
    class Foo(BaseFoo):
        @task
        def add(self, y):
            return self.x + y

    @flow
    def my_flow():
        foo = Foo(x=10)
        return foo.add.submit(1).result(), foo.add.map([1, 2, 3]).result()

    assert my_flow() == (11, [11, 12, 13])


def test_task_method_called_in_a_flow_with_return_state():
    # Prefect: tests/test_tasks.py::TestTaskRun::test_task_with_return_state_true, on a method
    class Foo(BaseFoo):
        @task
        def get(self):
            return self.x

    @flow
    def my_flow():
        state = Foo(x=3).get(return_state=True)
        return state.is_completed(), state.result()

    assert my_flow() == (True, 3)
