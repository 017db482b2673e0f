"""What a flow call returns and which final state it ends in, as Prefect 3 pins it down.

Sources: Prefect's tests/test_flows.py (TestFlowCall), tests/test_states.py
(TestReturnValueToStateSync: ``return_value_to_state`` in src/prefect/states.py, expressed here
through what a flow returns), and the "Final state determination" section of
docs/v3/concepts/flows.mdx.
"""

import pydantic
import pytest

from prefect_like import State, StateType, flow, task
from prefect_like.errors import ParameterTypeError
from prefect_like.states import Cancelled, Completed, Failed, Pending, Running

from ._support import async_test


def _error_equal(found: object, expected: BaseException | None) -> bool:
    """Prefect's ``exceptions_equal``: same type and same message (None matches None)."""
    if expected is None:
        return found is None
    return type(found) is type(expected) and str(found) == str(expected)


# -- values, parameters, return_state -----------------------------------------------------------


def test_call_returns_the_value_and_stores_the_parameters(store):
    # Prefect: tests/test_flows.py::TestFlowCall::test_call_creates_flow_run_and_runs
    @flow(name="foo-call")
    def foo(x, y=3, z=3):
        return x + y + z

    assert foo(1, 2) == 6
    runs = store().list_flow_runs(flow_name="foo-call")
    assert len(runs) == 1
    assert runs[0]["parameters"] == {"x": 1, "y": 2, "z": 3}
    assert runs[0]["state"] == "COMPLETED"


@async_test
async def test_async_call_returns_the_value_and_stores_the_parameters(store):
    # Prefect: tests/test_flows.py::TestFlowCall::test_async_call_creates_flow_run_and_runs
    @flow(name="foo-async-call")
    async def foo(x, y=3, z=3):
        return x + y + z

    assert await foo(1, 2) == 6
    runs = store().list_flow_runs(flow_name="foo-async-call")
    assert len(runs) == 1
    assert runs[0]["parameters"] == {"x": 1, "y": 2, "z": 3}


def test_call_with_return_state_true():
    # Prefect: tests/test_flows.py::TestFlowCall::test_call_with_return_state_true
    @flow
    def foo(x, y=3, z=3):
        return x + y + z

    state = foo(1, 2, return_state=True)
    assert isinstance(state, State)
    assert state.is_completed()
    assert state.result() == 6


def test_return_state_state_is_the_stored_flow_run(store):
    # Prefect: tests/test_flows.py::TestFlowCall::test_call_with_return_state_true, with the run
    # read back as get_most_recent_flow_run would
    @flow
    def foo():
        return 1

    state = foo(return_state=True)
    stored = store().get_flow_run(state.run_id)
    assert stored["state"] == "COMPLETED"
    assert stored["state_name"] == "Completed"


def test_call_coerces_parameter_types():
    # Prefect: tests/test_flows.py::TestFlowCall::test_call_coerces_parameter_types
    class CustomType(pydantic.BaseModel):
        z: int

    @flow
    def foo(x: int, y: list[int], zt: CustomType):
        return x + sum(y) + zt.z

    assert foo(x="1", y=["2", "3"], zt=CustomType(z=4).model_dump()) == 10


def test_call_with_variadic_args():
    # Prefect: tests/test_flows.py::TestFlowCall::test_call_with_variadic_args
    @flow
    def test_flow(*foo, bar):
        return foo, bar

    assert test_flow(1, 2, 3, bar=4) == ((1, 2, 3), 4)


def test_call_with_variadic_keyword_args():
    # Prefect: tests/test_flows.py::TestFlowCall::test_call_with_variadic_keyword_args
    @flow
    def test_flow(foo, bar, **foobar):
        return foo, bar, foobar

    assert test_flow(1, 2, x=3, y=4, z=5) == (1, 2, dict(x=3, y=4, z=5))


def test_incompatible_parameters_with_return_state_give_a_failed_state():
    # Prefect: tests/test_flows.py::TestFlowCall::test_fails_but_does_not_raise_on_incompatible_parameter_types
    @flow
    def foo(x: int):
        pass

    state = foo(x="foo", return_state=True)
    assert isinstance(state, State)
    assert state.is_failed()
    with pytest.raises(ParameterTypeError):
        state.result()
    assert isinstance(state.result(raise_on_failure=False), ParameterTypeError)


def test_incompatible_parameters_raise_parameter_type_error_when_called():
    # Prefect: tests/test_flows.py::TestFlowCall::test_fails_but_does_not_raise_on_incompatible_parameter_types
    # (the same flow called without return_state raises its state's exception)
    @flow
    def foo(x: int):
        pass

    with pytest.raises(ParameterTypeError):
        foo(x="foo")


