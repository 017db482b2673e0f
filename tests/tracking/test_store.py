"""The SQLite store: what a reader sees after batches arrive whole, twice, split or out of order."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from prefect_like.errors import RunNotFoundError, TrackingError
from prefect_like.tracking.events import Event
from prefect_like.tracking.store import Store

T0 = 1_700_000_000.0
FLOW_ID = "f10a0000-0000-4000-8000-000000000001"


def flow_events(flow_id: str = FLOW_ID, final: str | None = "COMPLETED", **data: Any) -> list[Event]:
    start = {"name": "brave-otter", "flow_name": "sweep", "parameters": {"n": 3},
             "parent_task_run_id": None, "runner": "thread", **data}
    events = [Event("flow", flow_id, 0, None, T0, "RUNNING", "Running", None, start)]
    if final:
        events.append(Event("flow", flow_id, 1, None, T0 + 10, final, final.capitalize(), None,
                            {"task_runs": {"Completed": 2, "Failed": 1}, "error": None, "duration": 10.0}))
    return events


def task_events(
    task_id: str,
    i: int = 0,
    flow_id: str = FLOW_ID,
    final: tuple[str, str] = ("COMPLETED", "Completed"),
    result: Any = None,
    task_name: str = "train",
) -> list[Event]:
    """PENDING, RUNNING, then a terminal state, as the engine emits them."""
    ts = T0 + 1 + i
    error = None
    message = None
    if final[0] == "FAILED":
        error = {"type": "ValueError", "message": f"bad {i}", "traceback": "Traceback ...\nValueError"}
        message = f"ValueError: bad {i}"
    return [
        Event("task", task_id, 0, flow_id, ts, "PENDING", "Pending", None,
              {"task_name": task_name, "map_index": i, "name": f"{task_name}-{i}", "tags": ["a"]}),
        Event("task", task_id, 1, flow_id, ts + 0.5, "RUNNING", "Running", None, {"run_count": 1}),
        Event("task", task_id, 2, flow_id, ts + 2.0, final[0], final[1], message,
              {"parameters": {"lr": 0.1 * (i + 1)}, "result": result, "run_count": 1,
               "error": error, "duration": 1.5}),
    ]


def tid(i: int) -> str:
    return f"7a5c{i:04d}-0000-4000-8000-000000000000"


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(tmp_path / "nested" / "store.db") as s:
        yield s


def sweep(n: int = 10, failed: tuple[int, ...] = (3,)) -> list[Event]:
    events = flow_events()
    for i in range(n):
        final = ("FAILED", "Failed") if i in failed else ("COMPLETED", "Completed")
        result = None if i in failed else {"loss": 1.0 / (i + 1), "acc": i / n}
        events += task_events(tid(i), i, final=final, result=result)
    return events


def test_a_flow_run_and_its_task_runs_read_back_as_plain_dicts(store: Store) -> None:
    store.write(sweep(3, failed=(1,)))
    flow_run = store.get_flow_run(FLOW_ID)
    assert flow_run["state"] == "COMPLETED"
    assert flow_run["name"] == "brave-otter" and flow_run["flow_name"] == "sweep"
    assert flow_run["parameters"] == {"n": 3}
    assert flow_run["duration"] == 10.0
    assert flow_run["start_time"].startswith("2023-11-14T22:13:20")
    assert flow_run["task_runs"] == {"Completed": 2, "Failed": 1}

    failed = store.get_task_run(tid(1))
    assert failed["state"] == "FAILED" and failed["message"] == "ValueError: bad 1"
    assert failed["error"]["type"] == "ValueError"
    assert failed["parameters"] == {"lr": 0.2}
    assert failed["flow_run_id"] == FLOW_ID
    assert (failed["task_name"], failed["name"], failed["map_index"]) == ("train", "train-1", 1)
    assert failed["duration"] == 1.5 and failed["run_count"] == 1
    assert [s["state_name"] for s in failed["states"]] == ["Pending", "Running", "Failed"]


def test_the_same_batch_twice_stores_once(store: Store) -> None:
    events = sweep(5)
    store.write(events)
    store.write(events)
    assert store.count_task_runs(FLOW_ID) == 5
    assert len(store.get_task_run(tid(0))["states"]) == 3
    assert store.task_run_counts(FLOW_ID) == {"Completed": 4, "Failed": 1}


def test_a_terminal_batch_before_the_pending_batch_ends_completed_with_all_times(
    store: Store,
) -> None:
    pending, running, completed = task_events(tid(0), result=42)
    store.write([completed])
    store.write([running])
    store.write([pending])
    run = store.get_task_run(tid(0))
    assert run["state"] == "COMPLETED" and run["result"] == 42
    assert run["created"] and run["start_time"] and run["end_time"]
    assert run["created"] < run["start_time"] < run["end_time"]
    assert run["task_name"] == "train" and run["map_index"] == 0
    assert [s["state_name"] for s in run["states"]] == ["Pending", "Running", "Completed"]


def test_task_runs_may_arrive_before_their_flow_run(store: Store) -> None:
    store.write(task_events(tid(0)))
    assert store.count_task_runs(FLOW_ID) == 1
    assert store.get_flow_run(FLOW_ID)["task_runs"] == {"Completed": 1}
    store.write(flow_events(final=None))
    flow_run = store.get_flow_run(FLOW_ID)
    assert flow_run["state"] == "RUNNING" and flow_run["name"] == "brave-otter"


def test_events_of_one_run_split_over_batches_in_any_order(store: Store) -> None:
    events = sweep(4)
    store.write(events[5:])
    store.write(events[::-1][:3])
    store.write(events[:5])
    assert store.count_task_runs(FLOW_ID) == 4
    assert store.task_run_counts(FLOW_ID) == {"Completed": 3, "Failed": 1}
    assert all(run["end_time"] for run in store.list_task_runs(FLOW_ID))


def test_a_retried_task_keeps_its_first_start_and_latest_run_count(store: Store) -> None:
    ev = [
        Event("task", tid(0), 0, FLOW_ID, T0, "PENDING", "Pending", None,
              {"task_name": "flaky", "map_index": None, "name": "flaky-0", "tags": []}),
        Event("task", tid(0), 1, FLOW_ID, T0 + 1, "RUNNING", "Running", None, {"run_count": 1}),
        Event("task", tid(0), 2, FLOW_ID, T0 + 2, "RUNNING", "Retrying", "boom", {"run_count": 2}),
        Event("task", tid(0), 3, FLOW_ID, T0 + 3, "COMPLETED", "Completed", None,
              {"parameters": {}, "result": "ok", "run_count": 2}),
    ]
    store.write([ev[3], ev[1]])
    store.write([ev[2], ev[0]])
    run = store.get_task_run(tid(0))
    assert run["run_count"] == 2 and run["result"] == "ok"
    assert run["duration"] == 2.0  # from the first RUNNING
    assert [s["state_name"] for s in run["states"]] == ["Pending", "Running", "Retrying", "Completed"]


def test_a_flow_runs_counts_are_what_the_store_holds_whatever_its_final_event_says(
    store: Store,
) -> None:
    store.write(flow_events(final=None) + task_events(tid(0)))
    assert store.get_flow_run(FLOW_ID)["task_runs"] == {"Completed": 1}
    assert store.get_flow_run(FLOW_ID)["end_time"] is None
    store.write(flow_events())  # its terminal event claims {"Completed": 2, "Failed": 1}
    assert store.get_flow_run(FLOW_ID)["task_runs"] == {"Completed": 1}  # never runs it lacks
    # Events that arrive after the flow run's end (a spill delivered by `runs flush`) count too.
    store.write(task_events(tid(1), 1) + task_events(tid(2), 2, final=("FAILED", "Failed")))
    assert store.get_flow_run(FLOW_ID)["task_runs"] == {"Completed": 2, "Failed": 1}


def test_task_runs_left_unfinished_by_an_ended_flow_run_end_cancelled_until_their_own_end_arrives(
    store: Store,
) -> None:
    pending, running = task_events(tid(0))[0], task_events(tid(1), 1)[:2]
    store.write(flow_events(final=None) + [pending] + running)
    store.write(flow_events(final="CANCELLED"))
    runs = {run["id"]: run for run in store.list_task_runs(FLOW_ID)}
    assert runs[tid(0)]["state_name"] == runs[tid(1)]["state_name"] == "Cancelled"
    assert runs[tid(0)]["message"] == "Cancelled before it started: its flow run ended Cancelled"
    assert "no end of its own reached the tracker" in runs[tid(1)]["message"]
    assert store.get_flow_run(FLOW_ID)["task_runs"] == {"Cancelled": 2}
    store.write(task_events(tid(1), 1))  # its own end, late: the truth wins, the counts follow
    assert store.get_task_run(tid(1))["state_name"] == "Completed"
    assert store.get_flow_run(FLOW_ID)["task_runs"] == {"Cancelled": 1, "Completed": 1}


def test_state_filter_matches_type_or_name_in_any_case(store: Store) -> None:
    events = sweep(6, failed=(2, 4))
    events.append(Event("task", tid(2), 2, FLOW_ID, T0 + 1, "COMPLETED", "Cached", None, {}))
    events += [Event("task", tid(99), 0, FLOW_ID, T0, "PENDING", "Pending", None,
                     {"task_name": "report", "map_index": None, "name": "report", "tags": []}),
               Event("task", tid(99), 1, FLOW_ID, T0 + 9, "PENDING", "NotReady", "upstream failed", {})]
    store.write(events[:-3])
    store.write(events[-3:])  # the Cached event for tid(2) has the same seq as its Failed: ignored
    assert store.count_task_runs(FLOW_ID, state="failed") == 2
    assert store.count_task_runs(FLOW_ID, state="COMPLETED") == 4
    assert store.count_task_runs(FLOW_ID, state="notready") == 1
    assert store.count_task_runs(FLOW_ID, state="pending") == 1  # NotReady is a PENDING type
    assert store.count_task_runs(FLOW_ID, state="Cached") == 0
    assert store.count_task_runs(FLOW_ID, task_name="report") == 1
    assert store.task_run_counts(FLOW_ID) == {"Completed": 4, "Failed": 2, "NotReady": 1}
    not_ready = store.list_task_runs(FLOW_ID, state="NotReady")[0]
    assert not_ready["end_time"] is not None  # NotReady ends a run
    with pytest.raises(ValueError, match="unknown state 'finished'"):
        store.list_task_runs(FLOW_ID, state="finished")


def test_order_by_a_result_key_descending_and_paging(store: Store) -> None:
    store.write(sweep(10, failed=(3,)))
    by_loss = store.list_task_runs(FLOW_ID, order_by="-result.loss")
    losses = [run["result"]["loss"] for run in by_loss if run["result"]]
    assert losses == sorted(losses, reverse=True)
    assert by_loss[-1]["result"] is None  # no result sorts last
    ascending = store.list_task_runs(FLOW_ID, order_by="result.loss", limit=3)
    assert [r["map_index"] for r in ascending] == [9, 8, 7]
    pages = [store.list_task_runs(FLOW_ID, limit=4, offset=o, order_by="map_index") for o in (0, 4, 8)]
    assert [[r["map_index"] for r in page] for page in pages] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [r["map_index"] for r in store.list_task_runs(FLOW_ID)] == list(range(10))
    assert store.list_task_runs(FLOW_ID, order_by="-duration", limit=1)[0]["duration"] == 1.5


def test_order_by_a_scalar_result(store: Store) -> None:
    events = flow_events()
    for i, value in enumerate([3, 1, 2]):
        events += task_events(tid(i), i, result=value)
    store.write(events)
    assert [r["result"] for r in store.list_task_runs(FLOW_ID, order_by="result")] == [1, 2, 3]


@pytest.mark.parametrize("key", ["loss", "result.loss)--", "result.", "result.1x", "-bogus"])
def test_a_bad_order_by_is_a_clear_value_error(store: Store, key: str) -> None:
    store.write(sweep(2))
    with pytest.raises(ValueError, match="order_by|result key"):
        store.list_task_runs(FLOW_ID, order_by=key)


def test_ids_may_be_abbreviated_to_a_unique_prefix(store: Store) -> None:
    store.write(sweep(3))
    assert store.get_flow_run(FLOW_ID[:6])["id"] == FLOW_ID
    assert store.get_task_run("7a5c0001")["id"] == tid(1)
    assert store.find_run("f10a") == ("flow", FLOW_ID)
    with pytest.raises(RunNotFoundError, match="ambiguous"):
        store.get_task_run("7a5c")
    with pytest.raises(RunNotFoundError, match="no flow run with id 'f10'"):
        store.get_flow_run("f10")  # too short to be a prefix


def test_unknown_ids_raise_run_not_found(store: Store) -> None:
    with pytest.raises(RunNotFoundError, match="no flow run with id 'nope'"):
        store.get_flow_run("nope")
    with pytest.raises(RunNotFoundError, match="no task run with id"):
        store.get_task_run("0123456789")
    with pytest.raises(RunNotFoundError):
        store.list_task_runs("deadbeef")
    with pytest.raises(RunNotFoundError):
        store.find_run("deadbeef")


def test_flow_runs_newest_first_with_filters(store: Store) -> None:
    for i in range(3):
        events = flow_events(f"f{i}000000", final="FAILED" if i == 1 else "COMPLETED")
        store.write([e._replace(timestamp=e.timestamp + i * 100) for e in events])
    store.write([e._replace(timestamp=T0 + 300) for e in flow_events("f3000000", None, flow_name="other")])
    runs = store.list_flow_runs()
    assert [r["id"] for r in runs] == ["f3000000", "f2000000", "f1000000", "f0000000"]
    assert [r["id"] for r in store.list_flow_runs(state="failed")] == ["f1000000"]
    assert [r["id"] for r in store.list_flow_runs(flow_name="other")] == ["f3000000"]
    assert [r["id"] for r in store.list_flow_runs(limit=2, offset=1)] == ["f2000000", "f1000000"]
    assert store.count_flow_runs(state="COMPLETED") == 2
    assert set(runs[0]) == {
        "id", "name", "flow_name", "state", "state_name", "message", "start_time", "end_time",
        "duration", "parameters", "tags", "task_runs", "parent_flow_run_id", "parent_task_run_id",
        "error", "heartbeat",
    }


def test_heartbeats_keep_the_latest(store: Store) -> None:
    store.write([Event("heartbeat", FLOW_ID, 2, None, T0 + 30, None, None, None, None)])
    store.write(flow_events(final=None))
    store.write([Event("heartbeat", FLOW_ID, 1, None, T0 + 20, None, None, None, None)])
    flow_run = store.get_flow_run(FLOW_ID)
    assert flow_run["heartbeat"].startswith("2023-11-14T22:13:50")
    assert flow_run["state"] == "RUNNING"


def test_logs_of_a_flow_run_include_its_task_runs(store: Store) -> None:
    store.write(sweep(2))
    lines = [
        Event("log", FLOW_ID, 0, None, T0 + 0.1, "INFO", "INFO", "starting", {"level": 20, "logger": "flow"}),
        Event("log", tid(0), 0, FLOW_ID, T0 + 1.1, "INFO", "INFO", "training", {"level": 20, "logger": "task"}),
        Event("log", tid(0), 1, FLOW_ID, T0 + 1.2, "WARNING", "WARNING", "slow", {"level": 30, "logger": "task"}),
    ]
    store.write(lines[::-1])
    store.write(lines)  # resent: still stored once
    assert [line["message"] for line in store.logs(flow_run_id=FLOW_ID)] == ["starting", "training", "slow"]
    task_lines = store.logs(task_run_id=tid(0))
    assert [(x["level"], x["logger"], x["message"]) for x in task_lines] == [
        ("INFO", "task", "training"), ("WARNING", "task", "slow")]
    assert task_lines[0]["flow_run_id"] == FLOW_ID and task_lines[0]["task_run_id"] == tid(0)
    assert store.logs(flow_run_id=FLOW_ID)[0]["task_run_id"] is None
    assert [x["message"] for x in store.logs(flow_run_id=FLOW_ID, limit=1, offset=1)] == ["training"]


def test_iter_task_runs_yields_every_run_in_submission_order(store: Store) -> None:
    store.write(sweep(23))
    assert [r["map_index"] for r in store.iter_task_runs(FLOW_ID, batch=5)] == list(range(23))


def test_throughput_counts_finished_task_runs_over_time(store: Store) -> None:
    store.write(sweep(10))
    buckets = store.throughput(FLOW_ID, buckets=5)
    assert sum(b["count"] for b in buckets) == 10
    assert len(buckets) <= 5 and all(b["t"].endswith("+00:00") for b in buckets)


def test_odd_values_are_stored_as_text(store: Store) -> None:
    events = task_events(tid(0), result={"big": 2**70, "when": Path("/x"), 3: "int key"})
    store.write(events)
    assert store.get_task_run(tid(0))["result"] == {"big": 2**70, "when": "/x", "3": "int key"}


def test_a_new_store_on_an_existing_file_sees_the_same_runs(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as first:
        first.write(sweep(2))
    with Store(tmp_path / "s.db") as second:
        assert second.count_task_runs(FLOW_ID) == 2


def test_two_threads_writing_one_file_never_see_locked(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            with Store(path) as s:
                for b in range(20):
                    events = flow_events(f"f{w}-{b:04d}-flow")
                    for i in range(50):
                        events += task_events(f"{w}-{b}-{i}", i, flow_id=f"f{w}-{b:04d}-flow")
                    s.write(events)
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store(path) as s:
        assert s.count_flow_runs() == 60


def test_two_processes_writing_one_file_never_see_locked(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_store import flow_events, task_events
from prefect_like.tracking.store import Store
w = int(sys.argv[1])
with Store({str(path)!r}) as s:
    for b in range(15):
        flow = f"p{{w}}-{{b:04d}}"
        events = flow_events(flow)
        for i in range(200):
            events += task_events(f"{{flow}}-{{i}}", i, flow_id=flow)
        s.write(events)
"""
    root = str(Path(__file__).parents[2])
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(w)], cwd=root,
                         env={"PYTHONPATH": root, "PATH": ""}, stderr=subprocess.PIPE, text=True)
        for w in range(2)
    ]
    started = time.monotonic()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "locked" not in err
    assert time.monotonic() - started < 120
    with Store(path) as s:
        assert s.count_flow_runs() == 30
        assert sum(s.task_run_counts(f"p1-{b:04d}")["Completed"] for b in range(15)) == 3000


