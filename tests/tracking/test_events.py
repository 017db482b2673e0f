"""How the Recorder folds a drained batch: a run's pending call, Running and final state."""

from __future__ import annotations

import collections
import time

from prefect_like import flow, task
from prefect_like.context import flow_run_context
from prefect_like.tracking.events import Event, fold

FLOW = "e" * 32


def final(run_id: str, data: dict | None = None) -> Event:
    return Event("task", run_id, 2, FLOW, 3.0, "COMPLETED", "Completed", None, data)


def calls(n: int, map_index_from: int = 0) -> list:
    """Real task calls, made the way a flow body makes them."""
    made: list = []

    @task
    def train(lr: float) -> float:
        return lr

    @flow
    def sweep() -> None:
        context = flow_run_context.get()
        for i in range(n):
            made.append(train._call(context, {"lr": i / 10}, None, map_index_from + i))

    sweep()
    return made


def test_a_run_that_ends_in_its_calls_batch_is_one_event_that_says_everything():
    [call] = calls(1)
    running = Event("task", call.task_run_id, 1, FLOW, 2.0, "RUNNING", "Running", None, {"run_count": 1})
    end = final(call.task_run_id, call.describe({"run_count": 1, "created": call.created, "started": 2.0}))
    counts: dict = collections.defaultdict(collections.Counter)
    events, markers, carried = fold([call, running, end], counts)
    assert events == [end] and markers == [] and carried == []
    assert counts[FLOW] == {"Completed": 1}


def test_a_call_still_pending_becomes_its_pending_event_unless_it_is_young_enough_to_carry():
    old, young = calls(2)
    old.created = time.time() - 60
    events, _, carried = fold([old, young], None, carry_from=time.time() - 1)
    assert [(e.run_id, e.state_name) for e in events] == [(old.task_run_id, "Pending")]
    assert events[0].data == {"task_name": "train", "map_index": 0}
    assert events[0].timestamp == old.created
    assert carried == [young]
    # In the next batch the carried call meets its final event and folds into it.
    end = final(young.task_run_id, young.describe({"run_count": 1, "created": young.created, "started": 2.0}))
    events, _, carried = fold([*carried, end], None, carry_from=time.time() - 1)
    assert events == [end] and carried == []


def test_a_batch_with_a_flush_marker_carries_nothing_over():
    [call] = calls(1)
    marker = object()
    events, markers, carried = fold([call, marker], None, carry_from=0.0)
    assert [e.state_name for e in events] == ["Pending"] and markers == [marker] and carried == []


def test_a_final_event_without_the_runs_details_gets_them_from_its_pending_call():
    [call] = calls(1, map_index_from=7)
    cancelled = Event("task", call.task_run_id, 1, FLOW, 3.0, "CANCELLED", "Cancelled", "interrupted", {"parameters": {}})
    [event], _, _ = fold([call, cancelled], None)
    assert event.state_name == "Cancelled"
    assert event.data == {"task_name": "train", "map_index": 7, "created": call.created, "parameters": {}}