def test_incompatible_parameter_types_are_ignored_if_asked():
    # Prefect: tests/test_flows.py::TestFlowCall::test_call_ignores_incompatible_parameter_types_if_asked
    @flow(validate_parameters=False)
    def foo(x: int):
        return x

    assert foo(x="foo") == "foo"


@pytest.mark.parametrize("error", [ValueError("Hello"), None])
def test_final_state_reflects_exceptions_during_run(error):
    # Prefect: tests/test_flows.py::TestFlowCall::test_final_state_reflects_exceptions_during_run
    @flow
    def foo():
        if error:
            raise error

    state = foo(return_state=True)
    assert state.is_failed() if error else state.is_completed()
    assert _error_equal(state.result(raise_on_failure=False), error)


def test_exception_raised_in_flow_is_raised_by_the_call():
    # Prefect: docs/v3/concepts/flows.mdx "Final state determination": an exception raised
    # directly in the flow function marks the run FAILED (and the call raises it)
    @flow
    def foo():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        foo()


# -- a returned manual State --------------------------------------------------------------------


def test_final_state_respects_returned_state():
    # Prefect: tests/test_flows.py::TestFlowCall::test_final_state_respects_returned_state
    @flow
    def foo():
        return State(type=StateType.FAILED, message="Test returned state", data="hello!")

    state = foo(return_state=True)
    assert state.is_failed()
    assert state.result(raise_on_failure=False) == "hello!"
    assert state.message == "Test returned state"


def test_returned_failed_state_is_stored_as_the_flow_run_state(store):
    # Prefect: tests/test_flows.py::TestFlowCall::test_final_state_respects_returned_state
    # (the state the API records is the returned one)
    @flow
    def foo():
        return Failed(message="Test returned state")

    state = foo(return_state=True)
    stored = store().get_flow_run(state.run_id)
    assert stored["state"] == "FAILED"
    assert stored["message"] == "Test returned state"


def test_flow_can_end_in_cancelled_state():
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_can_end_in_cancelled_state
    @flow
    def my_flow():
        return Cancelled()

    flow_state = my_flow(return_state=True)
    assert flow_state.is_cancelled()


def test_returned_completed_state_keeps_its_message_and_data():
    # Prefect: tests/test_states.py::TestReturnValueToStateSync::test_returns_single_state_unaltered
    @flow
    def foo():
        return Completed(data="hello!", message="done by hand")

    state = foo(return_state=True)
    assert state.is_completed()
    assert state.message == "done by hand"
    assert state.result() == "hello!"
    assert foo() == "hello!"


def test_custom_named_state_skipped():
    # Prefect: docs/v3/concepts/flows.mdx "Custom named states"
    @flow
    def my_flow(work_to_do: bool):
        if not work_to_do:
            return Completed(message="No work to do 💤", name="Skipped")
        return Completed(message="Work was done 💪")

    skipped = my_flow(work_to_do=False, return_state=True)
    assert skipped.is_completed()
    assert skipped.type == StateType.COMPLETED
    assert skipped.name == "Skipped"
    assert skipped.message == "No work to do 💤"
    done = my_flow(work_to_do=True, return_state=True)
    assert done.name == "Completed"
    assert done.message == "Work was done 💪"


def test_custom_named_state_is_stored(store):
    # Prefect: docs/v3/concepts/flows.mdx "Custom named states" (the UI shows the run as Skipped)
    @flow
    def my_flow():
        return Completed(message="No work to do", name="Skipped")

    state = my_flow(return_state=True)
    stored = store().get_flow_run(state.run_id)
    assert stored["state"] == "COMPLETED"
    assert stored["state_name"] == "Skipped"


def test_returned_failed_state_makes_the_call_raise():
    # Prefect: tests/test_flows.py::TestFlowCall::test_final_state_respects_returned_state
    # (a flow called without return_state raises its final state's exception)
    @flow
    def foo():
        return Failed(message="Test returned state")

    with pytest.raises(Exception, match="Test returned state"):
        foo()


# -- returned task states and futures: the aggregate rule ------------------------------------------


def test_flow_state_reflects_returned_task_run_state():
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_state_reflects_returned_task_run_state
    @task
    def fail():
        raise ValueError("Test")

    @flow
    def foo():
        return fail(return_state=True)

    flow_state = foo(return_state=True)
    assert flow_state.is_failed()
    task_run_state = flow_state.result(raise_on_failure=False)
    assert isinstance(task_run_state, State)
    assert task_run_state.is_failed()
    with pytest.raises(ValueError, match="Test"):
        task_run_state.result()


def test_single_returned_failed_task_state_message():
    # Prefect: src/prefect/states.py::return_value_to_state (a task run's state is aggregated:
    # "1/1 states failed.")
    @task
    def fail():
        raise ValueError("Test")

    @flow
    def foo():
        return fail(return_state=True)

    assert foo(return_state=True).message == "1/1 states failed."


