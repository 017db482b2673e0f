"""How the Recorder folds a drained batch: a run's pending call, Running and final state."""

from __future__ import annotations

import collections
import time

from prefect_like.tracking.events import MAX_POINTS, Event, MetricPoint, PendingCall, fold

FLOW = "e" * 32


def pending(i: int, created: float | None = None) -> PendingCall:
    return PendingCall(f"{FLOW[:12]}-r{i}", FLOW, time.time() if created is None else created, "train", i, None, None)


def final(call: PendingCall, **data: object) -> Event:
    return Event("task", call.task_run_id, 2, FLOW, 3.0, "COMPLETED", "Completed", None, data)


def finished(call: PendingCall) -> Event:
    """A final event as the engine makes it: saying what the Pending and Running said."""
    return final(call, run_count=1, task_name="train", map_index=call.map_index, created=call.created, started=2.0)


def test_a_run_that_ends_in_its_calls_batch_is_one_event_that_says_everything():
    call = pending(0)
    running = Event("task", call.task_run_id, 1, FLOW, 2.0, "RUNNING", "Running", None, {"run_count": 1})
    end = finished(call)
    counts: dict = collections.defaultdict(collections.Counter)
    events, markers, carried = fold([call, running, end], counts)
    assert events == [end] and markers == [] and carried == []
    assert counts[FLOW] == {"Completed": 1}


def test_a_call_still_pending_becomes_its_pending_event_unless_it_is_young_enough_to_carry():
    old, young = pending(0, created=time.time() - 60), pending(1)
    events, _, carried = fold([old, young], None, carry_from=time.time() - 1)
    assert [(e.run_id, e.state_name, e.timestamp) for e in events] == [(old.task_run_id, "Pending", old.created)]
    assert events[0].data == {"task_name": "train", "map_index": 0}
    assert carried == [young]
    # In the next batch the carried call meets its final event and folds into it.
    end = finished(young)
    events, _, carried = fold([*carried, end], None, carry_from=time.time() - 1)
    assert events == [end] and carried == []


def test_a_batch_with_a_flush_marker_carries_nothing_over():
    call = pending(0)
    marker = object()
    events, markers, carried = fold([call, marker], None, carry_from=0.0)
    assert [e.state_name for e in events] == ["Pending"] and markers == [marker] and carried == []


def test_a_final_event_without_the_runs_details_gets_them_from_its_pending_call():
    call = pending(7)
    cancelled = Event("task", call.task_run_id, 1, FLOW, 3.0, "CANCELLED", "Cancelled", "interrupted", {"parameters": {}})
    [event], _, _ = fold([call, cancelled], None)
    assert event.state_name == "Cancelled"
    assert event.data == {"task_name": "train", "map_index": 7, "created": call.created, "parameters": {}}


def point(run_id: str, seq: int, step: int, loss: float) -> MetricPoint:
    return MetricPoint(run_id, seq, FLOW, 1.0 + seq, step, {"loss": loss})


def test_the_reports_of_a_run_in_a_batch_become_one_metric_event_before_its_end():
    # A trial reporting ten steps costs the Recorder, the wire and the writer one event.
    a, b = pending(0), pending(1)
    batch = [a, b, point(a.task_run_id, 0, 0, 1.0), point(b.task_run_id, 0, 0, 2.0),
             point(a.task_run_id, 1, 1, 0.5), finished(a), point(b.task_run_id, 1, 1, 1.5), finished(b)]
    events, _, _ = fold(batch, None)
    assert [(e.kind, e.run_id) for e in events] == [
        ("metric", a.task_run_id), ("metric", b.task_run_id), ("task", a.task_run_id), ("task", b.task_run_id)
    ]
    assert events[0].seq == 0 and events[0].timestamp == 1.0 and events[0].flow_run_id == FLOW
    assert events[0].data == {"points": [(0, 1.0, 0, {"loss": 1.0}), (1, 2.0, 1, {"loss": 0.5})]}
    assert events[1].data == {"points": [(0, 1.0, 0, {"loss": 2.0}), (1, 2.0, 1, {"loss": 1.5})]}


def test_a_metric_event_holds_at_most_max_points():
    run = pending(0).task_run_id
    events, _, _ = fold([point(run, i, i, 0.0) for i in range(2 * MAX_POINTS + 1)], None)
    assert [len(e.data["points"]) for e in events] == [MAX_POINTS, MAX_POINTS, 1]
    assert [e.seq for e in events] == [0, MAX_POINTS, 2 * MAX_POINTS]
