"""The State vocabulary and ``State.result``, as Prefect 3 pins them down.

Sources: Prefect's tests/test_states.py (TestRaiseStateException: what ``state.result()`` raises,
since ``State.result`` raises through ``raise_state_exception``; test_state_returns_expected_result;
TestReturnValueToStateSync), src/prefect/states.py (the named constructors and their types), and
the state table of docs/v3/concepts/states.mdx. The constructors are called with keywords, as
Prefect's take only keywords (``Failed(message=..., data=...)``).
"""

import pytest

from prefect_like import State, StateType, flow, quote, task
from prefect_like.states import (
    Cached,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Pending,
    Retrying,
    Running,
    TimedOut,
)

ERROR_STATES = [Failed, Crashed, Cancelled]


# -- types and names (docs/v3/concepts/states.mdx, the state table) ------------------------------------


@pytest.mark.parametrize(
    "make,name,type_,final",
    [
        (Pending, "Pending", StateType.PENDING, False),
        (Running, "Running", StateType.RUNNING, False),
        (Retrying, "Retrying", StateType.RUNNING, False),
        (Completed, "Completed", StateType.COMPLETED, True),
        (Cached, "Cached", StateType.COMPLETED, True),
        (Failed, "Failed", StateType.FAILED, True),
        (TimedOut, "TimedOut", StateType.FAILED, True),
        (Crashed, "Crashed", StateType.CRASHED, True),
        (Cancelled, "Cancelled", StateType.CANCELLED, True),
    ],
)
def test_state_names_types_and_terminality(make, name, type_, final):
    # Prefect: docs/v3/concepts/states.mdx "State types" (Name | Type | Terminal?)
    state = make()
    assert state.name == name
    assert state.type == type_
    assert state.is_final() is final


def test_state_predicates():
    # Prefect: src/prefect/client/schemas/objects.py State.is_* (one per type)
    assert Completed().is_completed() and not Completed().is_failed()
    assert Failed().is_failed() and not Failed().is_completed()
    assert Crashed().is_crashed() and not Crashed().is_failed()
    assert Cancelled().is_cancelled()
    assert Pending().is_pending()
    assert Running().is_running()
    assert Retrying().is_running()
    assert TimedOut().is_failed()
    assert Cached().is_completed()


def test_named_constructor_takes_a_name_of_ones_own():
    # Prefect: docs/v3/concepts/flows.mdx "Custom named states" (Completed(name="Skipped"))
    state = Completed(message="No work to do", name="Skipped")
    assert state.name == "Skipped"
    assert state.type == StateType.COMPLETED
    assert state.is_completed()
    assert state.message == "No work to do"


def test_state_constructed_with_keywords():
    # Prefect: tests/test_flows.py::TestFlowCall::test_final_state_respects_returned_state
    state = State(type=StateType.FAILED, message="Test returned state", data="hello!")
    assert state.is_failed()
    assert state.message == "Test returned state"
    assert state.result(raise_on_failure=False) == "hello!"


def test_state_type_values():
    # Prefect: src/prefect/client/schemas/objects.py StateType (string values)
    assert StateType.COMPLETED.value == "COMPLETED"
    assert StateType.FAILED.value == "FAILED"
    assert StateType.CRASHED.value == "CRASHED"
    assert StateType.CANCELLED.value == "CANCELLED"
    assert StateType.PENDING.value == "PENDING"
    assert StateType.RUNNING.value == "RUNNING"


# -- State.result --------------------------------------------------------------------------------------


def test_state_returns_expected_result():
    # Prefect: tests/test_states.py::test_state_returns_expected_result
    state = Completed(data="test")
    assert state.result() == "test"


def test_completed_state_without_data_has_none_result():
    # Prefect: tests/test_states.py::TestReturnValueToStateSync::test_returns_single_state_with_null_data
    assert Completed().result() is None
    assert Completed(data=None).result() is None


@pytest.mark.parametrize("state_cls", ERROR_STATES)
def test_result_raises_the_state_exception(state_cls):
    # Prefect: tests/test_states.py::TestRaiseStateException::test_raises_state_exception
    with pytest.raises(ValueError, match="Test"):
        state_cls(data=ValueError("Test")).result()