def test_coalesced_batches_store_the_same_task_runs_as_plain_ones(tmp_path):
    from prefect_like.tracking.events import fold

    flow_id = "c" * 32

    def lifecycle(i: int) -> list[Event]:
        run_id = f"{flow_id[:12]}-r{i}"
        return [
            Event("task", run_id, 0, flow_id, 10.0 + i, "PENDING", "Pending", None, {"task_name": "t", "map_index": i}),
            Event("task", run_id, 1, flow_id, 20.0 + i, "RUNNING", "Running", None, {"run_count": 1}),
            Event("task", run_id, 2, flow_id, 30.0 + i, "RUNNING", "Retrying", "again", {"run_count": 2}),
            Event("task", run_id, 3, flow_id, 40.0 + i, "COMPLETED", "Completed", None,
                  {"parameters": {"i": i}, "result": i, "run_count": 2, "duration": 1.0}),
        ]

    events = [e for i in range(3) for e in lifecycle(i)]
    # The third run's Pending went out in an earlier batch: only its Running is folded.
    earlier, batch = events[8:9], events[:8] + events[9:]
    folded, _, _ = fold(batch, None)
    assert len(folded) == len(batch) - 5
    with Store(tmp_path / "plain.db") as plain, Store(tmp_path / "folded.db") as store:
        plain.write(events)
        store.write(earlier)
        store.write(folded)
        for i in range(3):
            run_id = f"{flow_id[:12]}-r{i}"
            assert store.get_task_run(run_id) == plain.get_task_run(run_id)


