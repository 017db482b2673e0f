"""A map over a generator of a million items: submission is bounded, and every run is recorded."""

from __future__ import annotations

import threading

import pytest

from prefect_like import ThreadPoolTaskRunner, flow, settings, task
from prefect_like.tracking.store import Store

MILLION = 1_000_000


@pytest.mark.slow
def test_a_million_item_generator_is_mapped_with_bounded_submission_and_fully_recorded():
    window = 500
    pulled = 0
    finished = 0
    most_in_flight = 0
    submitter_reached_window = threading.Event()

    def items():
        nonlocal pulled, most_in_flight
        for i in range(MILLION):
            pulled += 1
            most_in_flight = max(most_in_flight, pulled - finished)
            if pulled == window:
                submitter_reached_window.set()
            yield i

    @task
    def plus_one(x: int) -> int:
        nonlocal finished
        if x == 0:  # hold the only worker until submission has filled the window
            submitter_reached_window.wait()
        finished += 1  # one worker: no race
        return x + 1

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1, max_in_flight=window))
    def sweep() -> int:
        return sum(future.result() for future in plus_one.map(items()))

    state = sweep(return_state=True)
    assert state.result() == MILLION * (MILLION + 1) // 2
    # Never more than the window unfinished, plus the batch being handed to the worker.
    assert window <= most_in_flight <= window + ThreadPoolTaskRunner.MAX_BATCH + 1
    with Store(settings.database_path()) as store:
        assert store.get_flow_run(state.run_id)["task_runs"] == {"Completed": MILLION}