def test_returned_completed_task_state_gives_that_state_as_the_result():
    # Prefect: tests/test_tasks.py::TestTaskRun::test_task_with_return_state_true
    # and tests/test_states.py::TestReturnValueToStateSync::test_single_state_in_future_is_processed
    @task
    def foo(x):
        return x

    @flow
    def bar():
        return foo(1, return_state=True)

    flow_state = bar(return_state=True)
    assert flow_state.is_completed()
    assert flow_state.message == "All states completed."
    task_state = flow_state.result()
    assert isinstance(task_state, State)
    assert task_state.result() == 1
    assert isinstance(bar(), State)


def test_flow_state_reflects_returned_multiple_task_run_states():
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_state_reflects_returned_multiple_task_run_states
    @task
    def fail1():
        raise ValueError("Test 1")

    @task
    def fail2():
        raise ValueError("Test 2")

    @task
    def succeed():
        return True

    @flow
    def foo():
        return (
            fail1(return_state=True),
            fail2(return_state=True),
            succeed(return_state=True),
        )

    flow_state = foo(return_state=True)
    assert flow_state.is_failed()
    assert flow_state.message == "2/3 states failed."
    first, second, third = flow_state.result(raise_on_failure=False)
    assert first.is_failed()
    assert second.is_failed()
    assert third.is_completed()
    with pytest.raises(ValueError, match="Test 1"):
        first.result()
    with pytest.raises(ValueError, match="Test 2"):
        second.result()


def test_calling_a_flow_that_returned_failed_states_raises_the_first_failure():
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_state_reflects_returned_multiple_task_run_states
    # (the call raises the state's exception: the first failed state's, as raise_state_exception does)
    @task
    def fail1():
        raise ValueError("Test 1")

    @task
    def succeed():
        return True

    @flow
    def foo():
        return succeed(return_state=True), fail1(return_state=True)

    with pytest.raises(ValueError, match="Test 1"):
        foo()


def test_flow_state_with_cancelled_tasks_has_cancelled_state():
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_state_with_cancelled_tasks_has_cancelled_state
    @task
    def cancel():
        return Cancelled()

    @task
    def fail():
        raise ValueError("Fail")

    @task
    def succeed():
        return True

    @flow
    def my_flow():
        return cancel.submit(), succeed.submit(), fail.submit()

    flow_state = my_flow(return_state=True)
    assert flow_state.is_cancelled()
    assert flow_state.message == "1/3 states cancelled."
    first, second, third = flow_state.result(raise_on_failure=False)
    assert first.is_cancelled()
    assert second.is_completed()
    assert third.is_failed()
    # Prefect raises CancelledRun; what matters is that a cancelled run's result raises
    with pytest.raises(Exception, match="(?i)cancel"):
        first.result()


def test_flow_with_cancelled_subflow_has_cancelled_state():
    # Prefect: tests/test_flows.py::TestFlowCall::test_flow_with_cancelled_subflow_has_cancelled_state
    @task
    def cancel():
        return Cancelled()

    @flow
    def subflow():
        return cancel.submit()

    @flow
    def my_flow():
        return subflow(return_state=True)

    flow_state = my_flow(return_state=True)
    assert flow_state.is_cancelled()
    assert flow_state.message == "1/1 states cancelled."


def test_all_completed_returned_states():
    # Prefect: tests/test_states.py::TestReturnValueToStateSync::test_all_completed_states
    @task
    def hi():
        return "hi"

    @flow
    def foo():
        return [hi(return_state=True), hi(return_state=True)]

    state = foo(return_state=True)
    assert state.is_completed()
    assert state.message == "All states completed."
    result = state.result()
    assert isinstance(result, list) and len(result) == 2
    assert [s.result() for s in result] == ["hi", "hi"]


def test_some_failed_returned_manual_states_in_a_list():
    # Prefect: tests/test_states.py::TestReturnValueToStateSync::test_some_failed_states
    # (manual states inside a list are aggregated: only a single manual state is used as given)
    states = [Completed(message="hi"), Failed(message="bye"), Failed(message="err")]

    @flow
    def foo():
        return states

    result_state = foo(return_state=True)
    assert result_state.is_failed()
    assert result_state.message == "2/3 states failed."
    assert result_state.result(raise_on_failure=False) == states


def test_some_cancelled_returned_manual_states_in_a_list():
    # Prefect: tests/test_states.py::TestReturnValueToStateSync::test_some_cancelled_states
    states = [Completed(message="hi"), Cancelled(message="bye")]

    @flow
    def foo():
        return states

    result_state = foo(return_state=True)
    assert result_state.is_cancelled()
    assert result_state.message == "1/2 states cancelled."
    assert result_state.result(raise_on_failure=False) == states


