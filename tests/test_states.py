"""The state vocabulary (prefect_like.states): the facts a user sees in the CLI, the API and the
dashboard, which all read them from there."""

from __future__ import annotations

import json
import pickle

import pytest

from prefect_like.states import (
    Cached,
    Completed,
    Failed,
    NotReady,
    Rescheduled,
    StateType,
    TimedOut,
    did_not_complete,
    is_final,
    vocabulary,
)


def test_not_ready_ends_the_run_and_counts_as_a_failure() -> None:
    state = NotReady("upstream 'load' failed")
    assert state.type is StateType.PENDING and state.is_final()
    assert is_final("PENDING", "NotReady") and not is_final("PENDING", "Pending")
    assert did_not_complete("NotReady")


def test_cached_counts_as_done_and_gives_its_result() -> None:
    state = Cached(42)
    assert state.is_completed() and state.name == "Cached" and state.result() == 42
    facts = vocabulary()
    assert "Cached" in facts["done_names"] and not did_not_complete("Cached")


def test_a_named_completed_state_is_completed_under_its_own_name() -> None:
    # Prefect 3's constructors take name=: Completed(name="Skipped") is a COMPLETED state.
    state = Completed({"rows": 0}, "nothing to do", name="Skipped")
    assert state.type is StateType.COMPLETED and state.name == "Skipped"
    assert state.is_final() and state.result() == {"rows": 0}
    assert pickle.loads(pickle.dumps(state)).name == "Skipped"


def test_timed_out_is_failed_and_raises_its_error() -> None:
    error = TimeoutError("took longer than 5 s")
    state = TimedOut(error=error)
    assert state.type is StateType.FAILED and state.name == "TimedOut" and state.is_final()
    assert state.message == "TimeoutError: took longer than 5 s"
    with pytest.raises(TimeoutError):
        state.result()
    assert did_not_complete("TimedOut") and vocabulary()["names"]["TimedOut"] == "FAILED"


def test_positional_parameters_still_work_and_rescheduled_is_not_final() -> None:
    assert Completed(3, "done").result() == 3
    assert Failed(ValueError("bad"), name="Error").message == "ValueError: bad"
    assert Rescheduled().type is StateType.RUNNING and not Rescheduled().is_final()


def test_the_vocabulary_is_json_and_agrees_with_the_states() -> None:
    facts = json.loads(json.dumps(vocabulary()))
    assert facts["types"] == [t.value for t in StateType]
    assert set(facts["failure_names"]) == {"Failed", "TimedOut", "Crashed", "Cancelled", "NotReady"}
    for name, state_type in facts["names"].items():
        final = state_type in facts["final_types"] or name in facts["final_state_names"]
        assert final == is_final(state_type, name)
        assert (name in facts["failure_names"]) == (final and name not in facts["done_names"])