def test_a_runs_reports_as_one_metric_event_store_as_its_reports_one_by_one(tmp_path):
    flow_id = "d" * 32
    run_id = f"{flow_id[:12]}-r0"
    task = Event("task", run_id, 0, flow_id, 1.0, "PENDING", "Pending", None, {"task_name": "train"})
    reports = [(3, 2.0, 0, {"loss": 1.0}), (4, 3.0, 1, {"loss": None}), (5, 4.0, 2.5, {})]
    one_by_one = [Event("metric", run_id, seq, flow_id, ts, None, None, None, {"step": step, "metrics": values})
                  for seq, ts, step, values in reports]
    grouped = Event("metric", run_id, 3, flow_id, 2.0, None, None, None, {"points": [list(r) for r in reports]})
    with Store(tmp_path / "plain.db") as plain, Store(tmp_path / "grouped.db") as store:
        plain.write([task, *one_by_one])
        store.write([task, grouped])
        store.write([grouped])  # sent twice, stored once
        assert store.metrics(task_run_id=run_id) == plain.metrics(task_run_id=run_id)
        assert [m["step"] for m in store.metrics(task_run_id=run_id)] == [0, 1, 2.5]
        for bad in ({"points": "many"}, {"points": [[6, 5.0, 1]]}, {"points": [[6, 5.0, "one", {}]]}):
            with pytest.raises((ValueError, TrackingError)):
                store.write([Event("metric", run_id, 6, flow_id, 5.0, None, None, None, bad)])
        assert len(store.metrics(task_run_id=run_id)) == 3