@pytest.mark.parametrize("state_cls", ERROR_STATES)
def test_result_with_raise_on_failure_false_returns_the_exception(state_cls):
    # Prefect: tests/test_tasks.py::TestTaskFutures::test_result_returns_exception_from_task_if_asked
    error = ValueError("Test")
    assert state_cls(data=error).result(raise_on_failure=False) is error


@pytest.mark.parametrize("state_cls", ERROR_STATES)
def test_result_raises_nested_state_exception(state_cls):
    # Prefect: tests/test_states.py::TestRaiseStateException::test_raises_nested_state_exception
    with pytest.raises(ValueError, match="Test"):
        state_cls(data=Failed(data=ValueError("Test"))).result()


@pytest.mark.parametrize("state_cls", ERROR_STATES)
def test_result_raises_first_nested_multistate_exception(state_cls):
    # Prefect: tests/test_states.py::TestRaiseStateException::test_raises_first_nested_multistate_exception
    inner_states = [
        Completed(data="test"),
        Failed(data=ValueError("Test")),
        Failed(data=ValueError("Should not be raised")),
    ]
    with pytest.raises(ValueError, match="Test"):
        state_cls(data=inner_states).result()


@pytest.mark.parametrize("state_cls", ERROR_STATES)
def test_result_raises_base_exception(state_cls):
    # Prefect: tests/test_states.py::TestRaiseStateException::test_raises_base_exception
    with pytest.raises(BaseException, match="foo") as raised:
        state_cls(data=BaseException("foo")).result()
    assert type(raised.value) is BaseException


@pytest.mark.parametrize("state_cls", ERROR_STATES)
def test_result_raises_with_state_message_if_result_is_null(state_cls):
    # Prefect: tests/test_states.py::TestRaiseStateException::test_raises_wrapper_with_state_message_if_result_is_null
    # (Prefect raises FailedRun / CrashedRun / CancelledRun with the message)
    with pytest.raises(Exception, match="foo"):
        state_cls(data=None, message="foo").result()


def test_failed_state_message_is_kept():
    # Prefect: docs/v3/concepts/states.mdx "Task return values" (Failed(message="I was instructed to fail."))
    state = Failed(message="I was instructed to fail.")
    assert state.message == "I was instructed to fail."
    assert state.is_failed()
    with pytest.raises(Exception, match="I was instructed to fail."):
        state.result()


def test_failed_state_with_non_exception_data_returns_it_if_asked():
    # Prefect: tests/test_states.py::TestReturnValueToStateSync::test_some_failed_states
    # (result(raise_on_failure=False) of a FAILED state whose data is not an exception gives the data)
    states = [Completed(message="hi"), Failed(message="bye")]
    state = State(type=StateType.FAILED, message="1/2 states failed.", data=states)
    assert state.result(raise_on_failure=False) == states


def test_pending_and_running_states_have_no_result():
    # Prefect: src/prefect/states.py get_state_result (a non-final state's result is not available;
    # Prefect raises UnfinishedRun)
    with pytest.raises(Exception):  # noqa: B017 (Prefect's UnfinishedRun; ours RunNotFinishedError)
        Pending().result()
    with pytest.raises(Exception):  # noqa: B017
        Running().result()


# -- the states a run ends in ----------------------------------------------------------------------


def test_task_run_state_types_after_a_flow():
    # Prefect: tests/test_tasks.py::TestTaskStates::test_final_state_reflects_exceptions_during_run
    @task
    def ok():
        return 1

    @task
    def bad():
        raise ValueError("x")

    @flow
    def my_flow():
        return quote((ok(return_state=True), bad(return_state=True)))

    good, failed = my_flow().unquote()
    assert good.type == StateType.COMPLETED
    assert good.name == "Completed"
    assert failed.type == StateType.FAILED
    assert failed.name == "Failed"


def test_flow_state_repr_types():
    # Prefect: tests/test_flows.py::TestFlowCall::test_call_with_return_state_true
    @flow
    def my_flow():
        return 1

    state = my_flow(return_state=True)
    assert isinstance(state, State)
    assert state.type == StateType.COMPLETED
    assert state.name == "Completed"
    assert state.is_final()
