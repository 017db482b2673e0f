"""While a flow runs, the store shows its runs as they are: queued ones PENDING, running ones RUNNING."""

from __future__ import annotations

import threading

from prefect_like import flow, settings, task
from prefect_like.task_runners import ThreadPoolTaskRunner
from prefect_like.tracking.store import Store
from tests.polling import wait_until

gate = threading.Event()


@task
def blocked(i: int) -> int:
    gate.wait(60)
    return i


@flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
def queue_of_three() -> list[int]:
    return blocked.map(range(3)).result()


def test_a_running_run_shows_running_and_queued_ones_pending_until_they_end():
    gate.clear()
    runner = threading.Thread(target=queue_of_three)
    runner.start()
    try:
        with Store(settings.database_path()) as store:

            def live_states() -> list[tuple[int, str]] | None:
                flows = store.list_flow_runs(limit=1)
                if not flows:
                    return None
                runs = store.list_task_runs(flows[0]["id"], order_by="map_index")
                states = [(run["map_index"], run["state_name"]) for run in runs]
                return states if states == [(0, "Running"), (1, "Pending"), (2, "Pending")] else None

            wait_until(live_states, what="one RUNNING and two PENDING task runs in the store")
    finally:
        gate.set()
        runner.join(60)
    with Store(settings.database_path()) as store:
        [run] = store.list_flow_runs(limit=1)
        runs = store.list_task_runs(run["id"], order_by="map_index")
        assert [(r["state_name"], r["task_name"], r["result"]) for r in runs] == [
            ("Completed", "blocked", 0), ("Completed", "blocked", 1), ("Completed", "blocked", 2)
        ]
        assert all(r["start_time"] and r["created"] <= r["start_time"] <= r["end_time"] for r in runs)