def test_all_completed_manual_states_in_a_list():
    # Prefect: tests/test_states.py::TestReturnValueToStateSync::test_all_completed_states
    states = [Completed(message="hi"), Completed(message="bye")]

    @flow
    def foo():
        return states

    result_state = foo(return_state=True)
    assert result_state.is_completed()
    assert result_state.message == "All states completed."
    assert result_state.result() == states


def test_some_unfinal_manual_states_in_a_list():
    # Prefect: tests/test_states.py::TestReturnValueToStateSync::test_some_unfinal_states
    states = [Completed(message="hi"), Running(message="bye"), Pending(message="err")]

    @flow
    def foo():
        return states

    result_state = foo(return_state=True)
    assert result_state.is_failed()
    assert result_state.message == "2/3 states are not final."
    assert result_state.result(raise_on_failure=False) == states


def test_a_returned_set_of_states_is_aggregated():
    # Prefect: docs/v3/concepts/flows.mdx "Return multiple states or futures": "If multiple states
    # are returned, they must be contained in a set, list, or tuple."
    @task
    def fail():
        raise ValueError("x")

    @task
    def succeed():
        return 1

    @flow
    def foo():
        return {fail(return_state=True), succeed(return_state=True)}

    state = foo(return_state=True)
    assert state.is_failed()
    assert state.message == "1/2 states failed."


def test_flow_returning_a_future_returns_its_state():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_sync_task_submitted_inside_sync_flow
    @task
    def foo(x):
        return x

    @flow
    def bar():
        return foo.submit(1)

    task_state = bar()
    assert isinstance(task_state, State)
    assert task_state.result() == 1


def test_flow_returning_a_future_of_a_failed_task_fails():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_downstream_does_not_run_if_upstream_fails
    @task
    def fails():
        raise ValueError("Fail task!")

    @task
    def bar(y):
        return y

    @flow
    def test_flow():
        f = fails.submit()
        return bar.submit(f)

    flow_state = test_flow(return_state=True)
    assert not flow_state.is_completed()
    task_state = flow_state.result(raise_on_failure=False)
    assert isinstance(task_state, State)
    assert task_state.is_pending()
    assert task_state.name == "NotReady"


def test_flow_returning_mapped_futures_returns_a_plain_list_of_states():
    # Prefect: tests/test_futures.py::TestFlowReturningMappedFutures::test_flow_returning_mapped_task_result
    @task
    def add_one(x: int) -> int:
        return x + 1

    @flow
    def my_flow():
        return add_one.map([1, 2, 3])

    result = my_flow()
    assert type(result) is list
    assert all(isinstance(s, State) for s in result)
    assert [s.result() for s in result] == [2, 3, 4]


def test_flow_returning_mix_of_futures_and_values_in_dict_is_completed():
    # Prefect: docs/v3/concepts/flows.mdx "Final state determination": "In any other situation in
    # which the flow returns without error, it will be marked as COMPLETED."
    @flow
    def foo():
        return {"a": 1, "b": [2, 3]}

    state = foo(return_state=True)
    assert state.is_completed()
    assert state.result() == {"a": 1, "b": [2, 3]}


def test_task_failure_does_not_affect_flow():
    # Prefect: tests/test_tasks.py::TestTaskRun::test_task_failure_does_not_affect_flow
    @task
    def foo():
        raise ValueError("Test")

    @flow
    def bar():
        foo(return_state=True)
        return "bar"

    assert bar() == "bar"
    assert bar(return_state=True).is_completed()


def test_submitted_task_failure_does_not_affect_flow():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_task_failure_does_not_affect_flow
    @task
    def foo():
        raise ValueError("Test")

    @flow
    def bar():
        foo.submit()
        return "bar"

    assert bar() == "bar"


# -- generators ------------------------------------------------------------------------------------


def test_flow_returning_a_generator_has_it_consumed_to_a_list():
    # Prefect: docs/v3/concepts/flows.mdx "Generator functions are consumed when returned from flows"
    consumed = []

    def gen():
        yield from [1, 2, 3]
        consumed.append(True)

    @flow
    def f():
        return gen()

    assert f() == [1, 2, 3]
    assert consumed == [True]


def test_returned_generator_gives_a_completed_state_with_a_list():
    # Prefect: tests/test_states.py::TestReturnValueToStateSync::test_generator_converted_to_list
    def gen():
        yield 1
        yield 2
        yield 3

    @flow
    def f():
        return gen()

    state = f(return_state=True)
    assert state.is_completed()
    assert state.result() == [1, 2, 3]
